/**
 * The walk-forward on simulated markets (the default profiles, one market per seed), each market's test rows then
 * pooled into one sample: what `npm run bench -- --only quality` records and `quotewatch walkforward` prints.
 * One function for both, so a figure from the command line is the bench's figure for the same seeds and hours.
 */
import type { FeatureSet } from '../../src/features/spec.js';
import type { Target } from '../../src/model/types.js';
import { buildDatasets, examplesOf } from '../baseline.js';
import {
  type BootstrapOptions,
  DEFAULT_BOOTSTRAP,
  type Interval,
  type MetricIntervals,
  type MetricName,
} from './bootstrap.js';
import {
  BASELINES,
  type BaselineName,
  concatPredictions,
  type ModelName,
  summarizePredictions,
  type TestPredictions,
  textTable,
  type WalkForwardOptions,
  type WalkForwardReport,
  walkForward,
} from './walkForward.js';

/** The issue's held-out markets: never used while developing the models or the market. */
export const HELD_OUT_SEEDS: readonly number[] = [101, 102, 103, 104, 105];
export const MARKET_HOURS = 6;
/**
 * The regressions' L2 penalties tried per fold: two of the walk-forward's default four, as every quality figure in
 * the README was measured (each penalty is one more regression per fold and learner).
 */
export const MARKET_L2_GRID: readonly number[] = [1e-2, 1];

export interface MarketRun {
  seed: number;
  report: WalkForwardReport;
  predictions: TestPredictions;
}

/** One target and set over all the markets: their test rows as one sample (each market its own stretch of blocks). */
export interface PooledMarkets {
  target: Target;
  set: FeatureSet;
  seeds: number[];
  mainMetric: MetricName;
  blockUs: number;
  testRows: number;
  baseRate: number;
  overall: Record<ModelName, MetricIntervals>;
  /** The chosen model's gain over each baseline in the main metric (positive = better), paired intervals. */
  gain: Record<BaselineName, Interval>;
  /** The baseline with the highest pooled PR-AUC. */
  bestBaseline: BaselineName;
}

export interface MarketOptions {
  seeds: readonly number[];
  hours: number;
  targets: readonly Target[];
  sets: readonly FeatureSet[];
  /** Walk-forward settings beyond the target and set; the l2 grid defaults to MARKET_L2_GRID. */
  walkForward?: Partial<Omit<WalkForwardOptions, 'target' | 'set'>>;
  /** Called after each market, target and set. */
  onRun?: (run: MarketRun) => void;
}

/** Runs every seed, target and set (one market at a time: its rows are released before the next is simulated). */
export async function evaluateMarkets(
  o: MarketOptions,
): Promise<{ runs: Map<string, MarketRun[]>; pooled: PooledMarkets[] }> {
  const runs = new Map<string, MarketRun[]>();
  for (const seed of o.seeds) {
    const data = buildDatasets({ seed, minutes: o.hours * 60 });
    for (const target of o.targets) {
      const examples = examplesOf(data, target);
      for (const set of o.sets) {
        const run = {
          seed,
          ...(await walkForward(examples, { l2Grid: [...MARKET_L2_GRID], ...o.walkForward, target, set })),
        };
        o.onRun?.(run);
        const key = marketKey(target, set);
        runs.set(key, [...(runs.get(key) ?? []), run]);
      }
    }
  }
  const pooled: PooledMarkets[] = [];
  for (const target of o.targets)
    for (const set of o.sets)
      pooled.push(poolMarkets(target, set, runs.get(marketKey(target, set))!, o.walkForward?.bootstrap));
  return { runs, pooled };
}

export const marketKey = (target: string, set: FeatureSet) => `${target}/${set}`;

/** The markets' test rows of one target and set as one sample, every model's intervals and the chosen one's gains. */
export function poolMarkets(
  target: Target,
  set: FeatureSet,
  list: readonly MarketRun[],
  bootstrap: Partial<Omit<BootstrapOptions, 'blockUs'>> = {},
): PooledMarkets {
  const { blockUs, mainMetric } = list[0]!.report;
  const predictions = concatPredictions(
    list.map((r) => r.predictions),
    blockUs,
  );
  const { overall, gain } = summarizePredictions(predictions, mainMetric, {
    ...DEFAULT_BOOTSTRAP,
    ...bootstrap,
    blockUs,
  });
  const positives = predictions.y.reduce((n, v) => n + v, 0);
  return {
    target,
    set,
    seeds: list.map((r) => r.seed),
    mainMetric,
    blockUs,
    testRows: predictions.y.length,
    baseRate: positives / predictions.y.length,
    overall,
    gain,
    bestBaseline: BASELINES.reduce((a, b) => (overall[b].prAuc.value > overall[a].prAuc.value ? b : a)),
  };
}

/** Whether the pooled figures meet the issue's goal: the chosen model's PR-AUC lower bound above the best baseline's PR-AUC, positive Brier skill. */
export function meetsGoal(p: PooledMarkets): boolean {
  return (
    p.overall.chosen.prAuc.lo > p.overall[p.bestBaseline].prAuc.value && p.overall.chosen.brierSkill.value > 0
  );
}

/** One line per target and set: the pooled chosen PR-AUC, the best baseline, Brier skill, the gains' intervals. */
export function formatPooled(pooled: readonly PooledMarkets[]): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(4) : '—');
  const header = [
    'pooled seeds',
    'target',
    'set',
    'test rows',
    'chosen PR-AUC',
    'best baseline PR-AUC',
    'Brier skill',
    'main gain vs each baseline [lo, hi]',
    'goal',
  ];
  const rows = pooled.map((p) => {
    const c = p.overall.chosen;
    return [
      p.seeds.join(','),
      p.target,
      p.set,
      String(p.testRows),
      `${f(c.prAuc.value)} [${f(c.prAuc.lo)}, ${f(c.prAuc.hi)}]`,
      `${f(p.overall[p.bestBaseline].prAuc.value)} (${p.bestBaseline})`,
      f(c.brierSkill.value),
      `${p.mainMetric}: ${BASELINES.map((b) => `${b} [${f(p.gain[b].lo)}, ${f(p.gain[b].hi)}]`).join(', ')}`,
      meetsGoal(p) ? 'met' : 'not met',
    ];
  });
  return textTable(header, rows);
}
