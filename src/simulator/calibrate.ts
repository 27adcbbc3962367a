/**
 * `quotewatch calibrate RECORDING [--out profile.json]`: makes the simulator resemble a recorded market.
 *
 * 1. Measures the recording with the statistics module (src/marketdata/stats.ts): any format `quotewatch
 *    replay` reads (our archive of the live feed, cryptofeed, legacy Exchange, volatility-design NDJSON),
 *    frames mapped by the production mappers.
 * 2. Fits a profile, closed form first: volatility level from the 1 s return sd, the rate of efficient-price
 *    moves from the share of seconds the mid moved, the spread from the median spread, event rates, burst
 *    sizes, removal share, distance and trade-size quantiles, trade-sign persistence. What the recording cannot
 *    show (too short, ticker only) keeps the default profile's value, scaled to the recording's price.
 * 3. Then a short search: a few rounds of simulating the fitted profile (same seed every round, up to an hour)
 *    and correcting each parameter by the ratio of its recorded to its simulated statistic (fixed-point
 *    iteration); each product's move-size tail follows its kurtosis, the factor loadings the correlations, the faster
 *    volatility components the spread of forward 60 s volatility (from 2 h on), the slow ones the
 *    hourly spread (from 3 h on), the re-quote rate the spread's 90th percentile.
 * 4. Runs the fitted profile for the recording's length (at least 10 simulated minutes) and prints both
 *    columns side by side.
 */
import { writeFileSync } from 'node:fs';
import { QuoteWatchError } from '../errors.js';
import { FeedError, MalformedFrameError, mapAdvancedTradeFrame } from '../marketdata/advancedTrade.js';
import type { MarketEvent } from '../marketdata/events.js';
import { mapExchangeFrame } from '../marketdata/exchange.js';
import {
  CORR_MIN_S,
  formatSpan,
  MarketStats,
  type ProductReport,
  STAT_DEFS,
  type StatKey,
  type StatsReport,
} from '../marketdata/stats.js';
import { type RecordingFormat, readRecording } from '../replay/readers.js';
import { productSpecs } from './exchange.js';
import { measureSimulation } from './measure.js';
import {
  defaultProfile,
  genericProfile,
  type MarketProfile,
  PROFILE_VERSION,
  type ProductProfile,
  type Profile,
  parseProfile,
  type QuantilePoints,
} from './profile.js';
import { NO_PROGRESS, type Progress, progressBar } from './progress.js';

export class CalibrateError extends QuoteWatchError {}

/** The shortest simulation calibrate runs, and the longest one a search round runs. */
export const MIN_SIMULATED_S = 600;
const MAX_SEARCH_S = 3600;

export interface RecordingMeasurement {
  report: StatsReport;
  /** Frames read, frames that mapped to no market event, frames that could not be mapped. */
  frames: number;
  badFrames: number;
}

/** Reads a recording through the production mappers into the statistics module. */
export async function measureRecording(
  path: string,
  format: RecordingFormat | 'auto' = 'auto',
  products?: readonly string[],
): Promise<RecordingMeasurement> {
  const stats = new MarketStats(products ? { products } : {});
  let frames = 0;
  let badFrames = 0;
  let events = 0;
  try {
    for await (const f of readRecording(path, format)) {
      frames++;
      // One recording holds one feed; the legacy Exchange feed's frames have a "type" and no "channel".
      const exchange =
        format === 'exchange' || (!f.frame.includes('"channel"') && f.frame.includes('"type"'));
      let mapped: MarketEvent[];
      try {
        mapped = (exchange ? mapExchangeFrame : mapAdvancedTradeFrame)(f.frame, f.recvUs).events;
      } catch (err) {
        if (!(err instanceof MalformedFrameError || err instanceof FeedError)) throw err;
        badFrames++;
        continue;
      }
      for (const e of mapped) {
        stats.push(e);
        events++;
      }
    }
  } catch (cause) {
    if (cause instanceof CalibrateError) throw cause;
    throw new CalibrateError(`cannot read the recording ${path}: ${(cause as Error).message}`, { cause });
  }
  if (events === 0)
    throw new CalibrateError(
      `${path}: no market events in ${frames} frames (${badFrames} could not be mapped)`,
    );
  return { report: stats.finish(), frames, badFrames };
}

// --- fitting ------------------------------------------------------------------------------------------

const clamp = (x: number, lo: number, hi: number) => Math.min(Math.max(x, lo), hi);
const has = (x: number | undefined): x is number => x !== undefined && Number.isFinite(x) && x > 0;

/** Moves per second implied by the share of seconds in which the mid moved (a Poisson count > 0). */
const movesFromShare = (share: number) => -Math.log(1 - clamp(share, 0.001, 0.98));

/** The starting point for a product: its default profile, else the generic one, moved to the recording's price. */
function startingProfile(r: ProductReport): ProductProfile {
  const known = defaultProfile().products[r.product];
  const price = Number.isFinite(r.firstMid) ? r.firstMid : (known?.price ?? 100);
  const base = known ?? genericProfile(price);
  // Everything in ticks keeps its size in bps: scale by the change of price per tick.
  const k = (price / r.tick) * (base.tick / base.price);
  return {
    ...base,
    price,
    tick: r.tick,
    halfSpreadTicks: Math.max(0.5, base.halfSpreadTicks * k),
    ladderTicks: Math.max(1, base.ladderTicks * k),
    distanceTicks: base.distanceTicks.map(([p, d]) => [p, d * k] as [number, number]),
  };
}

/** Quantile points with the values at p = 0.5 / 0.9 / 0.99 moved to the given ones (the others scaled along). */
function reshape(points: QuantilePoints, median?: number, p90?: number, p99?: number): [number, number][] {
  const at = (q: number) => points.find(([p]) => p === q)?.[1];
  const factor = (p: number) => {
    const pick = (target: number | undefined, q: number) => {
      const now = at(q);
      return has(target) && has(now) ? target / now : undefined;
    };
    const f50 = pick(median, 0.5) ?? 1;
    const f90 = pick(p90, 0.9) ?? f50;
    const f99 = pick(p99, 0.99) ?? f90;
    return p <= 0.5 ? f50 : p <= 0.9 ? f90 : f99;
  };
  let prev = 0;
  return points.map(([p, v]) => {
    const value = Math.max(prev, v * factor(p));
    prev = value;
    return [p, value];
  });
}

/** Closed-form fit of every product the recording has a quote for. */
export function fitProfile(recorded: StatsReport): Profile {
  const market: MarketProfile = structuredClone(defaultProfile().market);
  const products: Record<string, ProductProfile> = {};
  for (const r of recorded.products) {
    if (r.source === 'none' || !Number.isFinite(r.firstMid)) continue;
    const f = r.figures;
    const p = startingProfile(r);
    if (has(f.ret1s_sd_bps)) p.volBps = f.ret1s_sd_bps;
    if (has(f.mid_changed_share)) {
      // Split the moves between the market's common ones and the product's own as in the default profile.
      const base = defaultProfile();
      const common = base.market.commonMovesPerSecond;
      const own = (base.products[r.product] ?? genericProfile()).movesPerSecond;
      p.movesPerSecond = (movesFromShare(f.mid_changed_share) * own) / (own + common);
    }
    if (has(f.spread_median_ticks)) p.halfSpreadTicks = Math.max(0.5, f.spread_median_ticks / 2);
    if (has(f.update_events_per_s)) p.updateEventsPerSecond = f.update_events_per_s;
    if (has(f.level_changes_per_s) && has(f.update_events_per_s))
      p.meanBurst = Math.max(1, f.level_changes_per_s / f.update_events_per_s);
    if (has(f.removal_share)) p.structuralShare = clamp(2 * f.removal_share, 0.05, 1);
    p.distanceTicks = reshape(
      p.distanceTicks,
      f.distance_median_ticks,
      f.distance_p90_ticks,
      f.distance_p99_ticks,
    );
    if (has(f.trades_per_s)) p.tradesPerSecond = f.trades_per_s;
    const usd = (size: number | undefined) => (has(size) ? size * p.price : undefined);
    p.tradeNotionalUsd = reshape(
      p.tradeNotionalUsd,
      usd(f.trade_size_median),
      usd(f.trade_size_p90),
      usd(f.trade_size_p99),
    );
    if (f.trade_sign_acf_lag1 !== undefined)
      p.tradeSignPersistence = clamp((1 + f.trade_sign_acf_lag1) / 2, 0.5, 0.95);
    products[r.product] = p;
  }
  if (Object.keys(products).length === 0)
    throw new CalibrateError('the recording has no quote for any product');
  // Factor loadings start from the defaults: a realized correlation over less than a day is too noisy for a
  // closed form (one large move of one product sinks it); the search moves them.
  return parseProfile({
    version: PROFILE_VERSION,
    description: 'fitted by quotewatch calibrate',
    market,
    products,
  });
}

/** One search round's corrections: each parameter times (recorded / simulated statistic)^exponent. */
export function refineProfile(
  profile: Profile,
  recorded: StatsReport,
  simulated: StatsReport,
  previous?: { profile: Profile; simulated: StatsReport },
): Profile {
  const next: Profile = structuredClone(profile);
  const ratio = (rec: number | undefined, sim: number | undefined, lo = 0.25, hi = 4) =>
    has(rec) && has(sim) ? clamp(rec / sim, lo, hi) : 1;
  const bursts: number[] = [];
  const slows: number[] = [];
  for (const rec of recorded.products) {
    const p = next.products[rec.product];
    const sim = simulated.products.find((s) => s.product === rec.product);
    if (!p || !sim) continue;
    const r = rec.figures;
    const s = sim.figures;
    p.volBps = clamp(p.volBps * ratio(r.ret1s_sd_bps, s.ret1s_sd_bps), 1e-3, 100);
    if (has(r.mid_changed_share) && has(s.mid_changed_share)) {
      const k = ratio(movesFromShare(r.mid_changed_share), movesFromShare(s.mid_changed_share));
      p.movesPerSecond = clamp(p.movesPerSecond * k, 1e-3, 50);
    }
    if (has(r.spread_median_ticks) && r.spread_median_ticks > 1.5)
      p.halfSpreadTicks = clamp(
        p.halfSpreadTicks * ratio(r.spread_median_ticks, s.spread_median_ticks),
        0.5,
        1e5,
      );
    // The 90th percentile of the spread jumps between one tick and a price move's width: damped steps.
    if (has(r.spread_p90_ticks) && has(s.spread_p90_ticks))
      p.requotePerSecond = clamp(
        p.requotePerSecond / ratio(r.spread_p90_ticks, s.spread_p90_ticks) ** 0.25,
        0.1,
        100,
      );
    p.updateEventsPerSecond = clamp(
      p.updateEventsPerSecond * ratio(r.update_events_per_s, s.update_events_per_s),
      0.01,
      1e4,
    );
    if (
      has(r.level_changes_per_s) &&
      has(r.update_events_per_s) &&
      has(s.level_changes_per_s) &&
      has(s.update_events_per_s)
    )
      p.meanBurst = clamp(
        p.meanBurst *
          ratio(r.level_changes_per_s / r.update_events_per_s, s.level_changes_per_s / s.update_events_per_s),
        1,
        1000,
      );
    p.structuralShare = clamp(p.structuralShare * ratio(r.removal_share, s.removal_share), 0.01, 1);
    p.tradesPerSecond = clamp(p.tradesPerSecond * ratio(r.trades_per_s, s.trades_per_s), 0.01, 1e4);
    if (r.trade_sign_acf_lag1 !== undefined && has(s.trade_sign_acf_lag1) && r.trade_sign_acf_lag1 > 0) {
      const rho = (2 * p.tradeSignPersistence - 1) * ratio(r.trade_sign_acf_lag1, s.trade_sign_acf_lag1);
      p.tradeSignPersistence = clamp((1 + rho) / 2, 0.5, 0.97);
    }
    p.distanceTicks = reshape(
      p.distanceTicks,
      scaled(p.distanceTicks, 0.5, r.distance_median_ticks, s.distance_median_ticks),
      scaled(p.distanceTicks, 0.9, r.distance_p90_ticks, s.distance_p90_ticks),
      scaled(p.distanceTicks, 0.99, r.distance_p99_ticks, s.distance_p99_ticks),
    );
    p.tradeNotionalUsd = reshape(
      p.tradeNotionalUsd,
      scaled(p.tradeNotionalUsd, 0.5, r.trade_size_median, s.trade_size_median),
      scaled(p.tradeNotionalUsd, 0.9, r.trade_size_p90, s.trade_size_p90),
      scaled(p.tradeNotionalUsd, 0.99, r.trade_size_p99, s.trade_size_p99),
    );
    // Market-wide shape parameters below: each product votes, the mean wins.
    if (has(r.kurtosis_1s) && has(s.kurtosis_1s)) {
      // Kurtosis ~ exp(4 tail^2) for the moves alone, but the book's timing dilutes it: a secant step when the
      // previous round ran another tail, the model's slope otherwise.
      const err = Math.log(r.kurtosis_1s / s.kurtosis_1s) / 4;
      const t2 = profile.products[rec.product]!.moveSizeTail ** 2;
      const last = previous?.profile.products[rec.product]?.moveSizeTail;
      const kBefore = previous?.simulated.products.find((q) => q.product === rec.product)?.figures
        .kurtosis_1s;
      let step = err;
      if (last !== undefined && has(kBefore) && last ** 2 !== t2) {
        const slope = (Math.log(r.kurtosis_1s / kBefore) / 4 - err) / (t2 - last ** 2);
        if (slope > 0.25) step = err / slope;
      }
      p.moveSizeTail = Math.sqrt(clamp(t2 + step, 0, 4));
    }
    // A few 30-min blocks are too noisy to move the market's volatility components: at least two hours.
    if (
      rec.seconds >= 2 * 3600 &&
      has(r.fwd_rv_q90_over_q50_30min) &&
      has(s.fwd_rv_q90_over_q50_30min) &&
      s.fwd_rv_q90_over_q50_30min > 1.05
    )
      bursts.push(Math.log(r.fwd_rv_q90_over_q50_30min) / Math.log(s.fwd_rv_q90_over_q50_30min));
    if (has(r.hourly_sd_max_over_min) && has(s.hourly_sd_max_over_min) && s.hourly_sd_max_over_min > 1.05)
      slows.push(Math.log(r.hourly_sd_max_over_min) / Math.log(s.hourly_sd_max_over_min));
  }
  for (const pair of recorded.pairs) {
    const sim = simulated.pairs.find((q) => q.a === pair.a && q.b === pair.b);
    const a = next.products[pair.a];
    const b = next.products[pair.b];
    if (!a || !b || pair.corr1m === undefined || sim?.corr1m === undefined) continue;
    // corr ~ loading(a) * loading(b): move both by half the gap (additive: a realized correlation may be <= 0).
    const step = (pair.corr1m - sim.corr1m) / 2;
    a.factorLoading = clamp(a.factorLoading + step, 0, 0.99);
    b.factorLoading = clamp(b.factorLoading + step, 0, 0.99);
  }
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const m = next.market;
  // Kurtosis ~ exp(4 tail^2) for the moves alone: tail^2 moves by log(ratio) / 4.
  // The spread of forward 60 s volatility within 30 min comes from the faster components (half-life < 1 h).
  if (bursts.length) {
    const k = clamp(mean(bursts), 0.5, 2);
    for (const c of m.volComponents) if (c.halfLifeS < 3600) c.sd = clamp(c.sd * k, 0, 3);
  }
  if (slows.length) {
    const k = clamp(mean(slows), 0.5, 2);
    for (const c of m.volComponents) if (c.halfLifeS >= 3600) c.sd = clamp(c.sd * k, 0, 3);
  }
  return parseProfile(next);
}

/** The value at quantile q of `points`, moved by recorded / simulated (undefined when either is unknown). */
function scaled(points: QuantilePoints, q: number, rec: number | undefined, sim: number | undefined) {
  const now = points.find(([p]) => p === q)?.[1];
  return has(rec) && has(sim) && has(now) ? now * clamp(rec / sim, 0.25, 4) : undefined;
}

// --- the command ---------------------------------------------------------------------------------------

export interface CalibrateOptions {
  path: string;
  format?: RecordingFormat | 'auto';
  /** Products to calibrate (default: every product in the recording). */
  products?: readonly string[];
  /** Seed of the simulations (default 1). */
  seed?: number;
  /** Search rounds (default 3). */
  rounds?: number;
  progress?: Progress;
}

export interface CalibrationResult {
  recorded: StatsReport;
  simulated: StatsReport;
  profile: Profile;
  /** Simulated seconds of the final run. */
  seconds: number;
  frames: number;
  badFrames: number;
}

export async function calibrate(o: CalibrateOptions): Promise<CalibrationResult> {
  const progress = o.progress ?? NO_PROGRESS;
  const seed = o.seed ?? 1;
  const rounds = o.rounds ?? 3;
  const measured = await measureRecording(o.path, o.format, o.products);
  const recorded = measured.report;
  let profile = fitProfile(recorded);
  const ids = Object.keys(profile.products);
  const length = Math.max(MIN_SIMULATED_S, ...recorded.products.map((p) => p.seconds));
  const searchLength = Math.min(length, Math.max(MIN_SIMULATED_S, MAX_SEARCH_S));
  // Progress: the search rounds and the final run, weighted by their simulated length.
  const total = rounds * searchLength + length;
  let done = 0;
  const run = (seconds: number) => {
    const report = measureSimulation({
      products: productSpecs(ids, profile),
      seed,
      seconds,
      onProgress: (share) => progress.update((done + share * seconds) / total),
    });
    done += seconds;
    return report;
  };
  let previous: { profile: Profile; simulated: StatsReport } | undefined;
  for (let i = 0; i < rounds; i++) {
    const simulated = run(searchLength);
    const next = refineProfile(profile, recorded, simulated, previous);
    previous = { profile, simulated };
    profile = next;
  }
  const simulated = run(length);
  progress.end();
  return {
    recorded,
    simulated,
    profile,
    seconds: length,
    frames: measured.frames,
    badFrames: measured.badFrames,
  };
}

function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1000) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  if (a >= 0.01) return v.toFixed(3);
  return v.toPrecision(2);
}

/** The recording's and the simulation's figures side by side, per product; notes where a figure is missing. */
export function comparisonTable(recorded: StatsReport, simulated: StatsReport): string {
  const lines: string[] = [];
  for (const rec of recorded.products) {
    const sim = simulated.products.find((p) => p.product === rec.product);
    lines.push(
      `\n${rec.product} (quote from ${rec.source}; recording ${formatSpan(rec.seconds)}, simulated ${formatSpan(sim?.seconds ?? 0)})`,
    );
    lines.push(`  ${'statistic'.padEnd(62)} ${'recording'.padStart(12)} ${'simulated'.padStart(12)}`);
    for (const def of STAT_DEFS) {
      const r = rec.figures[def.key];
      const s = sim?.figures[def.key];
      const cell = (v: number | undefined) => (v === undefined ? '—' : formatValue(v)).padStart(12);
      lines.push(`  ${def.label.padEnd(62)} ${cell(r)} ${cell(s)}`);
    }
    const notes = Object.entries(rec.missing) as [StatKey, string][];
    if (notes.length) {
      lines.push('  not measured on the recording:');
      for (const [key, why] of notes)
        lines.push(`    ${STAT_DEFS.find((d) => d.key === key)!.label}: ${why}`);
    }
  }
  for (const pair of recorded.pairs) {
    const sim = simulated.pairs.find((q) => q.a === pair.a && q.b === pair.b);
    const r = pair.corr1m === undefined ? `— (${pair.note})` : formatValue(pair.corr1m);
    const s = sim?.corr1m === undefined ? '—' : formatValue(sim.corr1m);
    lines.push(`\n${pair.a} / ${pair.b} correlation of 1 min returns: recording ${r}, simulated ${s}`);
  }
  if (recorded.pairs.length === 0 && recorded.products.length === 1)
    lines.push(
      `\n(one product: no cross-product correlation; needs two products and ${formatSpan(CORR_MIN_S)})`,
    );
  return lines.join('\n');
}

export interface CalibrateCommandOptions {
  path: string;
  format: RecordingFormat | 'auto';
  seed: number;
  /** Where the profile goes; without it, printed after the table. */
  out?: string;
  products?: string[];
}

/** `quotewatch calibrate`: prints the comparison and writes (or prints) the profile; exit 2 on a bad recording. */
export async function calibrateCommand(
  options: CalibrateCommandOptions,
  out: (line: string) => void = console.log,
): Promise<number> {
  try {
    const result = await calibrate({ ...options, progress: progressBar('calibrate') });
    out(comparisonTable(result.recorded, result.simulated));
    if (result.badFrames)
      out(`\n${result.badFrames} of ${result.frames} frames could not be mapped (skipped)`);
    const json = `${JSON.stringify(result.profile, null, 2)}\n`;
    if (options.out) {
      writeFileSync(options.out, json);
      out(`\nprofile written to ${options.out} (use it with SIM_PROFILE=${options.out})`);
    } else out(`\n${json}`);
    return 0;
  } catch (err) {
    if (err instanceof CalibrateError) {
      console.error(`quotewatch calibrate: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
