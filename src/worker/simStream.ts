/**
 * A deterministic market stream straight from the simulator's exchange model (no WebSocket, no Kinesis), shaped
 * as the consumer hands it to the worker: shard batches of records of events, with a full inline book snapshot
 * per product at the start and every `snapshotEveryMs`. For worker tests and benchmarks that must not depend on
 * I/O; the same seed always gives the same batches.
 */
import { batchEvents, snapshotEvent } from '../simulator/events.js';
import { productSpecs, SimExchange, seedEpochUs } from '../simulator/exchange.js';
import type { StreamEvent } from '../stream/record.js';
import type { ConsumedRecord, ShardBatch } from './consumer.js';

export interface SimStreamOptions {
  seed: number;
  products: readonly string[];
  seconds: number;
  snapshotEveryMs?: number;
  /** Events per record (per product) and records per batch. */
  eventsPerRecord?: number;
  recordsPerBatch?: number;
  shardId?: string;
}

export function simStream(o: SimStreamOptions): ShardBatch[] {
  const startUs = seedEpochUs(o.seed);
  const exchange = new SimExchange(productSpecs(o.products), o.seed, startUs);
  const everyUs = (o.snapshotEveryMs ?? 10_000) * 1000;
  const perRecord = o.eventsPerRecord ?? 20;
  const perBatch = o.recordsPerBatch ?? 50;
  const shardId = o.shardId ?? 'shardId-000000000000';
  let seq = 0;
  let recordNo = 0;
  const records: ConsumedRecord[] = [];
  const open = new Map<string, StreamEvent[]>();
  const flush = (product: string) => {
    const events = open.get(product);
    if (!events?.length) return;
    // Kinesis sequence numbers are decimal strings ordered as numbers.
    records.push({ sequenceNumber: String(10n ** 20n + BigInt(++recordNo)), product, events });
    open.set(product, []);
  };
  const push = (e: StreamEvent) => {
    let events = open.get(e.product);
    if (!events) {
      events = [];
      open.set(e.product, events);
    }
    events.push(e);
    if (events.length >= perRecord) flush(e.product);
  };
  const snapshotAll = (atUs: number) => {
    for (const m of exchange.markets) {
      const s = ++seq;
      push({ ...snapshotEvent(m, atUs, s), id: `sim:${s}:0` });
    }
  };
  snapshotAll(startUs);
  const endUs = startUs + o.seconds * 1_000_000;
  for (let next = startUs + everyUs; next <= endUs + everyUs; next += everyUs) {
    const until = Math.min(next, endUs);
    exchange.advanceTo(until, (b) => {
      const s = ++seq;
      const [changes, trades] = batchEvents(b, exchange.market(b.productId)!.tickUnits, s);
      if (changes) push({ ...changes, id: `sim:${s}:0` });
      trades.forEach((t, i) => {
        push({ ...t, id: `sim:${s}:${i + 1}` });
      });
    });
    if (until >= endUs) break;
    snapshotAll(until);
  }
  for (const p of open.keys()) flush(p);
  const batches: ShardBatch[] = [];
  for (let i = 0; i < records.length; i += perBatch) {
    batches.push({ shardId, records: records.slice(i, i + perBatch) });
  }
  return batches;
}
