/**
 * The simulated market against the day rows of issue #10's table, and how fast `quotewatch simulate` fills
 * the lake.
 *
 * sim.btc.* / sim.btc_eth_corr_1m: a seeded 24-simulated-hour run of BTC-USD, ETH-USD and SOL-USD in process
 * (src/simulator/measure.ts: the simulator's batches as normalized events into src/marketdata/stats.ts, the
 * same module `quotewatch calibrate` measures recordings with). Each figure's context has its target range and
 * whether the run is inside it; the first one's context has every figure of every product and the hourly
 * values.
 *
 * sim.simulated_hours_per_wall_minute: `quotewatch simulate --hours N --products BTC-USD,ETH-USD,SOL-USD` as a
 * child process against its own emulators on free ports (N = SIM_BENCH_HOURS, default 24: the issue's goal is
 * one simulated day in at most 15 minutes on 2 cores); the figure is the command's own summary (simulation,
 * mapper, record codec, worker, scoring with the baseline models, S3 puts), the context adds the whole
 * command's wall time (start-up and provisioning included).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmulators } from '../src/local/emulators.js';
import { freePort } from '../src/local/ports.js';
import type { StatKey } from '../src/marketdata/stats.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { measureSimulation } from '../src/simulator/measure.js';
import { type BenchGroup, type BenchResult, machineContext } from './harness.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const SEED = 20_240_601;
const PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD'];

/** The day targets for BTC-USD. */
const TARGETS: [key: StatKey, min: number, max: number, row: string][] = [
  ['ret1s_sd_bps', 0.3, 1.2, 'sd of 1 s mid log returns, pooled over the day'],
  ['hourly_sd_max_over_min', 4, Number.POSITIVE_INFINITY, 'hourly sd: busiest / quietest hour'],
  ['top1pct_var_share', 0.3, 0.8, 'share of variance from the largest 1% of returns'],
  ['kurtosis_1s', 10, 100, 'kurtosis of 1 s returns'],
  ['mid_changed_share', 0.2, 0.7, 'share of seconds in which the mid changed'],
  ['spread_p90_ticks', 5, Number.POSITIVE_INFINITY, 'spread 90th percentile, ticks (median must be 1)'],
  ['rv5m_acf_lag12', 0.3, 1, 'autocorrelation of 5-min realized vol at lag 12 (1 h), over 24 h'],
  ['ofi_r2_same_s', 0.2, 0.7, 'OFI over 1 s against the mid change of the same second, R²'],
  ['ofi_r2_next_s', 0.005, 0.05, 'the same against the next second, R²'],
  ['fwd_rv_q90_over_q50_30min', 1.5, 2.5, 'forward 60 s realized vol q90/q50 within 30 min'],
];

async function dayFigures(): Promise<BenchResult[]> {
  const t0 = performance.now();
  const report = measureSimulation({ products: productSpecs(PRODUCTS), seed: SEED, seconds: 24 * 3600 });
  const wallS = (performance.now() - t0) / 1000;
  const btc = report.products.find((p) => p.product === 'BTC-USD')!;
  const run = {
    seed: SEED,
    simulatedHours: 24,
    products: PRODUCTS,
    command: 'npm run bench -- --only sim (measureSimulation, default profile)',
    wallSeconds: +wallS.toFixed(1),
  };
  const results: BenchResult[] = TARGETS.map(([key, min, max, row]) => {
    const value = btc.figures[key] ?? Number.NaN;
    return {
      name: `sim.btc.${key}`,
      value,
      unit: key.endsWith('ticks') ? 'ticks' : key.endsWith('bps') ? 'bps' : '',
      context: {
        row,
        target: max === Number.POSITIVE_INFINITY ? `>= ${min}` : `${min}-${max}`,
        pass: value >= min && value <= max,
        ...run,
      },
    };
  });
  const pair = report.pairs.find((p) => p.a === 'BTC-USD' && p.b === 'ETH-USD')!;
  results.push({
    name: 'sim.btc_eth_corr_1m',
    value: pair.corr1m ?? Number.NaN,
    unit: '',
    context: {
      row: 'BTC-ETH correlation of 1 min returns',
      target: '0.6-0.85',
      pass: (pair.corr1m ?? 0) >= 0.6 && (pair.corr1m ?? 0) <= 0.85,
      minutes: pair.minutes,
      ...run,
    },
  });
  // Everything else measured, for the README's table.
  results[0]!.context.all = Object.fromEntries(
    report.products.map((p) => [
      p.product,
      {
        figures: p.figures,
        hourlySdBps: p.hours.map((h) => +h.ret1sSdBps.toFixed(3)),
        hourlyQuoteChange500ms: p.hours.map((h) => +h.quoteChange500ms.toFixed(3)),
        hourlyMidChangedShare: p.hours.map((h) => +h.midChangedShare.toFixed(3)),
      },
    ]),
  );
  results[0]!.context.pairs = report.pairs;
  results[0]!.context.machine = machineContext();
  return results;
}

async function simulateThroughput(): Promise<BenchResult> {
  const hours = Number(process.env.SIM_BENCH_HOURS ?? 24);
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-sim-'));
  const ports = { kinesis: await freePort(), dynamodb: await freePort(), s3: await freePort() };
  const emulators = await startEmulators({ dataDir, ports });
  try {
    const started = performance.now();
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        'bin/quotewatch.ts',
        'simulate',
        '--hours',
        String(hours),
        '--products',
        PRODUCTS.join(','),
      ],
      {
        cwd: REPO,
        env: { ...process.env, ...emulators.env, SIM_SEED: String(SEED) },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0) throw new Error(`quotewatch simulate exited with ${code}`);
    const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as {
      simulatedHoursPerWallMinute: number;
      wallSeconds: number;
      events: number;
      objects: number;
      featureRows: number;
      predictions: number;
    };
    const commandS = (performance.now() - started) / 1000;
    return {
      name: 'sim.simulated_hours_per_wall_minute',
      value: summary.simulatedHoursPerWallMinute,
      unit: 'h/min',
      context: {
        ...machineContext(),
        command: `quotewatch simulate --hours ${hours} --products ${PRODUCTS.join(',')} (SIM_SEED=${SEED}), own emulators`,
        simulatedHours: hours,
        simulationWallSeconds: +summary.wallSeconds.toFixed(1),
        commandWallSeconds: +commandS.toFixed(1),
        minutesPerSimulatedDay: +(24 / summary.simulatedHoursPerWallMinute || 0).toFixed(1),
        goal: 'one simulated day for 3 products in <= 15 min on 2 cores',
        events: summary.events,
        featureRows: summary.featureRows,
        predictions: summary.predictions,
        lakeObjects: summary.objects,
      },
    };
  } finally {
    await emulators.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export const simGroup: BenchGroup = {
  name: 'sim',
  description:
    'simulated market: 24 h against the day targets; `quotewatch simulate` throughput (3 products)',
  async run() {
    return [...(await dayFigures()), await simulateThroughput()];
  },
};
