/**
 * Measures a simulated market the same way the README's calibration table measured the real capture, per
 * regime, so the calibration test (and anyone tuning regimes.ts) compares like with like.
 */
import type { BookSide } from './book.js';
import { type Market, TICK, UNITS_PER_ONE } from './market.js';
import type { RegimeName } from './regimes.js';

export interface RegimeStats {
  seconds: number;
  updateEventsPerSec: number;
  levelChangesPerSec: number;
  removalShare: number;
  /** Distance of each change from the same side's best before it, ticks: 25/50/75/90/99%. */
  distanceQuantiles: number[];
  /** Spread in ticks at 100 ms samples: 10/50/90%. */
  spreadQuantiles: number[];
  tradesPerSec: number;
  /** Trade notional, USD: 50/90/99%. */
  tradeNotionalQuantiles: number[];
  /** Share of 100 ms samples where the best bid or ask price changes within the next 500 ms. */
  quoteChange500ms: number;
  samples: number;
}

export function quantile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

interface Acc {
  seconds: number;
  updates: number;
  changes: number;
  removals: number;
  distances: number[];
  spreads: number[];
  trades: number;
  notionals: number[];
  labels: number[];
}

const newAcc = (): Acc => ({
  seconds: 0,
  updates: 0,
  changes: 0,
  removals: 0,
  distances: [],
  spreads: [],
  trades: 0,
  notionals: [],
  labels: [],
});

/** Runs `market` for `seconds` of exchange time from its current time and measures it per regime. */
export function measureMarket(
  market: Market,
  seconds: number,
  sampleMs = 100,
  horizonMs = 500,
): Partial<Record<RegimeName, RegimeStats>> {
  const acc: Record<RegimeName, Acc> = { pinned: newAcc(), busy: newAcc() };
  const startUs = market.timeUs;
  const endUs = startUs + seconds * 1_000_000;
  // Quote-change times, to label each sample by whether the quote moves within the horizon.
  const quoteChanges: number[] = [];
  const samples: { us: number; regime: RegimeName }[] = [];
  let quote = `${market.bestBid()?.priceTicks}/${market.bestAsk()?.priceTicks}`;
  let nextSampleUs = startUs;
  let lastUs = startUs;

  while (market.peekTimeUs() <= endUs) {
    const t = market.peekTimeUs();
    while (nextSampleUs < t) {
      const b = market.bestBid()?.priceTicks ?? 0;
      const a = market.bestAsk()?.priceTicks ?? 0;
      const regime = market.regimeAt(nextSampleUs);
      acc[regime].spreads.push(a - b);
      samples.push({ us: nextSampleUs, regime });
      nextSampleUs += sampleMs * 1000;
    }
    const regime = market.regime;
    acc[regime].seconds += (t - lastUs) / 1e6;
    lastUs = t;
    const best: Record<BookSide, number | undefined> = {
      bid: market.bestBid()?.priceTicks,
      ask: market.bestAsk()?.priceTicks,
    };
    const batch = market.step();
    if (!batch) continue;
    const a = acc[regime];
    if (batch.changes.length > 0) a.updates++;
    for (const c of batch.changes) {
      a.changes++;
      if (c.qtyUnits === 0) a.removals++;
      const ref = best[c.side];
      if (ref !== undefined) a.distances.push(Math.abs(c.priceTicks - ref));
    }
    for (const tr of batch.trades) {
      a.trades++;
      a.notionals.push((tr.sizeUnits / UNITS_PER_ONE) * tr.priceTicks * TICK);
    }
    const q = `${market.bestBid()?.priceTicks}/${market.bestAsk()?.priceTicks}`;
    if (q !== quote) quoteChanges.push(batch.timeUs);
    quote = q;
  }

  // Label: some quote change in (t, t + horizon]; samples whose horizon runs past the end are dropped.
  let j = 0;
  for (const s of samples) {
    if (s.us + horizonMs * 1000 > endUs) break;
    while (j < quoteChanges.length && quoteChanges[j]! <= s.us) j++;
    const next = quoteChanges[j];
    acc[s.regime].labels.push(next !== undefined && next <= s.us + horizonMs * 1000 ? 1 : 0);
  }

  const out: Partial<Record<RegimeName, RegimeStats>> = {};
  for (const regime of ['pinned', 'busy'] as const) {
    const a = acc[regime];
    if (a.seconds <= 0) continue;
    const sortNum = (xs: number[]) => Float64Array.from(xs).sort();
    const dist = sortNum(a.distances);
    const spreads = sortNum(a.spreads);
    const notionals = sortNum(a.notionals);
    out[regime] = {
      seconds: a.seconds,
      updateEventsPerSec: a.updates / a.seconds,
      levelChangesPerSec: a.changes / a.seconds,
      removalShare: a.changes ? a.removals / a.changes : Number.NaN,
      distanceQuantiles: [0.25, 0.5, 0.75, 0.9, 0.99].map((q) => quantile(dist, q)),
      spreadQuantiles: [0.1, 0.5, 0.9].map((q) => quantile(spreads, q)),
      tradesPerSec: a.trades / a.seconds,
      tradeNotionalQuantiles: [0.5, 0.9, 0.99].map((q) => quantile(notionals, q)),
      quoteChange500ms: a.labels.length ? a.labels.reduce((s, x) => s + x, 0) / a.labels.length : Number.NaN,
      samples: a.labels.length,
    };
  }
  return out;
}
