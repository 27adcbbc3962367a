/**
 * The monthly cost of a deployment, by service: the deployment as the stack builds it (DeploymentSettings from
 * src/config.ts readDeploymentContext, the same reader the CDK app uses), the processes' own defaults for what
 * the stack leaves to them (snapshot period, archive roll, model checks), what the system measurably does per
 * product (src/cost/usage.ts) and one dated price file (src/cost/prices.ts). Polling and enhanced fan-out are
 * priced side by side; API traffic per million requests; storage at steady state (the lake full to its
 * retention). The inventory (shards, tasks, alarms, dashboards, keys) is what the stack synthesizes:
 * test/cdk/cost.test.ts checks it against the template for several deployments.
 */
import {
  DEFAULT_CORE,
  DEFAULT_TELEMETRY_FLUSH_MS,
  type DeploymentSettings,
  dynamoCapacity,
  readApiConfig,
  readArchiveConfig,
  readFeedConfig,
  readIngestConfig,
} from '../config.js';
import { TARGETS } from '../model/types.js';
import { PRICES, type Prices } from './prices.js';
import { LATENCY_ASSUMPTIONS, USAGE } from './usage.js';

export type Service =
  | 'Kinesis'
  | 'DynamoDB'
  | 'Fargate'
  | 'Public IPv4'
  | 'CloudWatch'
  | 'S3'
  | 'KMS + Secrets Manager'
  | 'ECR'
  | 'Training';

export interface CostLine {
  service: Service;
  item: string;
  usd: number;
  /** How the figure is made, in numbers a reader can check. */
  basis: string;
}

/** What the stack creates that has a price of its own (test/cdk/cost.test.ts compares it with the template). */
export interface Inventory {
  shards: number;
  fanoutConsumers: number;
  tasks: { name: string; count: number; cpu: number; memoryMiB: number; spot: boolean }[];
  /** CloudWatch alarms: the stack's own, and the two per DynamoDB auto scaling policy. */
  alarms: number;
  autoScalingPolicies: number;
  dashboards: number;
  kmsKeys: number;
  secrets: number;
  customMetrics: number;
}

export interface CostReport {
  consumer: DeploymentSettings['consumer'];
  lines: CostLine[];
  byService: Partial<Record<Service, number>>;
  /** With the lake full to its retention (what a long-running deployment pays every month). */
  total: number;
  /** The first month: the lake holds 30 days (lifecycle transitions start after that). */
  firstMonthTotal: number;
  inventory: Inventory;
}

const HOURS = PRICES.hoursPerMonth;
const SECONDS = HOURS * 3600;
const GB = 1e9;
const fmt = (n: number, digits = 0) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(1)} M` : n >= 1e4 ? `${Math.round(n / 1e3)} k` : n.toFixed(digits);

/**
 * The stack's own alarms: the stream's (write throttling, records and bytes near capacity, consumer lag), three
 * per service (CPU, memory, no running task), the API's two (5xx, latency), the training pipeline's one, and the
 * path's (feed silent, book mismatches repeating; per target: no predictions, live quality below the test interval).
 */
export const STACK_ALARMS = 4 + 3 * 2 + 2 + 1 + (2 + 2 * TARGETS.length);

export function inventory(d: DeploymentSettings): Inventory {
  const scaled =
    d.dynamoCapacity === 'provisioned' ? Object.values(d.tables).filter((t) => t.autoScaling).length : 0;
  return {
    shards: d.shards,
    fanoutConsumers: d.consumer === 'fanout' ? 1 : 0,
    tasks: [
      { name: 'ingestor', count: d.ingestors, ...d.ingestorTask, spot: false },
      { name: 'worker', count: d.workers, ...d.workerTask, spot: d.workerCapacity === 'spot' },
    ],
    // Target tracking on reads and writes of each auto-scaled table; each policy keeps two alarms.
    autoScalingPolicies: scaled * 2,
    // The push's failed-posts alarm (src/worker/sinks/push.ts) when the WebSocket API is deployed.
    alarms: STACK_ALARMS + (d.push.enabled ? 1 : 0) + scaled * 2 * 2,
    dashboards: 1,
    kmsKeys: 1,
    secrets: d.coinbaseKeySecret ? 1 : 0,
    customMetrics: USAGE.metrics.series,
  };
}

/** The monthly cost of `d` read the way it is configured (its consumer mode), or as `consumer` would be. */
export function monthlyCost(
  d: DeploymentSettings,
  consumer: DeploymentSettings['consumer'] = d.consumer,
  prices: Prices = PRICES,
): CostReport {
  const dep: DeploymentSettings = {
    ...d,
    consumer,
    tables: dynamoCapacity({ ...d, consumer }, DEFAULT_CORE.tickMs),
  };
  const inv = inventory(dep);
  const n = dep.products.length;
  const p = prices;
  const lines: CostLine[] = [];
  const add = (service: Service, item: string, value: number, basis: string) =>
    lines.push({ service, item, usd: value, basis });
  const feed = readFeedConfig({});
  const archive = readArchiveConfig({});
  const ingest = readIngestConfig({});
  const api = readApiConfig({});

  // Kinesis
  add('Kinesis', 'shards', dep.shards * HOURS * p.kinesis.shardHour, `${dep.shards} shard(s) x ${HOURS} h`);
  // Every ingestor publishes the whole feed (the worker keeps one copy): PUTs, bytes delivered, snapshots and
  // the archive scale with their number.
  const k = dep.ingestors;
  const perIngestor = k > 1 ? ` x ${k} ingestors` : '';
  const putUnits = k * n * USAGE.recordsPerSPerProduct * SECONDS;
  add(
    'Kinesis',
    'PUT payload units',
    (putUnits / 1e6) * p.kinesis.putUnitsPerMillion,
    `${fmt(putUnits)} records of < 25 KB (${USAGE.recordsPerSPerProduct}/s per product, linger ${ingest.lingerMs} ms${perIngestor})`,
  );
  if (dep.streamRetentionHours > 24) {
    add(
      'Kinesis',
      'extended retention',
      dep.shards * HOURS * p.kinesis.extendedRetentionShardHour,
      `${dep.streamRetentionHours} h retention`,
    );
  }
  if (consumer === 'fanout') {
    const gb = (k * n * USAGE.streamBytesPerSPerProduct * SECONDS) / GB;
    add(
      'Kinesis',
      'enhanced fan-out',
      dep.shards * HOURS * p.kinesis.fanoutConsumerShardHour + gb * p.kinesis.fanoutPerGb,
      `1 consumer x ${dep.shards} shard(s) x ${HOURS} h + ${gb.toFixed(0)} GB delivered`,
    );
  }

  // DynamoDB
  const { latest, checkpoints } = dep.tables;
  if (dep.dynamoCapacity === 'provisioned') {
    const wcu = latest.writeUnits + checkpoints.writeUnits;
    const rcu = latest.readUnits + checkpoints.readUnits;
    add(
      'DynamoDB',
      'provisioned writes',
      wcu * HOURS * p.dynamodb.wcuHour,
      `${wcu} WCU (latest ${latest.writeUnitsPerS.toFixed(1)} units/s at 80%, checkpoints ${checkpoints.writeUnitsPerS.toFixed(1)}/s at most)`,
    );
    add(
      'DynamoDB',
      'provisioned reads',
      rcu * HOURS * p.dynamodb.rcuHour,
      `${rcu} RCU (floors; auto scaling follows the API)`,
    );
  } else {
    const wru = (latest.writeUnitsPerS + checkpoints.writeUnitsPerS) * SECONDS;
    const rru = (latest.readUnitsPerS + checkpoints.readUnitsPerS) * SECONDS;
    add(
      'DynamoDB',
      'on-demand writes',
      (wru / 1e6) * p.dynamodb.writeUnitsPerMillion,
      `${fmt(wru)} write units (latest ${latest.writeUnitsPerS.toFixed(1)}/s, checkpoints ${checkpoints.writeUnitsPerS.toFixed(1)}/s)`,
    );
    add(
      'DynamoDB',
      'on-demand reads',
      (rru / 1e6) * p.dynamodb.readUnitsPerMillion,
      `${fmt(rru)} read units`,
    );
  }
  // The worker re-reads each target's active pointer every MODEL_CHECK_MS, strongly consistent: one unit each.
  const pointerReads = dep.workers * TARGETS.length * (SECONDS / (api.modelCheckMs / 1000));
  add(
    'DynamoDB',
    'registry reads (on demand)',
    (pointerReads / 1e6) * p.dynamodb.readUnitsPerMillion,
    `${fmt(pointerReads)} active-pointer checks (every ${api.modelCheckMs} ms per target and worker)`,
  );

  // Fargate and the public IPv4 each running task holds
  for (const t of inv.tasks) {
    const rate = t.spot ? p.fargateSpot : p.fargate;
    const hourly = (t.cpu / 1024) * rate.vcpuHour + (t.memoryMiB / 1024) * rate.gbHour;
    add(
      'Fargate',
      t.name,
      t.count * HOURS * hourly,
      `${t.count} x ${t.cpu / 1024} vCPU / ${t.memoryMiB / 1024} GB ARM64${t.spot ? ', Spot' : ''}`,
    );
  }
  const runningTasks = inv.tasks.reduce((s, t) => s + t.count, 0);
  add(
    'Public IPv4',
    'task addresses',
    runningTasks * HOURS * p.publicIpv4Hour,
    `${runningTasks} task(s) in public subnets (no NAT gateway: ~$33/month per AZ)`,
  );

  // CloudWatch
  add('CloudWatch', 'dashboard', inv.dashboards * p.cloudwatch.dashboardMonth, `${inv.dashboards} dashboard`);
  add(
    'CloudWatch',
    'alarms',
    inv.alarms * p.cloudwatch.alarmMonth,
    `${inv.alarms} alarms (${STACK_ALARMS} of the stack, ${inv.alarms - STACK_ALARMS} of push and DynamoDB auto scaling)`,
  );
  add(
    'CloudWatch',
    'custom metrics',
    inv.customMetrics * p.cloudwatch.metricMonth,
    `${inv.customMetrics} metrics (name x dimension values the tasks send every hour; prorated by the hour)`,
  );
  // Each long-running task flushes its metrics with PutMetricData once per METRICS_FLUSH_MS (one request: a
  // flush holds far fewer than the API's 1,000 datums).
  const putMetricData = runningTasks * (SECONDS / (DEFAULT_TELEMETRY_FLUSH_MS / 1000));
  add(
    'CloudWatch',
    'PutMetricData',
    (putMetricData / 1000) * p.cloudwatch.apiRequestsPerThousand,
    `${fmt(putMetricData)} requests/month (${runningTasks} task(s), one flush per ${DEFAULT_TELEMETRY_FLUSH_MS / 1000} s)`,
  );
  const logGb = (n * USAGE.logBytesPerSPerProduct * SECONDS + USAGE.flowLogBytesPerDay * (HOURS / 24)) / GB;
  add(
    'CloudWatch',
    'logs',
    logGb * p.cloudwatch.logsIngestPerGb +
      logGb * (dep.logRetentionDays / 30) * p.cloudwatch.logsStorageGbMonth,
    `${logGb.toFixed(1)} GB/month ingested (tasks, VPC flow logs), kept ${dep.logRetentionDays} days`,
  );

  // S3: PUTs, lifecycle transitions, storage at steady state
  const windowsPerMonth = SECONDS / 60 / dep.lakeObjectMinutes;
  const lakeObjects = n * (2 + 2 * TARGETS.length) * windowsPerMonth;
  const snapshotsPerMonth =
    feed.snapshotIntervalMs > 0 ? k * n * (SECONDS / (feed.snapshotIntervalMs / 1000)) : 0;
  const archiveObjects =
    dep.archive === 's3'
      ? k *
        Math.max(
          SECONDS / (archive.rollMs / 1000),
          (n * USAGE.archiveBytesPerSPerProduct * 12.9 * SECONDS) / archive.rollBytes,
        )
      : 0;
  const puts = lakeObjects + snapshotsPerMonth + archiveObjects;
  add(
    'S3',
    'PUTs',
    (puts / 1000) * p.s3.putsPerThousand,
    `${fmt(lakeObjects)} Parquet objects (${dep.lakeObjectMinutes} min windows), ${fmt(snapshotsPerMonth)} book snapshots (every ${feed.snapshotIntervalMs / 1000} s), ${fmt(archiveObjects)} archive objects`,
  );
  // Objects under 128 KB are not moved to Standard-IA (S3's lifecycle default): the per-tick zones' objects only
  // pass that size in windows of several minutes.
  const perTickObjectBytes =
    (USAGE.lakeBytesPerSPerProduct.perTick * 60 * dep.lakeObjectMinutes) / (1 + 2 * TARGETS.length);
  const perTickTransitions = perTickObjectBytes >= 128 * 1024;
  const transitioned = n * windowsPerMonth * (1 + (perTickTransitions ? 1 + 2 * TARGETS.length : 0));
  const iaDays = 30;
  const lakeDays = dep.lakeRetentionDays;
  add(
    'S3',
    'lifecycle transitions',
    lakeDays > iaDays ? (transitioned / 1000) * p.s3.iaTransitionsPerThousand : 0,
    `${fmt(transitioned)} objects to Standard-IA after ${iaDays} days`,
  );
  const perDay = (bytesPerS: number) => (bytesPerS * 86_400) / GB;
  const rawGbDay = perDay(n * USAGE.lakeBytesPerSPerProduct.raw);
  const tickGbDay = perDay(n * USAGE.lakeBytesPerSPerProduct.perTick);
  /** Standard and IA GB once the lake holds `days` of data (capped by its retention). */
  const storageAt = (days: number) => {
    const held = Math.min(days, lakeDays);
    const standardGb =
      (rawGbDay + tickGbDay) * Math.min(iaDays, held) +
      (perTickTransitions ? 0 : tickGbDay * Math.max(0, held - iaDays)) +
      perDay(k * n * (USAGE.snapshotBytes / (feed.snapshotIntervalMs / 1000))) * dep.snapshotRetentionDays +
      (dep.archive === 's3'
        ? perDay(k * n * USAGE.archiveBytesPerSPerProduct) * Math.min(days, dep.archiveRetentionDays)
        : 0);
    const iaGb = (rawGbDay + (perTickTransitions ? tickGbDay : 0)) * Math.max(0, held - iaDays);
    return {
      standardGb,
      iaGb,
      usd: standardGb * p.s3.standardGbMonth + iaGb * p.s3.infrequentAccessGbMonth,
    };
  };
  const steady = storageAt(lakeDays);
  add(
    'S3',
    'storage (steady state)',
    steady.usd,
    `${steady.standardGb.toFixed(0)} GB Standard + ${steady.iaGb.toFixed(0)} GB IA once the lake holds ${lakeDays} days (snapshots ${dep.snapshotRetentionDays} d, archive ${dep.archiveRetentionDays} d)`,
  );
  const firstMonthStorageSaving = steady.usd - storageAt(30).usd;

  add(
    'KMS + Secrets Manager',
    'alarm topic key, CDP key secret',
    inv.kmsKeys * p.kms.keyMonth + inv.secrets * p.secretsManager.secretMonth,
    `${inv.kmsKeys} customer-managed key${inv.secrets ? ', 1 secret' : ''}`,
  );
  add('ECR', 'images', USAGE.imageGb * p.ecr.storageGbMonth, `${USAGE.imageGb} GB, two images`);

  const byService: Partial<Record<Service, number>> = {};
  for (const line of lines) byService[line.service] = (byService[line.service] ?? 0) + line.usd;
  const total = lines.reduce((s, l) => s + l.usd, 0);
  return {
    consumer,
    lines,
    byService,
    total,
    firstMonthTotal: total - firstMonthStorageSaving,
    inventory: inv,
  };
}

/** One training run (Train and Evaluate per target, as Fargate tasks, and the state machine). */
export function trainingRunCost(
  trainer: { cpu: number; memoryMiB: number } = { cpu: 1024, memoryMiB: 4096 },
  prices: Prices = PRICES,
): { usd: number; basis: string } {
  const tasks = 2 * TARGETS.length;
  const hours = (tasks * USAGE.training.taskMinutes) / 60;
  const hourly =
    (trainer.cpu / 1024) * prices.fargate.vcpuHour +
    (trainer.memoryMiB / 1024) * prices.fargate.gbHour +
    prices.publicIpv4Hour;
  const transitions = TARGETS.length * USAGE.training.transitionsPerRun;
  // The run's metrics are billed for the hour they are sent in (custom metrics are prorated by the hour).
  const metricHours = TARGETS.length * USAGE.metrics.trainingSeriesPerTarget;
  return {
    usd:
      hours * hourly +
      (transitions / 1000) * prices.stepFunctions.transitionsPerThousand +
      (metricHours / prices.hoursPerMonth) * prices.cloudwatch.metricMonth,
    basis: `${tasks} tasks x ~${USAGE.training.taskMinutes} min at ${trainer.cpu / 1024} vCPU / ${trainer.memoryMiB / 1024} GB`,
  };
}

/** API traffic: one million requests of a read route and of POST /predict, everything they touch. */
export function apiCostPerMillion(
  d: Pick<DeploymentSettings, 'products'>,
  prices: Prices = PRICES,
): { read: number; predict: number; basis: string } {
  const p = prices;
  const fixed =
    p.httpApi.requestsPerMillion +
    p.lambda.requestsPerMillion +
    ((USAGE.api.logBytesPerRequest * 1e6) / GB) * p.cloudwatch.logsIngestPerGb +
    USAGE.api.tracedShare * USAGE.api.tracesPerMillionUsd;
  const lambda = (memoryMiB: number, ms: number) =>
    (memoryMiB / 1024) * (ms / 1000) * 1e6 * p.lambda.gbSecond;
  // GET /latest reads two items (latest, status) per product, eventually consistent: half a unit each, on
  // provisioned capacity at its 80% target.
  const readUnitSeconds = d.products.length * 2 * 0.5;
  const dynamo = ((readUnitSeconds * 1e6) / 0.8 / 3600) * p.dynamodb.rcuHour;
  return {
    read: fixed + lambda(256, USAGE.api.readMs) + dynamo,
    predict: fixed + lambda(1024, USAGE.api.predictMs) + dynamo / d.products.length,
    basis:
      `HTTP API $${p.httpApi.requestsPerMillion}, Lambda $${p.lambda.requestsPerMillion} + duration ` +
      `(${USAGE.api.readMs} ms at 256 MB, /predict ${USAGE.api.predictMs} ms at 1 GB), DynamoDB reads, ` +
      `logs ${USAGE.api.logBytesPerRequest} B/request, X-Ray ${USAGE.api.tracedShare * 100}% sampled`,
  };
}

/**
 * An always-open dashboard tab by push, per month, at one message per `cadenceMs` (the poll's cadence by default,
 * so the two compare like for like; the publisher sends at most one per PUSH_MIN_MS, and only when values
 * changed): API Gateway's WebSocket messages (32 KB units) and connection minutes, the reconnect every 2 hours
 * (three Lambda calls: $connect, subscribe, $disconnect, and their connections-table writes), the publisher's
 * share of the worker's CPU, and its share of the connections-table Scan every PUSH_REFRESH_MS.
 */
export function pushViewerCostPerMonth(
  cadenceMs: number = LATENCY_ASSUMPTIONS.dashboardPollMs,
  usage: { workerCpuUsPerPost: number } = USAGE.push,
  prices: Prices = PRICES,
): {
  messages: number;
  usd: number;
  parts: Record<'messages' | 'connectionMinutes' | 'reconnects' | 'workerCpu' | 'connectionsScan', number>;
} {
  const p = prices;
  const messages = (SECONDS * 1000) / cadenceMs;
  const units = messages * Math.ceil(USAGE.push.messageBytes / p.webSocketApi.messageUnitBytes);
  const reconnects = HOURS / USAGE.push.connectionHours;
  const parts = {
    messages: (units / 1e6) * p.webSocketApi.messagesPerMillion,
    connectionMinutes: ((HOURS * 60) / 1e6) * p.webSocketApi.connectionMinutesPerMillion,
    // Three warm calls at 256 MB (~30 ms) and ~3 write units each.
    reconnects:
      reconnects * 3 * (p.lambda.requestsPerMillion / 1e6 + 0.25 * 0.03 * p.lambda.gbSecond) +
      (reconnects * 3 * 3 * p.dynamodb.writeUnitsPerMillion) / 1e6,
    workerCpu: ((messages * usage.workerCpuUsPerPost) / 1e6 / 3600) * p.fargate.vcpuHour,
    // One ~100-byte item in a Scan once a second: 100 / 4096 of half a read unit (eventually consistent).
    connectionsScan: (((SECONDS * 100) / 4096) * 0.5 * p.dynamodb.readUnitsPerMillion) / 1e6,
  };
  return { messages, usd: Object.values(parts).reduce((s, v) => s + v, 0), parts };
}

/** An always-open dashboard tab polling GET /latest every 300 ms, per month. */
export function viewerCostPerMonth(d: Pick<DeploymentSettings, 'products'>, prices: Prices = PRICES) {
  const requests = (SECONDS * 1000) / LATENCY_ASSUMPTIONS.dashboardPollMs;
  return { requests, usd: (requests / 1e6) * apiCostPerMillion(d, prices).read };
}

export interface LatencyEstimate {
  /** Average exchange -> latest item in DynamoDB, ms. */
  toDynamoMs: number;
  /** Average exchange -> a dashboard poll sees it, ms. */
  toDashboardMs: number;
  parts: [string, number][];
}

/** Average latencies from published and measured figures (LATENCY_ASSUMPTIONS); not a measurement. */
export function latencyEstimate(d: DeploymentSettings, consumer = d.consumer): LatencyEstimate {
  const a = LATENCY_ASSUMPTIONS;
  const linger = readIngestConfig({}).lingerMs;
  const parts: [string, number][] = [
    ['exchange -> ingestor', a.exchangeToIngestorMs],
    [`producer linger (avg of ${linger} ms)`, linger / 2],
    ['PutRecords', a.putRecordsMs],
    [`Kinesis propagation (${consumer}, published average)`, a.propagationMs[consumer]],
    ['worker', a.workerMs],
    [`latest item cadence (avg of ${d.latestWriteMs} ms)`, d.latestWriteMs / 2],
    ['DynamoDB put', a.dynamoPutMs],
  ];
  const toDynamoMs = parts.reduce((s, [, ms]) => s + ms, 0);
  const toDashboardMs = toDynamoMs + a.dashboardPollMs / 2 + a.apiReadMs;
  return { toDynamoMs, toDashboardMs, parts };
}
