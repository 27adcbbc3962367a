/**
 * What the running system asks of each AWS service, measured: the real simulator (realtime, two products) ->
 * ingestor -> Kinesis -> worker -> DynamoDB / S3 on the local emulators, at the DEPLOYED tuning (polling every
 * 200 ms, producer linger 10 ms, latest item every 300 ms, history every 1 s, raw archive to S3), every AWS call
 * through the single-port edge router (src/local/edgeRouter.ts) which counts it. After a warm-up, over
 * USAGE_SPAN_S: PutRecords records, payload bytes and 25 KB payload units; GetRecords calls; DynamoDB writes and
 * their write units (item sizes as AWS bills them, src/cost/dynamoSize.ts) per table; S3 PUTs and bytes per lake
 * prefix; log bytes the two tasks print; the EMF metrics they define; their CPU. These are the usage figures
 * `quotewatch cost` prices (src/cost/usage.ts says which it took from here).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AttributeValueJson, writeUnits } from '../src/cost/dynamoSize.js';
import { type EdgeExchange, startEdgeRouter } from '../src/local/edgeRouter.js';
import { freePort } from '../src/local/ports.js';
import { startSystem } from '../src/local/supervisor.js';
import { LAKE_PREFIXES, TABLES } from '../src/resources.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { cpuByLabel } from './procs.js';

export const USAGE_PRODUCTS = ['BTC-USD', 'ETH-USD'];
const USAGE_SPAN_S = 120;
const WARMUP_S = 45;

/** The deployed tuning (lib/fargate-services.ts environment and the process defaults), not `npm start`'s. */
export const DEPLOYED_TUNING = {
  POLL_IDLE_MS: '200',
  PRODUCER_LINGER_MS: '10',
  LATEST_WRITE_MS: '300',
  HISTORY_WRITE_MS: '1000',
  ARCHIVE: 's3',
};

export interface MeasuredUsage {
  spanS: number;
  products: string[];
  kinesis: {
    putRecordsCalls: number;
    records: number;
    payloadBytes: number;
    putUnits: number;
    getRecordsCalls: number;
  };
  dynamo: Record<string, { writes: number; writeUnits: number; reads: number }>;
  s3: Record<string, { puts: number; bytes: number }>;
  logBytes: Record<'ingestor' | 'worker', number>;
  /** Distinct (namespace, metric name, dimension values) the EMF lines define. */
  emfMetrics: string[];
  /** Share of one CPU core. */
  cpu: Record<'ingestor' | 'worker', number>;
}

const PUT_UNIT_BYTES = 25 * 1024;

function tableOf(name: string): string {
  const entry = Object.entries(TABLES).find(([, def]) => def.localName === name);
  return entry ? entry[0] : name;
}

function prefixOf(key: string): string {
  const hit = Object.entries(LAKE_PREFIXES).find(([, p]) => key.startsWith(p));
  return hit ? hit[0] : 'other';
}

/** CPU seconds so far of the component children. */
function componentCpu(): Record<'ingestor' | 'worker', number> {
  const cpu = cpuByLabel([
    [/containers\/worker\//, 'worker'],
    [/containers\/ingestor\//, 'ingestor'],
  ]);
  return { ingestor: cpu.ingestor ?? 0, worker: cpu.worker ?? 0 };
}

export async function measureUsage(log: (line: string) => void = () => {}): Promise<MeasuredUsage> {
  const ports = { kinesis: await freePort(), dynamodb: await freePort(), s3: await freePort() };
  const usage: MeasuredUsage = {
    spanS: 0,
    products: USAGE_PRODUCTS,
    kinesis: { putRecordsCalls: 0, records: 0, payloadBytes: 0, putUnits: 0, getRecordsCalls: 0 },
    dynamo: {},
    s3: {},
    logBytes: { ingestor: 0, worker: 0 },
    emfMetrics: [],
    cpu: { ingestor: 0, worker: 0 },
  };
  let recording = false;
  const observe = (x: EdgeExchange) => {
    if (!recording || x.status >= 300) return;
    const target = String(x.headers['x-amz-target'] ?? '');
    if (x.service === 'kinesis') {
      if (target.endsWith('.PutRecords')) {
        const body = JSON.parse(x.body.toString('utf8')) as {
          Records: { Data: string; PartitionKey: string }[];
        };
        usage.kinesis.putRecordsCalls++;
        for (const r of body.Records) {
          const bytes = Buffer.from(r.Data, 'base64').byteLength + Buffer.byteLength(r.PartitionKey);
          usage.kinesis.records++;
          usage.kinesis.payloadBytes += bytes;
          usage.kinesis.putUnits += Math.max(1, Math.ceil(bytes / PUT_UNIT_BYTES));
        }
      } else if (target.endsWith('.GetRecords')) usage.kinesis.getRecordsCalls++;
    } else if (x.service === 'dynamodb') {
      const body = JSON.parse(x.body.toString('utf8') || '{}') as {
        TableName?: string;
        Item?: Record<string, AttributeValueJson>;
        Key?: Record<string, AttributeValueJson>;
      };
      const op = target.split('.').pop() ?? '';
      const table = tableOf(body.TableName ?? '?');
      usage.dynamo[table] ??= { writes: 0, writeUnits: 0, reads: 0 };
      const t = usage.dynamo[table];
      if (op === 'PutItem' && body.Item) {
        t.writes++;
        t.writeUnits += writeUnits(body.Item);
      } else if (op === 'UpdateItem' || op === 'DeleteItem') {
        // Billed by the item's size: checkpoints and leases are far under 1 KB.
        t.writes++;
        t.writeUnits += 1;
      } else if (['GetItem', 'Query', 'Scan', 'BatchGetItem'].includes(op)) t.reads++;
    } else if (x.service === 's3' && x.method === 'PUT') {
      const path = decodeURIComponent(x.url.split('?')[0] ?? '');
      const key = path.split('/').slice(2).join('/');
      const prefix = prefixOf(key);
      usage.s3[prefix] ??= { puts: 0, bytes: 0 };
      const s = usage.s3[prefix];
      s.puts++;
      s.bytes += x.body.byteLength;
    }
  };
  const router = await startEdgeRouter({
    upstreams: {
      kinesis: `http://127.0.0.1:${ports.kinesis}`,
      dynamodb: `http://127.0.0.1:${ports.dynamodb}`,
      s3: `http://127.0.0.1:${ports.s3}`,
    },
    observe,
  });
  const simPort = await freePort();
  const sim = await startSimulator({
    port: simPort,
    seed: 11,
    products: productSpecs(USAGE_PRODUCTS),
    mode: 'realtime',
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-cost-'));
  const system = await startSystem({
    dataDir,
    freePorts: true,
    ports,
    quiet: true,
    components: ['ingestor', 'worker'],
    env: {
      ...DEPLOYED_TUNING,
      // The records the tasks send by PutMetricData deployed, printed as EMF lines here so they can be counted
      // (the same records: src/telemetry/; they are left out of the log bytes below).
      METRICS_SINK: 'emf',
      FEED_URL: `ws://127.0.0.1:${simPort}`,
      SYMBOLS: USAGE_PRODUCTS.join(','),
      AWS_ENDPOINT_URL_KINESIS: router.url,
      AWS_ENDPOINT_URL_DYNAMODB: router.url,
      AWS_ENDPOINT_URL_S3: router.url,
    },
  });
  try {
    log(`warming up ${WARMUP_S} s, then measuring ${USAGE_SPAN_S} s`);
    await new Promise((r) => setTimeout(r, WARMUP_S * 1000));
    const lines0 = { ingestor: system.logs('ingestor').length, worker: system.logs('worker').length };
    const cpu0 = componentCpu();
    const t0 = Date.now();
    recording = true;
    await new Promise((r) => setTimeout(r, USAGE_SPAN_S * 1000));
    recording = false;
    usage.spanS = (Date.now() - t0) / 1000;
    const cpu1 = componentCpu();
    const metrics = new Set<string>();
    for (const c of ['ingestor', 'worker'] as const) {
      usage.cpu[c] = (cpu1[c] - cpu0[c]) / usage.spanS;
      const lines = system.logs(c).slice(lines0[c]);
      // The supervisor prefixes lines with the component's name; the tasks print the JSON after it.
      for (const line of lines) {
        const json = line.slice(line.indexOf('{'));
        if (!json.includes('"_aws"')) {
          usage.logBytes[c] += Buffer.byteLength(json) + 1;
          continue;
        }
        const doc = JSON.parse(json) as {
          _aws: {
            CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[];
          };
        } & Record<string, unknown>;
        for (const d of doc._aws.CloudWatchMetrics) {
          for (const dims of d.Dimensions) {
            const dimValues = dims.map((k) => `${k}=${String(doc[k])}`).join(',');
            for (const m of d.Metrics) metrics.add(`${d.Namespace}/${m.Name}{${dimValues}}`);
          }
        }
      }
    }
    usage.emfMetrics = [...metrics].sort();
    return usage;
  } finally {
    await system.stop();
    await sim.close();
    await router.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
