/**
 * The metric contract: every QuoteWatch metric that a widget of the CloudWatch dashboard or an alarm uses
 * (lib/observability.ts) is one the running code really emits, in the same namespace, under the same name and
 * with the same dimension names; and every metric the code sends to CloudWatch is one a widget or alarm uses (the
 * rest is local-only: Prometheus /metrics). The billed count is what the cost model prices. The emitted side is read from the real components: the whole local system
 * (simulator -> ingestor -> Kinesis -> worker; the gateway serving /latest and /predict) and the training job,
 * each printing its EMF records (METRICS_SINK=emf), as Lambda's logs carry them to CloudWatch.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../lib/quotewatch-stack.js';
import { exportLogisticOnnx } from '../models/export/onnx.js';
import { s3Client } from '../src/aws/clients.js';
import { USAGE } from '../src/cost/usage.js';
import { featureSpec } from '../src/features/spec.js';
import { activate, publishVersion } from '../src/model/registry.js';
import { simulateWithEnv } from '../src/simulator/longrun.js';
import { NAMESPACE } from '../src/telemetry/catalog.js';
import type { EmfRecord } from '../src/telemetry/telemetry.js';
import { resourcesOf, unbundledApp } from './cdk/support.js';
import { withSimulatedSystem } from './support/system.js';
import { until } from './support/until.js';

const ROOT = join(import.meta.dirname, '..');
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const fixture = await withSimulatedSystem({
  simulator: { seed: 23, products: PRODUCTS },
  env: {
    METRICS_SINK: 'emf',
    METRICS_FLUSH_MS: '1000',
    QUALITY_EVERY_MS: '1000',
    MODEL_CHECK_MS: '1000',
    LAKE_OBJECT_TICKS: '10',
  },
});

/** "Name|Dim1,Dim2" (dimension names sorted): what must match between the two sides. */
const key = (name: string, dims: readonly string[]) => `${name}|${[...dims].sort().join(',')}`;

/** The QuoteWatch metrics the synthesized dashboard and alarms use. */
function referenced(): Set<string> {
  const { app } = unbundledApp('qw-contract-');
  const stack = new QuoteWatchStack(app, 'Contract');
  const resources = resourcesOf(Template.fromStack(stack as Stack));
  const used = new Set<string>();
  for (const r of Object.values(resources)) {
    if (r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.Namespace === NAMESPACE) {
      const dims = ((r.Properties.Dimensions ?? []) as { Name: string }[]).map((d) => d.Name);
      used.add(key(r.Properties.MetricName as string, dims));
    }
    if (r.Type !== 'AWS::CloudWatch::Dashboard') continue;
    // The body is a Fn::Join of text and references (the API URL); the references do not hold metrics.
    const parts = (r.Properties.DashboardBody as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1];
    const body = JSON.parse(parts.map((p) => (typeof p === 'string' ? p : 'REF')).join('')) as {
      widgets: { properties: { metrics?: unknown[][] } }[];
    };
    for (const w of body.widgets) {
      for (const m of w.properties.metrics ?? []) {
        const last = m.at(-1) as { expression?: string } | undefined;
        if (last?.expression) {
          const search = /SEARCH\('\{([^}]*)\} MetricName="([^"]+)"/.exec(last.expression);
          if (!search) continue;
          const [namespace, ...dims] = search[1]!.split(',');
          if (namespace === NAMESPACE) used.add(key(search[2]!, dims));
        } else if (m[0] === NAMESPACE) {
          const pairs = m.slice(2).filter((x) => typeof x === 'string') as string[];
          used.add(
            key(
              m[1] as string,
              pairs.filter((_, i) => i % 2 === 0),
            ),
          );
        }
      }
    }
  }
  return used;
}

/** EMF records in a component's output lines. */
function records(lines: readonly string[]): EmfRecord[] {
  return lines.flatMap((line) => {
    const json = line.slice(line.indexOf('{'));
    if (!json.includes('"_aws"')) return [];
    try {
      return [JSON.parse(json) as EmfRecord];
    } catch {
      return [];
    }
  });
}

function emittedKeys(recs: readonly EmfRecord[]): Set<string> {
  const out = new Set<string>();
  for (const r of recs) {
    for (const d of r._aws.CloudWatchMetrics) {
      if (d.Namespace !== NAMESPACE) continue;
      for (const m of d.Metrics) out.add(key(m.Name, d.Dimensions[0] ?? []));
    }
  }
  return out;
}

/** The billed series: "Name|Dim=value,..." (dimension names sorted). */
function series(recs: readonly EmfRecord[]): Set<string> {
  const out = new Set<string>();
  for (const r of recs) {
    for (const d of r._aws.CloudWatchMetrics) {
      if (d.Namespace !== NAMESPACE) continue;
      const dims = [...(d.Dimensions[0] ?? [])].sort().map((k) => `${k}=${String(r[k])}`);
      for (const m of d.Metrics) out.add(`${m.Name}|${dims.join(',')}`);
    }
  }
  return out;
}

let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'qw-contract-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe('metric contract', () => {
  it('every dashboard widget and alarm metric is emitted by the running code with the same name and dimensions', async () => {
    const { system } = fixture;
    const env = { ...process.env, ...system.env };
    // A served model with a test interval, so the worker reports how far live quality is below it.
    const spec = featureSpec(100);
    const F = spec.features.length;
    const dir = join(root, 'quote_change_500ms', 'contract-1');
    mkdirSync(dir, { recursive: true });
    const weights = Array.from({ length: F }, (_, i) => ((i % 3) - 1) / 10);
    writeFileSync(
      join(dir, 'model.onnx'),
      exportLogisticOnnx({ weights, bias: 0, mean: Array(F).fill(0), std: Array(F).fill(1) }, spec),
    );
    writeFileSync(join(dir, 'feature_spec.json'), JSON.stringify(spec));
    writeFileSync(
      join(dir, 'metrics.json'),
      JSON.stringify({ target: 'quote_change_500ms', version: 'contract-1', rocAucLow: 0.99 }),
    );
    await publishVersion(dir, 'quote_change_500ms', 'contract-1', env);
    await activate('quote_change_500ms', 'contract-1', env);

    const gateway = system.urls.dashboard.replace(/\/$/, '');
    await until(
      'a scored latest snapshot',
      async () => (await fetch(`${gateway}/latest?product=BTC-USD`)).ok,
      60_000,
    );
    expect(
      (await fetch(`${gateway}/predict`, { method: 'POST', body: '{"product":"BTC-USD"}' })).status,
    ).toBe(200);
    const system_ = () =>
      ['ingestor', 'worker', 'gateway'].flatMap((c) => records(system.logs(c as 'worker')));
    await until(
      'the worker measuring live quality against the interval',
      () => emittedKeys(system_()).has(key('LiveAUCShortfall', ['Target'])),
      90_000,
    );

    // The training job, the train and evaluate steps as the state machine runs them, on a lake of 8 simulated
    // minutes (`quotewatch simulate`'s path): it learns from complete rows only, past the 300 s warm-up, which
    // the running system's few minutes do not reach.
    const lakeBucket = 'qw-contract-lake';
    await s3Client(env).send(new CreateBucketCommand({ Bucket: lakeBucket }));
    await simulateWithEnv(
      { hours: 8 / 60, products: ['BTC-USD', 'ETH-USD'], seed: 3 },
      { ...env, LAKE_BUCKET: lakeBucket },
    );
    const trainer: EmfRecord[] = [];
    for (const step of ['train', 'evaluate']) {
      const run = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'models/train/main.ts'), step], {
        cwd: ROOT,
        env: {
          ...env,
          LAKE_BUCKET: lakeBucket,
          CANDIDATE_VERSION: 'contract-2',
          TARGET: 'quote_change_500ms',
          TRAIN_MIN_ROWS: '50',
        },
        encoding: 'utf8',
        timeout: 60_000,
      });
      expect(run.status, `${step}: ${run.stdout.slice(-500)}${run.stderr}`).toBe(0);
      trainer.push(...records(run.stdout.split('\n')));
    }

    const emitted = emittedKeys([...system_(), ...trainer]);
    const used = referenced();
    expect(used.size).toBeGreaterThanOrEqual(15);
    expect([...used].filter((u) => !emitted.has(u)).sort()).toEqual([]);
    // And CloudWatch is sent only what it graphs or alarms on (each metric is billed by the month).
    expect([...emitted].filter((e) => !used.has(e)).sort()).toEqual([]);

    // What CloudWatch bills: one custom metric per name and dimension values. The cost model prices at least as
    // many as this run makes (one served version per target; after a promotion the old version's series stop, so
    // the month's hours of live-quality series stay those of one version per target).
    // The tasks' series are sent every hour of the month; the training job's only in the hours a run happens
    // (CloudWatch prorates custom metrics by the hour), so the cost model counts them apart.
    const steady = series(system_());
    const training = series(trainer);
    expect(USAGE.metrics.series, [...steady].sort().join('\n')).toBeGreaterThanOrEqual(steady.size);
    expect(USAGE.metrics.series).toBeLessThanOrEqual(steady.size * 2);
    // This run trains one target.
    expect(USAGE.metrics.trainingSeriesPerTarget, [...training].sort().join('\n')).toBeGreaterThanOrEqual(
      training.size,
    );
    expect(USAGE.metrics.trainingSeriesPerTarget).toBeLessThanOrEqual(training.size * 2);
  }, 240_000);
});
