import { describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { FEED_PARTITION } from '../src/ingest/ingestor.js';
import type { Logger } from '../src/log.js';
import { STREAM } from '../src/resources.js';
import { FEED } from '../src/telemetry/catalog.js';
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
    const m = ingestor.telemetry;
    ingestor.start();
    try {
      const traffic = async (what: string) => {
        const frames = ingestor.counters.frames;
        await until(what, () => ingestor.state === 'subscribed' && ingestor.counters.frames > frames + 200);
      };
      await traffic('first traffic');
      sim.faults.dropConnections();
      await until('the drop', () => m.value(FEED.closes, { Reason: 'remote' }) === 1);
      await traffic('traffic after the reconnect');
      sim.faults.goSilent();
      await until('the watchdog', () => m.value(FEED.closes, { Reason: 'silence' }) === 1).finally(() =>
        sim.faults.resume(),
      );
      await traffic('traffic after the silence');
      sim.faults.skipSequence(3);
      await until('the gap resync', () => m.value(FEED.resyncReasons, { Reason: 'gap' }) === 1);
      await traffic('traffic after the resync');
    } finally {
      await ingestor.stop();
    }
    expect(m.value(FEED.reconnects)).toBe(2);
    expect(m.value(FEED.transitions, { From: 'subscribed', To: 'backoff' })).toBe(2);
    expect(m.value(FEED.transitions, { From: 'backoff', To: 'connecting' })).toBe(2);
    expect(m.value(FEED.transitions, { From: 'subscribing', To: 'subscribed' })).toBe(3);
    expect(m.value(FEED.transitions, { From: 'subscribed', To: 'stopped' })).toBe(1);
    // connect + 2 reconnects + the gap
    expect(m.value(FEED.resyncs)).toBe(4);

    const records = await readStream(kinesisClient(local.env), STREAM.localName);
    const stats = records
      .filter((r) => r.partitionKey === FEED_PARTITION && r.line === ingestor.session)
      .flatMap((r) => r.events)
      .at(-1);
    if (stats?.type !== 'stats') throw new Error('expected the final stats event');
    expect(stats).toMatchObject({ reconnects: 2, resyncs: 4 });
    expect(stats.metrics).toMatchObject({
      'FeedCloses{Reason=remote}': 1,
      'FeedCloses{Reason=silence}': 1,
      FeedResyncs: 4,
      'FeedResyncsByReason{Reason=gap}': 1,
      'FeedTransitions{From=subscribed,To=backoff}': 2,
    });
    // Each product's stream restarts from a snapshot after every resync.
    for (const product of PRODUCTS) {
      const events = records
        .filter((r) => r.partitionKey === product && r.line === ingestor.session)
        .flatMap((r) => r.events);
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
    // The same records count the closes and the resyncs by reason (local-only: Prometheus /metrics), and
    // CloudWatch gets the resyncs as one series, which its dashboard graphs.
    expect(await m.value(FEED.closes, { Reason: 'remote' })).toBe(1);
    expect(await m.value(FEED.closes, { Reason: 'silence' })).toBe(1);
    const emf = m.flush();
    expect(emf.filter((r) => r.FeedCloses !== undefined)).toEqual([]);
    expect(emf.filter((r) => r.FeedResyncsByReason !== undefined)).toEqual([]);
    expect(await m.value(FEED.resyncReasons, { Reason: 'reconnect' })).toBeGreaterThanOrEqual(1);
    const resyncs = emf.filter((r) => r.FeedResyncs !== undefined);
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]).toMatchObject({ FeedResyncs: 4 });
    expect(resyncs[0]!.Reason).toBeUndefined();
    expect(emf[0]!._aws.CloudWatchMetrics[0]!.Namespace).toBe('QuoteWatch');
  });
});
