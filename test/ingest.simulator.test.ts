import { describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import type { Logger } from '../src/log.js';
import { STREAM } from '../src/resources.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import {
  expectSimulatorBook,
  localIngestor,
  localProducer,
  PRODUCTS,
  withSimulator,
} from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

const local = withEmulators({ provision: true });
const simulator = withSimulator(7, 200);

describe('Ingestor against the exchange simulator, into kinesalite and s3rver', () => {
  it('publishes snapshot refs and changes that rebuild the simulator book, across a sequence gap', async () => {
    const logged: string[] = [];
    const log: Logger = (level, msg) => logged.push(`${level}:${msg}`);
    const sim = simulator.sim;
    const ingestor = localIngestor(local.env, { feedUrl: sim.url, producer: localProducer(local.env), log });
    ingestor.start();
    try {
      await until('some book traffic', () => ingestor.counters.frames >= 300, 30_000);
      sim.faults.skipSequence(5);
      // Frames already on the wire arrive before the fresh snapshots: wait for those, not a frame count only.
      await until(
        'the resync, its fresh snapshots and more traffic',
        () =>
          ingestor.counters.resyncs >= 2 &&
          ingestor.counters.exchangeSnapshots >= 2 * PRODUCTS.length &&
          ingestor.counters.frames >= 800,
        30_000,
      );
    } finally {
      await ingestor.stop();
    }
    expect(logged).toContain('warn:sequence break: resync');
    expect(ingestor.counters.reconnects).toBe(0);

    const records = await readStream(kinesisClient(local.env), STREAM.localName);
    const [conn] = sim.connections();
    for (const product of PRODUCTS) {
      const events: StreamEvent[] = records
        .filter((r) => r.partitionKey === product)
        .flatMap((r) => r.events);
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
      const types = events.map((e) => e.type);
      expect(types.slice(0, 2)).toEqual(['resync', 'snapshot_ref']);
      // The exchange's: the first and the one after the gap (periodic ones follow the simulator's exchange time).
      const exchangeRefs = events.filter((e) => e.type === 'snapshot_ref' && e.source === 'exchange');
      expect(exchangeRefs).toHaveLength(2);
      expect(types.filter((t) => t === 'book_changes').length).toBeGreaterThan(10);

      // Rebuild the book the way a consumer would; it must match the simulator's own book at the last seq.
      await expectSimulatorBook(local.env, sim, conn, product, events);
    }
  });
});
