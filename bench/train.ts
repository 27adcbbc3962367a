/**
 * Training speed and model size (group `train`), and walk-forward quality on the simulated market (group
 * `quality`).
 *
 * train.gbdt_1m_rows_s     seconds to train the gradient-boosted trees on 1M rows × the l2 model inputs (42),
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
 * quality.<target>.*       walk-forward (models/eval/walkForward.ts, 5 folds, feature set l2) on QUALITY_HOURS
 *                          simulated hours of the default market (seed 101): the gbdt's pooled test PR-AUC with
 *                          its block-bootstrap interval, Brier skill, the test base rate, and the best baseline's
 *                          PR-AUC (base rate, persistence, logistic regression).
 */
import { loadavg } from 'node:os';
import { buildDatasets } from '../models/baseline.js';
import { BASELINES, walkForward } from '../models/eval/walkForward.js';
import { exportTreeOnnx } from '../models/export/onnx.js';
import { trainGbdt } from '../models/train/gbdt.js';
import { trainLogisticRegression } from '../models/train/logreg.js';
import { featureSpec } from '../src/features/spec.js';
import { loadModel } from '../src/model/runtime.js';
import { Rng } from '../src/simulator/rng.js';
import { type BenchGroup, type BenchResult, machineContext } from './harness.js';

const ROWS = 1_000_000;
const GBDT = { rounds: 200, maxDepth: 6, learningRate: 0.1, earlyStoppingRounds: 1_000 };
const QUALITY_HOURS = 3;
const QUALITY_SEED = 101;

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
  description: 'gbdt and logistic regression on 1M rows × 42 features, ONNX size and load time',
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
      result('train.lr_1m_rows_s', lrS, 's', { note: 'Newton/IRLS, 42 standardized features, l2 1e-3' }),
      result('train.peak_rss_mb', peakRssMb, 'MB', { note: 'after the gbdt run, before the regression' }),
      result('model.onnx_bytes', onnx.length, 'bytes', { trees: gbdt.model.trees.length }),
      result('model.onnx_load_ms', loads[2]!, 'ms', { note: 'median of 5 InferenceSession creations' }),
    ];
  },
};

export const qualityGroup: BenchGroup = {
  name: 'quality',
  description: `walk-forward (5 folds, l2) on ${QUALITY_HOURS} simulated hours: gbdt vs baselines, both targets`,
  async run() {
    const data = buildDatasets({ seed: QUALITY_SEED, minutes: QUALITY_HOURS * 60 });
    const out: BenchResult[] = [];
    for (const [target, examples] of [
      ['quote_change_500ms', data.quoteChange],
      ['vol_spike_60s', data.volSpike],
    ] as const) {
      const started = performance.now();
      const { report } = await walkForward(examples, { target, set: 'l2', l2Grid: [1e-2, 1] });
      const { gbdt } = report.overall;
      const best = Math.max(...BASELINES.map((b) => report.overall[b].prAuc.value));
      const context = {
        ...machineContext(),
        seed: QUALITY_SEED,
        simulatedHours: QUALITY_HOURS,
        folds: report.folds.length,
        testRows: report.test.rows,
        testBlocks: report.test.blocks,
        blockS: report.blockUs / 1e6,
        embargoS: report.embargoUs / 1e6,
        seconds: (performance.now() - started) / 1000,
        prAucInterval: [gbdt.prAuc.lo, gbdt.prAuc.hi],
        baselines: Object.fromEntries(BASELINES.map((b) => [b, report.overall[b].prAuc])),
        gainInMainMetric: { metric: report.mainMetric, ...report.gain },
        trees: report.folds.map((f) => f.chosen.gbdtTrees),
      };
      const key = (k: string) => `quality.${target}.${k}`;
      out.push(
        { name: key('pr_auc'), value: gbdt.prAuc.value, unit: 'AP', context },
        { name: key('pr_auc_lo'), value: gbdt.prAuc.lo, unit: 'AP', context },
        { name: key('brier_skill'), value: gbdt.brierSkill.value, unit: 'ratio', context },
        { name: key('base_rate'), value: report.test.baseRate, unit: 'ratio', context },
        { name: key('best_baseline_pr_auc'), value: best, unit: 'AP', context },
      );
    }
    return out;
  },
};
