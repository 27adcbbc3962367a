/**
 * Fault tests of the ingest path, all real parts: the exchange simulator over a real WebSocket (its faults API),
 * the in-process Ingestor, and kinesalite BEHIND the fault proxy (src/local/faultProxy.ts) for the AWS faults;
 * snapshots go to s3rver. Each test shows the recovery, the counter that reports it, and that the stream read
 * back from kinesalite holds every event the ingestor accepted exactly once after de-duplication by event id,
 * in order per product, with the book rebuilt from it equal to the simulator's at the last sequence number.
 */

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import type { Ingestor } from '../src/ingest/ingestor.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { type FaultProxy, startFaultProxy } from '../src/local/faultProxy.js';
import type { Logger } from '../src/log.js';
import { STREAM } from '../src/resources.js';
import type { StreamEvent } from '../src/stream/record.js';
import { FEED } from '../src/telemetry/catalog.js';
import { readStream } from './ingest.helpers.js';
import { expectSimulatorBook, localIngestor, PRODUCTS, withSimulator } from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

const local = withEmulators({ provision: true });
const simulator = withSimulator(11, 200);
let proxy: FaultProxy;

beforeAll(async () => {
  proxy = await startFaultProxy({ target: local.env.AWS_ENDPOINT_URL_KINESIS! });
});
// A failed test must not leave its ingestor reading the simulator while the next one runs.
let running: Ingestor[] = [];
afterEach(async () => {
  for (const ingestor of running) await ingestor.stop();
  running = [];
  proxy.clear();
});
afterAll(async () => {
  await proxy?.close();
});

/** The real producer, noting every event the ingestor handed it (in order) once it was accepted. */
class ObservedProducer extends KinesisProducer {
  readonly accepted: StreamEvent[] = [];
  override async put(event: StreamEvent): Promise<void> {
    await super.put(event);
    this.accepted.push(event);
  }
}

interface Run {
  ingestor: Ingestor;
  producer: ObservedProducer;
  logs: { level: string; msg: string; [k: string]: unknown }[];
  session: string;
}

let runs = 0;
function startIngestor(options: { silenceMs?: number } = {}): Run {
  const logs: Run['logs'] = [];
  const log: Logger = (level, msg, fields) => logs.push({ level, msg, ...fields });
  // Kinesis through the proxy; S3 direct.
  const producer = new ObservedProducer({
    client: kinesisClient({ ...local.env, AWS_ENDPOINT_URL_KINESIS: proxy.url }),
    streamName: STREAM.localName,
    lingerMs: 5,
    // Small, so the fast simulator is held back by the stream instead of piling up a long flush at stop.
    maxBufferBytes: 256 * 1024,
    backoffBaseMs: 10,
    backoffCapMs: 200,
  });
  const session = `f${runs++}${Math.random().toString(36).slice(2, 6)}`;
  const ingestor = localIngestor(local.env, {
    feedUrl: simulator.sim.url,
    producer,
    log,
    session,
    silenceMs: options.silenceMs ?? 5000,
    reconnectBaseMs: 10,
    reconnectCapMs: 50,
  });
  ingestor.start();
  running.push(ingestor);
  return { ingestor, producer, logs, session };
}

/** This run's events per partition key, in stream order, duplicates included. */
async function streamOf(run: Run): Promise<Map<string, StreamEvent[]>> {
  const records = await readStream(kinesisClient(local.env), STREAM.localName);
  const out = new Map<string, StreamEvent[]>();
  for (const r of records) {
    const mine = r.line === run.session ? r.events : [];
    if (mine.length === 0) continue;
    out.set(r.partitionKey, [...(out.get(r.partitionKey) ?? []), ...mine]);
  }
  return out;
}

/**
 * The checks every fault shares: accepted == stream after de-duplication (same events, same order, per
 * product), duplicates carry the same exchange content, and the rebuilt book equals the simulator's at the last sequence.
 * Returns the number of duplicate copies found.
 */
async function verify(run: Run): Promise<{ duplicates: number; events: Map<string, StreamEvent[]> }> {
  const stream = await streamOf(run);
  // A reconnect's market_trades snapshot repeats recent trades under their exchange ids: the first copy counts.
  const accepted = new Map<string, StreamEvent[]>();
  const acceptedIds = new Set<string>();
  for (const e of run.producer.accepted) {
    if (acceptedIds.has(e.id)) continue;
    acceptedIds.add(e.id);
    accepted.set(e.product, [...(accepted.get(e.product) ?? []), e]);
  }
  expect([...stream.keys()].sort()).toEqual([...accepted.keys()].sort());
  let duplicates = 0;
  const deduped = new Map<string, StreamEvent[]>();
  for (const [product, events] of stream) {
    const seen = new Map<string, string>();
    const unique: StreamEvent[] = [];
    for (const e of events) {
      // Copies of one exchange event (a retry, or a reconnect's snapshot of recent trades) differ at most in how
      // they were delivered: receive time and the connection's sequence number.
      const { recvUs: _r, seq: _s, ...content } = e;
      const json = JSON.stringify(content);
      const first = seen.get(e.id);
      if (first === undefined) {
        seen.set(e.id, json);
        unique.push(e);
      } else {
        expect(json).toBe(first);
        duplicates++;
      }
    }
    expect(unique).toEqual(accepted.get(product));
    deduped.set(product, unique);
  }

  // Rebuild each book as a consumer would; it must equal the simulator's book at the last sequence number.
  const conn = Math.max(...simulator.sim.connections());
  for (const product of PRODUCTS) {
    await expectSimulatorBook(local.env, simulator.sim, conn, product, deduped.get(product) ?? []);
  }
  return { duplicates, events: deduped };
}

describe('ingest faults: simulator -> ingestor -> fault proxy -> kinesalite', () => {
  it('disconnect: reconnects, announces a resync per product, new snapshots; nothing lost or doubled', async () => {
    const run = startIngestor();
    await until('traffic', () => run.ingestor.counters.frames >= 200);
    simulator.sim.faults.dropConnections();
    const after = run.ingestor.counters.frames;
    // Frames the old connection had on the wire still count: wait for the new connection's snapshots too.
    await until(
      'reconnect, fresh snapshots and traffic',
      () =>
        run.ingestor.counters.reconnects >= 1 &&
        run.ingestor.counters.exchangeSnapshots >= 2 * PRODUCTS.length &&
        run.ingestor.counters.frames >= after + 200,
    );
    await run.ingestor.stop();

    expect(run.ingestor.counters.reconnects).toBe(1);
    expect(run.logs.find((l) => l.msg === 'feed state' && l.to === 'backoff')).toMatchObject({
      reason: 'remote',
    });
    expect(run.ingestor.telemetry.value(FEED.closes, { Reason: 'remote' })).toBe(1);
    const { events } = await verify(run);
    for (const product of PRODUCTS) {
      const resyncs = events.get(product)!.filter((e) => e.type === 'resync');
      expect(resyncs.map((e) => (e as { reason: string }).reason)).toEqual(['connect', 'reconnect']);
      // The exchange's snapshots; periodic ones come on top whenever exchange time crosses an interval.
      const refs = events.get(product)!.filter((e) => e.type === 'snapshot_ref' && e.source === 'exchange');
      expect(refs).toHaveLength(2);
    }
  });

  it('silence: the watchdog closes the quiet connection and the ingestor reconnects', async () => {
    const run = startIngestor({ silenceMs: 400 });
    await until('traffic', () => run.ingestor.counters.frames >= 200);
    simulator.sim.faults.goSilent();
    await until('the watchdog', () =>
      run.logs.some((l) => l.msg === 'feed state' && l.to === 'backoff' && l.reason === 'silence'),
    );
    simulator.sim.faults.resume();
    const after = run.ingestor.counters.frames;
    await until('traffic again', () => run.ingestor.counters.frames >= after + 200);
    await run.ingestor.stop();

    expect(run.ingestor.counters.reconnects).toBeGreaterThanOrEqual(1);
    expect(run.ingestor.telemetry.value(FEED.closes, { Reason: 'silence' })).toBeGreaterThanOrEqual(1);
    const { events } = await verify(run);
    expect(events.get('BTC-USD')!.filter((e) => e.type === 'resync').length).toBe(
      1 + run.ingestor.counters.reconnects,
    );
  });

  it('sequence gap: resync event in the stream, fresh snapshot, no reconnect', async () => {
    const run = startIngestor();
    await until('traffic', () => run.ingestor.counters.frames >= 200);
    simulator.sim.faults.skipSequence(5);
    await until(
      'resync and traffic',
      () => run.ingestor.counters.resyncs >= 2 && run.ingestor.counters.frames >= 500,
    );
    await run.ingestor.stop();

    expect(run.ingestor.counters.reconnects).toBe(0);
    expect(run.ingestor.counters.resyncs).toBe(2); // connect + the gap
    expect(run.logs.some((l) => l.msg === 'sequence break: resync')).toBe(true);
    const { events } = await verify(run);
    for (const product of PRODUCTS) {
      const reasons = events.get(product)!.flatMap((e) => (e.type === 'resync' ? [e.reason] : []));
      expect(reasons[1]).toMatch(/^gap: expected \d+, got \d+$/);
    }
  });

  it('malformed frames: counted and skipped, the connection and the book carry on', async () => {
    const run = startIngestor();
    await until('traffic', () => run.ingestor.counters.frames >= 200);
    simulator.sim.faults.sendMalformed('truncated');
    simulator.sim.faults.sendMalformed('garbage');
    await until(
      'traffic after',
      () => run.ingestor.counters.malformed >= 2 && run.ingestor.counters.frames >= 500,
    );
    await run.ingestor.stop();

    expect(run.ingestor.counters.malformed).toBe(2);
    expect(run.ingestor.counters.reconnects).toBe(0);
    expect(run.ingestor.counters.resyncs).toBe(1); // only the connect: a skipped frame outside the sequence
    expect(run.logs.filter((l) => l.msg === 'malformed frame skipped')).toHaveLength(2);
    await verify(run);
  });

  it('throttling: partial PutRecords failures and throttled requests are retried; each event written once', async () => {
    const partial = proxy.add({
      operation: 'PutRecords',
      times: 6,
      action: { kind: 'fail-entries', select: (e) => e.partitionKey === 'BTC-USD' },
    });
    const whole = proxy.add({
      operation: 'PutRecords',
      times: 2,
      action: { kind: 'error', status: 400, errorType: 'ProvisionedThroughputExceededException' },
    });
    const run = startIngestor();
    try {
      await until(
        'traffic',
        () => run.ingestor.counters.frames >= 300 && partial.hits === 6 && whole.hits === 2,
      );
      await run.ingestor.stop();
    } finally {
      partial.remove();
      whole.remove();
    }

    expect(partial.failedEntries).toBeGreaterThanOrEqual(6);
    // Only failed ENTRIES are retried by the producer (the whole-request throttles the SDK retries itself).
    expect(run.producer.stats().retries).toBeGreaterThanOrEqual(partial.failedEntries);
    const { duplicates, events } = await verify(run);
    expect(duplicates).toBe(0); // a failed entry is really not written, so its retry is no duplicate
    // The metric reaches consumers through the stream: the final stats event counts the retries.
    const stats = events.get('_feed')!.filter((e) => e.type === 'stats');
    expect((stats.at(-1) as { producerRetries: number }).producerRetries).toBeGreaterThanOrEqual(6);
  });

  it('response dropped after the write: the retry writes real duplicates, de-duplication restores the events', async () => {
    const drop = proxy.add({ operation: 'PutRecords', times: 3, action: { kind: 'drop-after-write' } });
    const run = startIngestor();
    try {
      await until('traffic', () => run.ingestor.counters.frames >= 300 && drop.hits === 3);
      await run.ingestor.stop();
    } finally {
      drop.remove();
    }
    const { duplicates } = await verify(run);
    expect(duplicates).toBeGreaterThanOrEqual(3);
  });

  it('oversized snapshot (50k levels, ~5 MB frame): travels by claim-check, the book stays right', async () => {
    const run = startIngestor();
    await until('traffic', () => run.ingestor.counters.frames >= 200);
    simulator.sim.faults.sendOversizedSnapshot('BTC-USD', 50_000);
    await until(
      'the snapshot and traffic after it',
      () =>
        run.producer.accepted.some(
          (e) => e.type === 'snapshot_ref' && e.source === 'exchange' && e.levels >= 50_000,
        ) && run.ingestor.counters.frames >= 500,
    );
    await run.ingestor.stop();

    const { events } = await verify(run);
    // Periodic copies of the (by then 50k-level) book may follow; the exchange's own snapshots are two.
    const refs = events.get('BTC-USD')!.filter((e) => e.type === 'snapshot_ref' && e.source === 'exchange');
    expect(refs).toHaveLength(2);
    expect(refs[1]).toMatchObject({ levels: 50_000 });
    expect(run.ingestor.counters.resyncs).toBe(1);
  });
});
