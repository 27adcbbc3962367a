/**
 * The lake's corrections zone against s3rver: a suspect mark is written once per check. A worker replaying after a
 * restart judges the same check again but no longer holds the history of which levels matched before its replay
 * point, so its mark may be narrower: it must leave the first one in place.
 */
import { describe, expect, it } from 'vitest';
import { s3Client } from '../src/aws/clients.js';
import { BUCKETS } from '../src/resources.js';
import { correctionKey, putCorrection } from '../src/storage/corrections.js';
import { readLakeZone } from '../src/storage/lakeReader.js';
import { type CorrectionRow, decodeCorrectionRows } from '../src/storage/parquet.js';
import { withEmulators } from './support/system.js';

const local = withEmulators({ provision: true });
const T0 = Date.UTC(2026, 7, 9, 21, 0, 0) * 1000;

const mark = (checkId: string, fromUs: number): CorrectionRow => ({
  product: 'ETH-USD',
  fromUs,
  toUs: T0 + 60e6,
  mark: 'suspect',
  checkId,
  reason: 'bid 100.5: ours 1.2, exchange 0.7',
});

describe('suspect marks (src/storage/corrections.ts)', () => {
  it("writes a check's mark once: the replay's narrower one leaves the first in place; another check's is added", async () => {
    const s3 = s3Client(local.env);
    const bucket = BUCKETS.lake.localName;
    const live = mark('c:ETH-USD:1', T0);
    expect(await putCorrection(s3, bucket, live)).toEqual({ key: correctionKey(live), written: true });
    const replayed = mark('c:ETH-USD:1', T0 + 30e6);
    expect(correctionKey(replayed)).toBe(correctionKey(live));
    expect(await putCorrection(s3, bucket, replayed)).toEqual({ key: correctionKey(live), written: false });
    const other = mark('c:ETH-USD:2', T0 + 10e6);
    expect((await putCorrection(s3, bucket, other)).written).toBe(true);
    const stored = await readLakeZone(s3, bucket, 'corrections', decodeCorrectionRows);
    expect(stored.sort((a, b) => a.fromUs - b.fromUs)).toEqual([live, other]);
  });
});
