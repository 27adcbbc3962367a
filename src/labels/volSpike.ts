/**
 * Target vol_spike_60s, stored as its CONTINUOUS value: the forward realized volatility of the tick at t,
 * the root mean square of the 60 one-second log returns of the whole seconds [B, B + 60 s), B = the first
 * second boundary >= t, in basis points. The seconds are those of the feature windows (seconds.ts), so a
 * label at t equals the rv_60s_bps feature of the tick at B + 60 s: backward windows end at the last second
 * boundary <= t, forward ones start at the first boundary >= t, and never overlap.
 *
 * The label is emitted once second B + 59 has closed (watermark >= B + 60 s). If any of the 60 returns is
 * unknown (a gap longer than the gap limit, or an invalid book at a boundary) the label is dropped: no label
 * across a gap. The spike threshold τ is NOT applied here: the training step fixes it from training data
 * and stores it with the model.
 */

import type { LabelRow } from '../features/types.js';

export const VOL_SPIKE_TARGET = 'vol_spike_60s' as const;
export const VOL_HORIZON_S = 60;

/** What the labeler reads: the 1 s return of a closed second (NaN when unknown). */
export interface SecondReturns {
  returnOf(second: number): number;
}

interface Pending {
  tsUs: number;
  /** First second of the forward window. */
  from: number;
  seq: number;
}

export class VolSpikeLabeler {
  private readonly pending: Pending[] = [];
  private head = 0;
  /** Ticks whose forward window held an unknown return (gap), so no label. */
  dropped = 0;

  constructor(readonly product: string) {}

  /** Registers the tick at tsUs (time order). */
  addTick(tsUs: number, seq = -1): void {
    this.pending.push({ tsUs, from: Math.ceil(tsUs / 1e6), seq });
  }

  /**
   * Emits the labels of every pending tick whose forward window has fully closed, given that seconds
   * before `closedUntil` are closed in `series`.
   */
  resolve(closedUntil: number, series: SecondReturns, out: LabelRow[]): void {
    let cachedFrom = Number.NaN;
    let cached = Number.NaN;
    while (this.head < this.pending.length) {
      const p = this.pending[this.head]!;
      if (p.from + VOL_HORIZON_S > closedUntil) break;
      this.head++;
      // Ticks within one second share their window: compute it once.
      if (p.from !== cachedFrom) {
        cachedFrom = p.from;
        cached = forwardVolBps(series, p.from);
      }
      if (Number.isNaN(cached)) {
        this.dropped++;
        continue;
      }
      out.push({ product: this.product, tsUs: p.tsUs, target: VOL_SPIKE_TARGET, value: cached, seq: p.seq });
    }
    if (this.head > 1024 && this.head * 2 > this.pending.length) {
      this.pending.splice(0, this.head);
      this.head = 0;
    }
  }

  get pendingCount(): number {
    return this.pending.length - this.head;
  }
}

/**
 * RMS of the 1 s log returns of seconds [from, from + 60), bps; NaN if any is unknown. Summed newest first,
 * in the order the rv_60s_bps feature sums, so both give the same bits for the same seconds.
 */
export function forwardVolBps(series: SecondReturns, from: number): number {
  let sum2 = 0;
  for (let k = from + VOL_HORIZON_S - 1; k >= from; k--) {
    const r = series.returnOf(k);
    if (Number.isNaN(r)) return Number.NaN;
    sum2 += r * r;
  }
  return Math.sqrt(sum2 / VOL_HORIZON_S) * 1e4;
}

/** ONNX metadata_props key holding τ of a vol_spike_60s model (also `threshold` in its metrics.json). */
