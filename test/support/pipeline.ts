/**
 * Builders shared by the tests that feed hand-made event sequences through the FeaturePipeline.
 */
import { FeaturePipeline, type PipelineOptions, type PipelineStats } from '../../src/features/pipeline.js';
import type { FeatureRow, LabelRow } from '../../src/features/types.js';
import type { MarketEvent } from '../../src/marketdata/events.js';

/** A mid path with known, irregular steps: the mid of the j-th quote. */
export const midPath = (j: number) => 100 + ((j * j) % 7) + j / 10;

/** A one-level book snapshot around `mid`: spread 1, sizes 2 (bid) / 1 (ask). */
export function quoteSnapshot(product: string, mid: number, atUs: number, seq: number): MarketEvent {
  return {
    type: 'book_snapshot',
    product,
    exchUs: atUs,
    recvUs: atUs,
    seq,
    bids: [[(mid - 0.5).toFixed(2), '2']],
    asks: [[(mid + 0.5).toFixed(2), '1']],
  };
}

/** Pushes the events one at a time, draining after each (as the worker does); every row and label out. */
export function runPipeline(
  options: PipelineOptions,
  events: MarketEvent[],
): { rows: FeatureRow[]; labels: LabelRow[]; stats: PipelineStats } {
  const p = new FeaturePipeline(options);
  const rows: FeatureRow[] = [];
  const labels: LabelRow[] = [];
  for (const e of events) {
    p.push(e);
    const out = p.drain();
    rows.push(...out.rows);
    labels.push(...out.labels);
  }
  return { rows, labels, stats: p.stats() };
}
