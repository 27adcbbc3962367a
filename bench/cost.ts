/**
 * Cost benchmarks. The monthly figures come from the one cost model (`quotewatch cost`, src/cost/model.ts) at
 * the default deployment (readDeploymentContext with cdk.json's context) for two and ten products:
 *   cost.monthly_usd_2_products / _10_products   polling (the default), the lake full to its retention
 *   cost.monthly_usd_*_fanout                      the same with enhanced fan-out
 *   cost.first_month_usd_2_products                polling, the lake 30 days old
 *   cost.dynamodb_usd_2_products                   DynamoDB's share (goal <= $10)
 *   cost.api_usd_per_million_reads, cost.poll_usd_per_viewer_month
 * Then the usage those figures rest on is measured again (bench/costUsage.ts: the real path at the deployed
 * tuning, every AWS call counted): cost.measured_* per product and second, the tasks' CPU per product
 * (cost.ingestor_vcpu_per_product, cost.worker_vcpu_per_product, the default task sizes' basis in src/config.ts),
 * and the trainer's CPU per row (cost.train_cpu_us_per_row: Parquet decode and logistic regression to
 * convergence on one core, the trainer timeout's basis). Compare them with src/cost/usage.ts.
 */
import path from 'node:path';
import { trainLogisticRegression } from '../models/train/logreg.js';
import { readDeploymentContext } from '../src/config.js';
import { apiCostPerMillion, monthlyCost, viewerCostPerMonth } from '../src/cost/model.js';
import { cdkJsonContext } from '../src/cost/report.js';
import { FEATURE_SPEC } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { decodeFeatureRows, encodeFeatureRows } from '../src/storage/parquet.js';
import { measureUsage, USAGE_PRODUCTS } from './costUsage.js';
import { BENCH_PRODUCTS, type BenchGroup, type BenchResult, machineContext } from './harness.js';

const TEN = BENCH_PRODUCTS.slice(0, 10);

function modelFigures(): BenchResult[] {
  const cdk = cdkJsonContext(path.join(import.meta.dirname, '../cdk.json'));
  const results: BenchResult[] = [];
  for (const products of [USAGE_PRODUCTS, TEN]) {
    const d = readDeploymentContext({ ...cdk, products: products.join(',') });
    const polling = monthlyCost(d, 'polling');
    const fanout = monthlyCost(d, 'fanout');
    const context = {
      products,
      shards: d.shards,
      workers: d.workers,
      ingestorTask: d.ingestorTask,
      workerTask: d.workerTask,
      byService: Object.fromEntries(
        Object.entries(polling.byService).map(([k, v]) => [k, Math.round(v * 100) / 100]),
      ),
      fanoutByService: Object.fromEntries(
        Object.entries(fanout.byService).map(([k, v]) => [k, Math.round(v * 100) / 100]),
      ),
      method:
        'src/cost/model.ts at the default deployment (cdk.json context + products), us-east-1 list prices of src/cost/prices.ts',
    };
    const n = products.length;
    results.push(
      { name: `cost.monthly_usd_${n}_products`, value: polling.total, unit: 'USD/month', context },
      { name: `cost.monthly_usd_${n}_products_fanout`, value: fanout.total, unit: 'USD/month', context },
    );
    if (n === 2) {
      results.push(
        {
          name: 'cost.first_month_usd_2_products',
          value: polling.firstMonthTotal,
          unit: 'USD/month',
          context,
        },
        {
          name: 'cost.dynamodb_usd_2_products',
          value: polling.byService.DynamoDB ?? 0,
          unit: 'USD/month',
          context,
        },
        { name: 'cost.api_usd_per_million_reads', value: apiCostPerMillion(d).read, unit: 'USD', context },
        {
          name: 'cost.poll_usd_per_viewer_month',
          value: viewerCostPerMonth(d).usd,
          unit: 'USD/month',
          context,
        },
      );
    }
  }
  return results;
}

/** The trainer's CPU per joined row: decode its Parquet features and fit the logistic regression to convergence. */
async function trainingCost(): Promise<BenchResult[]> {
  const rows = 100_000;
  const F = FEATURE_SPEC.features.length;
  let seed = 7;
  const rnd = () => {
    seed = (seed * 16807) % 2147483647;
    return seed / 2147483647;
  };
  const features: FeatureRow[] = Array.from({ length: rows }, (_, i) => ({
    product: 'BTC-USD',
    tsUs: 1_750_000_000_000_000 + i * 100_000,
    seq: i,
    bestBid: '100.00',
    bestAsk: '100.01',
    mid: 100.005,
    spread: 0.01,
    values: Float64Array.from({ length: F }, () => rnd() * 2 - 1),
  }));
  const objects: Uint8Array[] = [];
  for (let i = 0; i < rows; i += 3000) objects.push(encodeFeatureRows(features.slice(i, i + 3000)));
  features.length = 0;
  const heap0 = process.memoryUsage().heapUsed;
  const cpu0 = process.cpuUsage();
  const decoded = (await Promise.all(objects.map((o) => decodeFeatureRows(o)))).flatMap((d) => d.rows);
  const X = decoded.map((r) => Array.from(r.values));
  const y = X.map((x) => (x[0]! + 0.5 * x[1]! + (rnd() - 0.5) > 0 ? 1 : 0));
  const heldBytes = process.memoryUsage().heapUsed - heap0;
  trainLogisticRegression(X, y, { l2: 1e-3 });
  const cpu = process.cpuUsage(cpu0);
  const context = {
    ...machineContext(),
    rows,
    features: F,
    method:
      'CPU time (user+system) of Parquet decode (3,000-row objects) + logistic regression fit to convergence, ' +
      'per row; heap: growth while the decoded rows and feature arrays are held, plus the standardized copy',
  };
  return [
    { name: 'cost.train_cpu_us_per_row', value: (cpu.user + cpu.system) / rows, unit: 'µs/row', context },
    // The fit adds a standardized copy of X, one array of F doubles per row.
    {
      name: 'cost.train_heap_bytes_per_row',
      value: heldBytes / rows + (F * 8 + 32),
      unit: 'B/row',
      context,
    },
  ];
}

async function measured(): Promise<BenchResult[]> {
  const u = await measureUsage((line) => console.log(`  ${line}`));
  const n = u.products.length;
  const perS = (v: number) => v / u.spanS;
  const context = {
    ...machineContext(),
    products: u.products,
    spanS: u.spanS,
    note: 'local emulators (2 shards: kinesalite has no 5 GetRecords/s quota, so the local worker checkpoints more often than a deployed one); simulator books and frames are smaller than the real ones (src/cost/usage.ts scales sizes from the capture)',
    kinesis: u.kinesis,
    dynamo: u.dynamo,
    s3: u.s3,
    logBytes: u.logBytes,
    emfMetrics: u.emfMetrics,
  };
  const s3Puts = Object.values(u.s3).reduce((s, v) => s + v.puts, 0);
  const lakePuts = ['raw', 'features', 'labels', 'predictions'].reduce((s, k) => s + (u.s3[k]?.puts ?? 0), 0);
  return [
    {
      name: 'cost.measured_records_per_s_per_product',
      value: perS(u.kinesis.records) / n,
      unit: 'records/s',
      context,
    },
    {
      name: 'cost.measured_stream_bytes_per_s_per_product',
      value: perS(u.kinesis.payloadBytes) / n,
      unit: 'B/s',
      context,
    },
    {
      name: 'cost.measured_latest_write_units_per_s_per_product',
      value: perS(u.dynamo.latest?.writeUnits ?? 0) / n,
      unit: 'WRU/s',
      context,
    },
    {
      name: 'cost.measured_checkpoint_write_units_per_s',
      value: perS(u.dynamo.checkpoints?.writeUnits ?? 0),
      unit: 'WRU/s',
      context,
    },
    {
      // The bench runs 1-minute lake windows (the process default) so that several close in the span.
      name: 'cost.measured_lake_objects_per_window_per_product',
      value: (perS(lakePuts) * 60) / n,
      unit: 'objects',
      context,
    },
    { name: 'cost.measured_s3_puts_per_min', value: perS(s3Puts) * 60, unit: 'PUT/min', context },
    {
      name: 'cost.measured_log_bytes_per_s_per_product',
      value: perS(u.logBytes.ingestor + u.logBytes.worker) / n,
      unit: 'B/s',
      context,
    },
    { name: 'cost.measured_custom_metrics', value: u.emfMetrics.length, unit: 'metrics', context },
    { name: 'cost.ingestor_vcpu_per_product', value: u.cpu.ingestor / n, unit: 'vCPU', context },
    { name: 'cost.worker_vcpu_per_product', value: u.cpu.worker / n, unit: 'vCPU', context },
  ];
}

export const costGroup: BenchGroup = {
  name: 'cost',
  description: 'monthly cost from the cost model (2 and 10 products), and the usage it rests on, measured',
  async run() {
    return [...modelFigures(), ...(await trainingCost()), ...(await measured())];
  },
};
