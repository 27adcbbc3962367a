import { describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { FEED_PARTITION } from '../src/ingest/ingestor.js';
import type { Logger } from '../src/log.js';
import { STREAM } from '../src/resources.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import { localIngestor, PRODUCTS, withSimulator } from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

// The whole ingest path (simulator -> state machine -> mapper -> kinesalite/s3rver) through each recovery:
// disconnect, silence and a sequence gap, with the transition counters read back from the stream's stats.
const local = withEmulators({ provision: true });
const simulator = withSimulator(11, 100);

describe('Ingestor state machine paths into kinesalite', () => {
  it('disconnect, silence and gap each recover and show in the metrics of the published stats', async () => {
    const lines: Record<string, unknown>[] = [];
    const log: Logger = (level, msg, fields) => lines.push({ level, msg, ...fields });
    const sim = simulator.sim;
    const ingestor = localIngestor(local.env, {
      feedUrl: sim.url,
      log,
      session: `sm${Math.random().toString(36).slice(2, 8)}`,
      silenceMs: 400,
      snapshotIntervalMs: 0,
      reconnectBaseMs: 10,
      reconnectCapMs: 40,
      random: () => 0.5,
    });
    const m = ingestor.metrics;
    ingestor.start();
    try {
      const traffic = async (what: string) => {
        const frames = ingestor.counters.frames;
        await until(what, () => ingestor.state === 'subscribed' && ingestor.counters.frames > frames + 200);
      };
      await traffic('first traffic');
      sim.faults.dropConnections();
      await until('the drop', () => m.get('feed.close.remote') === 1);
      await traffic('traffic after the reconnect');
      sim.faults.goSilent();
      await until('the watchdog', () => m.get('feed.close.silence') === 1).finally(() => sim.faults.resume());
      await traffic('traffic after the silence');
      sim.faults.skipSequence(3);
      await until('the gap resync', () => m.get('ingest.sequence_gap') === 1);
      await traffic('traffic after the resync');
    } finally {
      await ingestor.stop();
    }
    expect(m.get('feed.reconnects')).toBe(2);
    expect(m.get('feed.transition.subscribed.backoff')).toBe(2);
    expect(m.get('feed.transition.backoff.connecting')).toBe(2);
    expect(m.get('feed.transition.subscribing.subscribed')).toBe(3);
    expect(m.get('feed.transition.subscribed.stopped')).toBe(1);
    // connect + 2 reconnects + the gap
    expect(m.get('ingest.resyncs')).toBe(4);

    const records = await readStream(kinesisClient(local.env), STREAM.localName);
    const mine = (e: StreamEvent) => e.id.startsWith(`${ingestor.session}.`);
    const stats = records
      .filter((r) => r.partitionKey === FEED_PARTITION)
      .flatMap((r) => r.events)
      .filter(mine)
      .at(-1);
    if (stats?.type !== 'stats') throw new Error('expected the final stats event');
    expect(stats).toMatchObject({ reconnects: 2, resyncs: 4 });
    expect(stats.metrics?.counters).toMatchObject({
      'feed.close.remote': 1,
      'feed.close.silence': 1,
      'ingest.sequence_gap': 1,
      'feed.transition.subscribed.backoff': 2,
    });
    // Each product's stream restarts from a snapshot after every resync.
    for (const product of PRODUCTS) {
      const events = records
        .filter((r) => r.partitionKey === product)
        .flatMap((r) => r.events)
        .filter(mine);
      const reasons = events
        .filter((e) => e.type === 'resync')
        .map((e) => (e.type === 'resync' ? e.reason.split(':')[0] : ''));
      expect(reasons).toEqual(['connect', 'reconnect', 'reconnect', 'gap']);
      // Each resync is followed by a fresh snapshot before any book change (tickers and trades may come between).
      events.forEach((e, i) => {
        if (e.type !== 'resync') return;
        const next = events.slice(i + 1).find((n) => n.type === 'snapshot_ref' || n.type === 'book_changes');
        expect(next?.type).toBe('snapshot_ref');
      });
    }
    // The same figures went out as a CloudWatch EMF log line.
    const emf = lines.filter((l) => l.msg === 'metrics').at(-1) as Record<string, unknown> & {
      _aws: { CloudWatchMetrics: { Namespace: string; Metrics: { Name: string }[] }[] };
    };
    expect(emf._aws.CloudWatchMetrics[0]!.Namespace).toBe('QuoteWatch/Ingestor');
    expect(emf._aws.CloudWatchMetrics[0]!.Metrics.map((d) => d.Name)).toContain('feed.close.silence');
  });
});
