/**
 * Target vol_spike_60s, stored as its CONTINUOUS value: the forward realized volatility of the tick at t,
 * the root mean square of the 60 one-second log returns of the whole seconds [B, B + 60 s), B = the first
 * second boundary >= t, in basis points. The seconds are those of the feature windows (seconds.ts), so a
 * label at t equals the rv_60s_bps feature of the tick at B + 60 s: backward windows end at the last second
 * boundary <= t, forward ones start at the first boundary >= t, and never overlap.
 *
 * The label is emitted once second B + 59 has closed (watermark >= B + 60 s). If any of the 60 returns is
 * unknown (a gap longer than the gap limit, or an invalid book at a boundary) the label is dropped: no label
 * across a gap. The lake keeps this continuous value; what a SPIKE is, is defined below, once, for training
 * and live quality: the forward volatility relative to the product's trailing level (volSpikeValue) above a
 * τ per product that the training step fixes from training rows and stores with the model.
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

/**
 * The feature a spike is measured against: the tick's trailing 300 s realized volatility (bps), the slowest
 * window the features have. A spike is the next 60 s being much more volatile than the last 5 minutes, not
 * the market being in a volatile hour: the simulated market's volatility has a 6-hour component and a daily
 * cycle, and with an absolute τ per product (forward volatility in bps above the 90th percentile of the first
 * 70 % of the rows) the share of spikes in the 30-minute stretches of 24 simulated hours (seed 101) went from
 * 0 % (most of the day) to 88 % (BTC-USD) and 76 % (ETH-USD), and validation parts of walk-forward folds had no
 * spike at all: the label mostly encoded the slow regime. Divided by the trailing level, the same stretches hold
 * 4-20 % (BTC-USD) and 1-19 % (ETH-USD) spikes: what is left is the burst the target is about.
 */
export const VOL_SPIKE_LEVEL_FEATURE = 'rv_300s_bps';

/**
 * The least trailing level a forward volatility is divided by, bps. rv_300s_bps is 0 when no 1 s return of the
 * last 300 s is known or none moved (a quote that has not changed for 5 minutes): the ratio would be infinite,
 * or huge for a level of a few thousandths of a bp (one $0.01 tick of BTC-USD at $60k is 0.0017 bps). 0.05 bps
 * is just below the lowest trailing level of the simulated market's complete rows (24 hours, seed 101: 0.054
 * bps for BTC-USD, 0.117 for ETH-USD; their medians 0.51 and 1.00), so it changes no ratio of a moving market
 * and keeps a frozen one's finite: a burst after 5 quiet minutes is a spike, not an infinity.
 */
export const VOL_SPIKE_LEVEL_FLOOR_BPS = 0.05;

/**
 * THE spike value of a tick, for training (models/train/targets.ts toSpikeValues) and live quality
 * (src/worker/quality.ts): the forward 60 s realized volatility (the lake's label, bps) over the tick's trailing
 * level (its VOL_SPIKE_LEVEL_FEATURE value, bps), floored at VOL_SPIKE_LEVEL_FLOOR_BPS. NaN when either is NaN.
 */
export function volSpikeValue(forwardRvBps: number, trailingRvBps: number): number {
  if (Number.isNaN(trailingRvBps)) return Number.NaN;
  return forwardRvBps / Math.max(trailingRvBps, VOL_SPIKE_LEVEL_FLOOR_BPS);
}

/** A spike: a spike value strictly above τ (a value equal to τ is not one), in training as live. */
export function isSpikeValue(spikeValue: number, tau: number): boolean {
  return spikeValue > tau;
}

/**
 * How a vol prediction will be judged once its label matures, fixed when it is made (a model swapped in
 * meanwhile does not re-judge it): the τ of the model for the row's product and the row's trailing level.
 * Without `levelBps` the τ is on the forward volatility itself (bps): a model trained before this rule (its
 * metrics.json has one pooled `threshold`), judged by the rule it was trained with.
 */
export interface SpikeJudge {
  tau: number;
  levelBps?: number;
}

/** Whether a matured label (forward volatility, bps) is a spike by `judge`. */
export function isSpike(forwardRvBps: number, judge: SpikeJudge): boolean {
  const value = judge.levelBps === undefined ? forwardRvBps : volSpikeValue(forwardRvBps, judge.levelBps);
  return isSpikeValue(value, judge.tau);
}
