/**
 * The serving edge:
 * - api.predict_p50_us / api.predict_p99_us: the /predict Lambda handler in-process and warm, one feature vector
 *   scored by the shipped quote model in onnxruntime-node (middy, zod, telemetry included);
 *   api.predict_batch100_p99_us: the same with 100 vectors per request;
 * - api.bundle_kb / api.init_ms: the deployed bundles as `cdk synth` builds them; init is the time a fresh Node
 *   process takes to import the bundle (what Lambda reports as Init Duration, minus the runtime's own start);
 * - api.gateway_rps / api.gateway_p99_ms: GET /latest through the local gateway at concurrency 32 (autocannon)
 *   with the whole system running (`npm start`); api.history_p99_ms: GET /history of the last 5 minutes, one
 *   request at a time, same system.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { App } from 'aws-cdk-lib';
import type { CfnFunction } from 'aws-cdk-lib/aws-lambda';
import { QuoteWatchStack } from '../lib/quotewatch-stack.js';
import type { HttpApiEventV2, HttpApiResultV2 } from '../src/api/http.js';
import { ROUTES } from '../src/api/routes.js';
import type { FeatureSpec } from '../src/features/types.js';
import { startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { seedRegistry } from '../src/model/registry.js';
import { v2 } from '../test/support/events.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';
import { GATEWAY, REPO, startSystem } from './system.js';

const BASELINE = path.join(REPO, 'models/baseline');

type Handler = (event: HttpApiEventV2, context: never) => Promise<HttpApiResultV2>;

function vectors(n: number): Record<string, number>[] {
  const spec = JSON.parse(
    readFileSync(path.join(BASELINE, 'quote_change_500ms/feature_spec.json'), 'utf8'),
  ) as FeatureSpec;
  return Array.from({ length: n }, (_, k) =>
    Object.fromEntries(spec.features.map((f, i) => [f.name, Math.sin(k * 31 + i) * 0.5])),
  );
}

/** Microseconds per call: `warm` calls first, then `n` timed one by one. */
async function timeCalls(
  handler: Handler,
  event: HttpApiEventV2,
  warm: number,
  n: number,
): Promise<number[]> {
  const call = async () => {
    const res = await handler(event, {} as never);
    if (res.statusCode !== 200) throw new Error(`predict answered ${res.statusCode}: ${res.body}`);
  };
  for (let i = 0; i < warm; i++) await call();
  const us: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await call();
    us.push((performance.now() - t) * 1000);
  }
  return us;
}

async function inProcess(): Promise<BenchResult[]> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'qw-bench-api-'));
  const emulators = await startEmulators({ dataDir, ports: { kinesis: 0, dynamodb: 0, s3: 0 } });
  try {
    Object.assign(process.env, emulators.env, { METRICS_SINK: 'none' });
    await provision(emulators.env, { seed: false });
    await seedRegistry(BASELINE);
    const { handler } = (await import('../lambdas/predict.js')) as { handler: Handler };
    const one = v2('POST', '/predict', { body: JSON.stringify({ features: vectors(1)[0] }) });
    const batch = v2('POST', '/predict', { body: JSON.stringify({ vectors: vectors(100) }) });
    const single = await timeCalls(handler, one, 500, 5000);
    const batched = await timeCalls(handler, batch, 50, 500);
    const context = {
      ...machineContext(),
      handler: 'lambdas/predict.ts, in-process, warm; shipped quote_change_500ms model in onnxruntime-node',
      metricsSink: 'none (deployed, EMF goes to stdout once per request)',
    };
    return [
      {
        name: 'api.predict_p50_us',
        value: quantile(single, 0.5),
        unit: 'us',
        context: { ...context, calls: single.length },
      },
      {
        name: 'api.predict_p99_us',
        value: quantile(single, 0.99),
        unit: 'us',
        context: { ...context, calls: single.length },
      },
      {
        name: 'api.predict_batch100_p99_us',
        value: quantile(batched, 0.99),
        unit: 'us',
        context: { ...context, calls: batched.length, vectorsPerCall: 100, p50_us: quantile(batched, 0.5) },
      },
    ];
  } finally {
    await emulators.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The deployed bundles: synthesized as `cdk synth` does, then measured and imported in fresh processes. */
async function bundles(): Promise<BenchResult[]> {
  const outdir = mkdtempSync(path.join(tmpdir(), 'qw-bench-synth-'));
  // Imported from inside the repository, so the bundle's external onnxruntime-node resolves to this machine's
  // build (the asset ships the Linux ARM64 binary only).
  const initDir = path.join(REPO, '.quotewatch', 'bench-init');
  try {
    const cdkJson = JSON.parse(readFileSync(path.join(REPO, 'cdk.json'), 'utf8')) as {
      context: Record<string, unknown>;
    };
    const app = new App({ outdir, context: cdkJson.context });
    const stack = new QuoteWatchStack(app, 'QuoteWatch');
    app.synth();
    const sizes: Record<string, number> = {};
    const inits: Record<string, number> = {};
    for (const route of ROUTES.filter((r) => !r.localOnly)) {
      const fn = stack.api.routeFunctions[route.id as keyof typeof stack.api.routeFunctions];
      const code = stack.resolve((fn.node.defaultChild as CfnFunction).code) as { s3Key: string };
      const assetDir = path.join(outdir, `asset.${code.s3Key.replace(/\.zip$/, '')}`);
      const bundle = path.join(assetDir, 'index.mjs');
      sizes[route.id] = Math.round(statSync(bundle).size / 1024);
      const dir = path.join(initDir, route.id);
      mkdirSync(dir, { recursive: true });
      for (const f of ['index.mjs', 'index.mjs.map', 'dashboard.js', 'dashboard.css']) {
        try {
          copyFileSync(path.join(assetDir, f), path.join(dir, f));
        } catch {
          // not every bundle has every file
        }
      }
      inits[route.id] = initMs(path.join(dir, 'index.mjs'));
    }
    const heaviest = Object.entries(sizes).sort((a, b) => b[1] - a[1])[0]!;
    const slowest = Object.entries(inits).sort((a, b) => b[1] - a[1])[0]!;
    return [
      {
        name: 'api.bundle_kb',
        value: heaviest[1],
        unit: 'KiB',
        context: {
          ...machineContext(),
          route: heaviest[0],
          byRoute: sizes,
          note: 'largest index.mjs (minified ESM, AWS SDK bundled; onnxruntime-node shipped beside /predict)',
        },
      },
      {
        name: 'api.init_ms',
        value: slowest[1],
        unit: 'ms',
        context: {
          ...machineContext(),
          route: slowest[0],
          byRoute: inits,
          method:
            'median of 5 fresh processes importing the bundle, with the function environment (NODE_OPTIONS=--enable-source-maps)',
        },
      },
    ];
  } finally {
    rmSync(outdir, { recursive: true, force: true });
    rmSync(initDir, { recursive: true, force: true });
  }
}

/** Median over 5 fresh Node processes of the time to import a bundle (module scope: config, clients). */
function initMs(bundle: string): number {
  const script = `const t = performance.now(); await import(${JSON.stringify(pathToFileURL(bundle).href)}); console.log(performance.now() - t);`;
  const runs = Array.from({ length: 5 }, () =>
    Number(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], {
        env: {
          ...process.env,
          NODE_OPTIONS: '--enable-source-maps',
          AWS_REGION: 'us-east-1',
          LATEST_TABLE: 'bench-latest',
          REGISTRY_TABLE: 'bench-registry',
          MODEL_BUCKET: 'bench-models',
          MODEL_URI: 's3://bench-models/models',
          METRICS_SINK: 'emf',
        },
        encoding: 'utf8',
      }).trim(),
    ),
  );
  return quantile(runs, 0.5);
}

async function wholeSystem(): Promise<BenchResult[]> {
  const system = startSystem('qw-bench-api-');
  try {
    const product = await system.firstPrediction();
    const load = await autocannon({ url: `${GATEWAY}/latest`, connections: 32, duration: 20 });
    const history: number[] = [];
    let rows = 0;
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      const res = await fetch(`${GATEWAY}/history?product=${product}&minutes=5`);
      const body = (await res.json()) as { rows?: unknown[] };
      history.push(performance.now() - t);
      if (!res.ok) throw new Error(`/history answered ${res.status}`);
      rows = body.rows?.length ?? 0;
    }
    const context = {
      ...machineContext(),
      system: 'npm start (simulator, ingestor, worker, gateway, emulators)',
    };
    const loadContext = {
      ...context,
      request: 'GET /latest (every product)',
      connections: 32,
      durationS: 20,
      requests: load.requests.total,
      p50_ms: load.latency.p50,
      p90_ms: load.latency.p90,
      non2xx: load.non2xx,
      errors: load.errors,
      timeouts: load.timeouts,
    };
    return [
      { name: 'api.gateway_rps', value: load.requests.average, unit: 'req/s', context: loadContext },
      { name: 'api.gateway_p99_ms', value: load.latency.p99, unit: 'ms', context: loadContext },
      {
        name: 'api.history_p99_ms',
        value: quantile(history, 0.99),
        unit: 'ms',
        context: {
          ...context,
          request: `GET /history?product=${product}&minutes=5`,
          rows,
          requests: history.length,
          p50_ms: quantile(history, 0.5),
        },
      },
    ];
  } finally {
    await system.stop();
  }
}

export const apiGroup: BenchGroup = {
  name: 'api',
  description:
    '/predict in-process, the deployed bundles, and the local gateway under load with the system running',
  async run() {
    return [...(await inProcess()), ...(await bundles()), ...(await wholeSystem())];
  },
};
