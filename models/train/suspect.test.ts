import { describe, expect, it } from 'vitest';
import type { CorrectionRow } from '../../src/storage/parquet.js';
import type { Example } from './dataset.js';
import { withoutSuspect } from './lakeDataset.js';

const ex = (product: string, tsUs: number): Example => ({ product, tsUs, x: [1], y: 0 });
const mark = (product: string, fromUs: number, toUs: number): CorrectionRow => ({
  product,
  fromUs,
  toUs,
  mark: 'suspect',
  checkId: `v:${product}:${toUs}`,
  reason: 'test',
});

describe('training without suspect rows', () => {
  const examples = [ex('BTC-USD', 10), ex('BTC-USD', 20), ex('BTC-USD', 30), ex('ETH-USD', 20)];
  const marks = [mark('BTC-USD', 20, 30)];

  it('leaves out the rows inside a suspect span of their own product, [from, to)', () => {
    const { examples: kept, suspectRows } = withoutSuspect(examples, marks, false);
    expect(kept.map((e) => `${e.product}@${e.tsUs}`)).toEqual(['BTC-USD@10', 'BTC-USD@30', 'ETH-USD@20']);
    expect(suspectRows).toBe(1);
  });

  it('keeps and still counts them when asked (TRAIN_KEEP_SUSPECT)', () => {
    const { examples: kept, suspectRows } = withoutSuspect(examples, marks, true);
    expect(kept).toHaveLength(4);
    expect(suspectRows).toBe(1);
  });
});
