import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '../src/stream/record.js';
import type { ShardBatch } from '../src/worker/consumer.js';
import { Worker } from '../src/worker/worker.js';

const P = 'BTC-USD';
const T0 = 1_700_000_000_000_000; // a multiple of the 100 ms tick, in µs

/** A snapshot, then 2 s of silence, then a heartbeat: a gap only for limits below 2 s. */
function batch(): ShardBatch {
  const at = (ms: number, seq: number) => ({
    product: P,
    exchUs: T0 + ms * 1000,
    recvUs: T0 + ms * 1000,
    seq,
  });
  const events: StreamEvent[] = [
    {
      ...at(10, 1),
      id: 'e1',
      type: 'book_snapshot',
      bids: [['100.00', '1']],
      asks: [['100.02', '1']],
    },
    { ...at(2010, 2), id: 'e2', type: 'heartbeat', counter: 2 },
  ];
  return { shardId: 'shardId-000000000000', records: [{ sequenceNumber: '1', product: P, events }] };
}

/** Rows flagged as a data gap when the worker is given this limit. */
async function gapTicks(gapLimitMs: number | undefined): Promise<{ rows: number; gaps: number }> {
  const worker = new Worker({
    tickMs: 100,
    deltaMs: 500,
    gapLimitMs,
    // Never reached: no snapshot_ref to fetch, and no lake window closes within one hour of ticks.
    s3: new S3Client({ region: 'us-east-1', endpoint: 'http://127.0.0.1:9' }),
    lakeBucket: 'unused',
    objectTicks: 36_000,
    writeLatest: async () => {},
    now: () => 0,
    log: () => {},
  });
  await worker.handleBatch(batch());
  const s = worker.pipeline.stats();
  return { rows: s.rows, gaps: s.gapTicks };
}

describe('worker gap limit', () => {
  it('reaches the feature pipeline: the same stream has gap ticks under a 1 s limit and none under 5 s', async () => {
    const strict = await gapTicks(1000);
    const lenient = await gapTicks(5000);
    expect(strict.rows).toBe(lenient.rows);
    expect(lenient.gaps).toBe(0);
    // Ticks more than 1 s after the snapshot (at 10 ms) are stale: 1100 .. 2000 ms.
    expect(strict.gaps).toBe(10);
  });
});
