/**
 * Training speed and model size (group `train`), and walk-forward quality on the simulated market (group
 * `quality`).
 *
 * train.gbdt_1m_rows_s     seconds to train the gradient-boosted trees on 1M rows × the l2 model inputs (57),
 *                          200 rounds, depth 6, both cores, no early stopping (every round is built); its
 *                          context adds the CPU seconds the run used (all threads) and the 1-minute load
 *                          average before and after: the machine is shared, and the wall time moves with it
 * train.gbdt_trees_built   the trees that run built (the goal's 200 unless a round found no split)
 * train.lr_1m_rows_s       seconds for the logistic regression (Newton/IRLS) on the same rows
 * train.peak_rss_mb        the process's peak resident memory after the gbdt run (before the regression)
 * model.onnx_bytes         the 200-tree ONNX TreeEnsemble
 * model.onnx_load_ms       onnxruntime session creation for it (src/model/runtime.ts loadModel), median of 5
 *
 * The rows are synthetic (seeded; counts, skewed and signed continuous features, some missing values, a
 * non-linear outcome): only their shape matters for speed. Quality is measured on the simulated market instead.
 *
 * quality.<target>.*       the walk-forward on simulated markets (models/eval/markets.ts evaluateMarkets, as
 *                          `quotewatch walkforward` runs it): MARKET_HOURS simulated hours of the default market for
 *                          each of HELD_OUT_SEEDS, 5 folds, the test rows of the five markets pooled: the chosen
 *                          model's (per fold the learner better on the validation part, as the training job
 *                          chooses) test PR-AUC with its block-bootstrap interval, Brier skill, the test base rate,
 *                          and the best baseline's PR-AUC (base rate, persistence, logistic regression), feature set
 *                          l2; the ticker set's under quality.<target>.ticker.*. Each seed's own figures are in the
 *                          context.
 */
import { loadavg } from 'node:os';
import {
  evaluateMarkets,
  formatPooled,
  HELD_OUT_SEEDS,
  MARKET_HOURS,
  marketKey,
} from '../models/eval/markets.js';
import { BASELINES, formatWalkForward } from '../models/eval/walkForward.js';
import { exportTreeOnnx } from '../models/export/onnx.js';
import { trainGbdt } from '../models/train/gbdt.js';
import { trainLogisticRegression } from '../models/train/logreg.js';
import { featureSpec, MODEL_FEATURES } from '../src/features/spec.js';
import { loadModel } from '../src/model/runtime.js';
import { MODEL_SETS, TARGETS } from '../src/model/types.js';
import { Rng } from '../src/simulator/rng.js';
import { type BenchGroup, type BenchResult, machineContext } from './harness.js';

const ROWS = 1_000_000;
const GBDT = { rounds: 200, maxDepth: 6, learningRate: 0.1, earlyStoppingRounds: 1_000 };

function syntheticRows(rows: number, features: number) {
  const rng = new Rng(42);
  const values = new Float32Array(rows * features);
  const y = new Uint8Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * features;
    for (let f = 0; f < features; f++) {
      const kind = f % 4;
      values[o + f] =
        kind === 0
          ? Math.floor(rng.exponential(0.3)) // a count
          : kind === 1
            ? Math.log1p(rng.exponential(1)) // a log volume
            : kind === 2
              ? rng.normal() // a signed return
              : rng.uniform() * 2 - 1; // an imbalance
    }
    if (r % 50 === 0) values[o + 5] = Number.NaN;
    const x = (f: number) => values[o + f]!;
    const z = 0.8 * x(2) - 0.5 * x(0) + (x(3) > 0.3 ? 1 : -0.5) * x(6) + 0.7 * x(1) * x(10) - 0.5;
    y[r] = rng.uniform() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
  }
  return { values, y };
}

export const trainGroup: BenchGroup = {
  name: 'train',
  description: `gbdt and logistic regression on 1M rows × the l2 set (${MODEL_FEATURES.l2.length} features), ONNX size and load time`,
  async run() {
    const spec = featureSpec(100, 'l2');
    const F = spec.features.length;
    const { values, y } = syntheticRows(ROWS, F);
    const context = { ...machineContext(), rows: ROWS, features: F, ...GBDT };

    const loadBefore = loadavg()[0]!;
    const cpu0 = process.cpuUsage();
    let t0 = performance.now();
    const gbdt = await trainGbdt({ rows: ROWS, features: F, values }, y, GBDT);
    const gbdtS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const gbdtLoad = {
      cpuS: (cpu.user + cpu.system) / 1e6,
      loadAvg1m: [loadBefore, loadavg()[0]!],
    };
    const peakRssMb = process.resourceUsage().maxRSS / 1024;

    const onnx = exportTreeOnnx(gbdt.model, spec, { target: 'vol_spike_60s', version: 'bench' });
    const loads: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const model = await loadModel(onnx, spec, { target: 'vol_spike_60s', version: 'bench' });
      loads.push(performance.now() - start);
      await model.release();
    }
    loads.sort((a, b) => a - b);

    const X: number[][] = Array.from({ length: ROWS }, (_, r) =>
      Array.from(values.subarray(r * F, (r + 1) * F), (v) => (Number.isNaN(v) ? 0 : v)),
    );
    t0 = performance.now();
    trainLogisticRegression(X, Array.from(y), { l2: 1e-3 });
    const lrS = (performance.now() - t0) / 1000;

    const result = (name: string, value: number, unit: string, extra = {}): BenchResult => ({
      name,
      value,
      unit,
      context: { ...context, ...extra },
    });
    return [
      result('train.gbdt_1m_rows_s', gbdtS, 's', { goal: '<= 60 s on 2 cores', ...gbdtLoad }),
      result('train.gbdt_trees_built', gbdt.treesBuilt, 'trees'),
      result('train.lr_1m_rows_s', lrS, 's', { note: `Newton/IRLS, ${F} standardized features, l2 1e-3` }),
      result('train.peak_rss_mb', peakRssMb, 'MB', { note: 'after the gbdt run, before the regression' }),
      result('model.onnx_bytes', onnx.length, 'bytes', { trees: gbdt.model.trees.length }),
      result('model.onnx_load_ms', loads[2]!, 'ms', { note: 'median of 5 InferenceSession creations' }),
    ];
  },
};

export const qualityGroup: BenchGroup = {
  name: 'quality',
  description: `walk-forward (5 folds, l2 and ticker) on ${MARKET_HOURS} simulated hours of each of seeds ${HELD_OUT_SEEDS.join(', ')}: the chosen model vs baselines, both targets`,
  async run() {
    const started = performance.now();
    const { runs, pooled } = await evaluateMarkets({
      seeds: HELD_OUT_SEEDS,
      hours: MARKET_HOURS,
      targets: TARGETS,
      sets: MODEL_SETS,
      onRun: ({ seed, report }) =>
        console.error(
          `quality: seed ${seed} ${marketKey(report.target, report.set)}: ${formatWalkForward([{ ...report, seed }]).split('\n')[1]}`,
        ),
    });
    console.error(formatPooled(pooled));
    const out: BenchResult[] = [];
    for (const p of pooled) {
      const list = runs.get(marketKey(p.target, p.set))!;
      const { chosen } = p.overall;
      const context = {
        ...machineContext(),
        seeds: p.seeds,
        simulatedHoursPerSeed: MARKET_HOURS,
        set: p.set,
        learners: list.map((r) => r.report.folds.map((f) => f.chosen.learner)),
        testRows: p.testRows,
        blockS: p.blockUs / 1e6,
        embargoS: list[0]!.report.embargoUs / 1e6,
        secondsAllGroups: (performance.now() - started) / 1000,
        prAucInterval: [chosen.prAuc.lo, chosen.prAuc.hi],
        brierSkillInterval: [chosen.brierSkill.lo, chosen.brierSkill.hi],
        bestBaseline: p.bestBaseline,
        baselines: Object.fromEntries(BASELINES.map((b) => [b, p.overall[b].prAuc])),
        gainInMainMetric: { metric: p.mainMetric, ...p.gain },
        perSeed: list.map((r) => ({
          seed: r.seed,
          folds: `${r.report.folds.length}/${r.report.folds.length + r.report.skipped.length}`,
          prAuc: r.report.overall.chosen.prAuc,
          bestBaselinePrAuc: Math.max(...BASELINES.map((b) => r.report.overall[b].prAuc.value)),
          gainLo: Object.fromEntries(BASELINES.map((b) => [b, r.report.gain[b].lo])),
        })),
      };
      // The issue's keys are the l2 set's; the ticker set's figures sit beside them under `.ticker.`.
      const key = (k: string) => `quality.${p.target}.${p.set === 'l2' ? '' : `${p.set}.`}${k}`;
      out.push(
        { name: key('pr_auc'), value: chosen.prAuc.value, unit: 'AP', context },
        { name: key('pr_auc_lo'), value: chosen.prAuc.lo, unit: 'AP', context },
        { name: key('brier_skill'), value: chosen.brierSkill.value, unit: 'ratio', context },
        { name: key('base_rate'), value: p.baseRate, unit: 'ratio', context },
        {
          name: key('best_baseline_pr_auc'),
          value: p.overall[p.bestBaseline].prAuc.value,
          unit: 'AP',
          context,
        },
      );
    }
    return out;
  },
};
