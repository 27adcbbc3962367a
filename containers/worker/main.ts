/**
 * Worker process: `node --import tsx containers/worker/main.ts`. Consumes STREAM_NAME, computes features
 * every TICK_MS of event time, scores them with the active model of every target (hot reload every
 * MODEL_CHECK_MS), writes LATEST_TABLE and the Parquet lake in LAKE_BUCKET, checkpointing per shard (and its
 * recovery state) in CHECKPOINT_TABLE, until SIGTERM/SIGINT. Live quality goes to stdout as CloudWatch EMF lines;
 * with FEATURES_STREAM set, every tick's features also go to that Kinesis stream.
 */

import { PutObjectCommand } from '@aws-sdk/client-s3';
import { apiGatewayManagementClient, dynamoClient, kinesisClient, s3Client } from '../../src/aws/clients.js';
import {
  orExit,
  readConsumerConfig,
  readCoreConfig,
  readFeatureConfig,
  readHistoryConfig,
  readLatestWriteConfig,
  readLivenessConfig,
  readPushConfig,
  readResourceNames,
  readWorkerConfig,
} from '../../src/config.js';
import { Liveness } from '../../src/health/liveness.js';
import { collectGarbageOnSignal } from '../../src/local/gcSignal.js';
import { componentLogger, describeError } from '../../src/log.js';
import { ActiveModels } from '../../src/model/serving.js';
import { registrySource } from '../../src/model/source.js';
import { putBookVerdict } from '../../src/storage/bookVerdicts.js';
import { ConnectionsStore } from '../../src/storage/connections.js';
import { putHistory, putHistoryLabels } from '../../src/storage/history.js';
import { LatestWriter } from '../../src/storage/latest.js';
import { componentTelemetry } from '../../src/telemetry/setup.js';
import { consumerOptionsFrom, KinesisConsumer, startPositionFrom } from '../../src/worker/consumer.js';
import { kinesisFeaturesPublisher } from '../../src/worker/sinks/featuresStream.js';
import { PushSink } from '../../src/worker/sinks/push.js';
import { Worker } from '../../src/worker/worker.js';

const core = orExit(() => readCoreConfig());
const tuning = orExit(() => readWorkerConfig());
const featureConfig = orExit(() => readFeatureConfig());
const names = orExit(() => readResourceNames());
const consumerConfig = orExit(() => readConsumerConfig());
const latestWrites = orExit(() => readLatestWriteConfig());
const log = componentLogger('worker');
const s3 = s3Client();
const dynamo = dynamoClient();

const kinesis = kinesisClient();
const history = orExit(() => readHistoryConfig());
const latestStore = { client: dynamo, table: names.latestTable };
let stopping = false;
let batches = 0;
// Healthy while batches are handled or the stream is found idle (src/health/liveness.ts): the container's
// health check reads its file, the ops port's /healthz the same record.
const liveness = new Liveness(orExit(() => readLivenessConfig('worker'))).start();
// Metrics: PutMetricData when deployed (METRICS_SINK=cloudwatch), /metrics and /healthz on OPS_PORT.
const { telemetry, stop: stopTelemetry } = await componentTelemetry('worker', log, {
  health: () => ({ ...liveness.last(), ok: !stopping && (liveness.last()?.ok ?? true), batches }),
});
// The latest item is written at its cadence (LATEST_WRITE_MS): only snapshots really written count as acks.
const latestWriter = new LatestWriter({ client: dynamo, table: names.latestTable, ...latestWrites });
const wroteLatest = new Map<string, boolean>();
// The registry's active versions, hot-reloaded; a model whose feature spec differs from the code is not served.
// The worker waits out the stores coming back before its first predictions (src/model/serving.ts).
const models = new ActiveModels({
  source: registrySource(process.env, { tickMs: core.tickMs }),
  log,
  waitOutTransient: true,
});

/** Exchange time -> DynamoDB ack latencies since the last report (logged every 10 s as p50/p99). */
let latencies: number[] = [];
function reportLatency(): void {
  if (latencies.length === 0) return;
  const sorted = latencies.sort((a, b) => a - b);
  const q = (f: number) => sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))]!;
  log('info', 'latency', {
    n: sorted.length,
    p50Ms: q(0.5),
    p99Ms: q(0.99),
    maxMs: sorted[sorted.length - 1],
  });
  latencies = [];
}

// Push to the dashboards' WebSocket connections (src/worker/sinks/push.ts), when PUSH_ENDPOINT names the API.
const pushConfig = orExit(() => readPushConfig());
const push = pushConfig.endpoint
  ? new PushSink({
      client: apiGatewayManagementClient(pushConfig.endpoint, {
        maxSockets: pushConfig.concurrency,
        timeoutMs: pushConfig.timeoutMs,
      }),
      store: new ConnectionsStore({ client: dynamo, table: names.connectionsTable }),
      tickMs: core.tickMs,
      minIntervalMs: pushConfig.minIntervalMs,
      concurrency: pushConfig.concurrency,
      refreshMs: pushConfig.refreshMs,
      telemetry,
      log,
    }).start()
  : undefined;

const worker = new Worker({
  tickMs: core.tickMs,
  deltaMs: core.deltaMs,
  gapLimitMs: featureConfig.gapLimitMs,
  bookCheckSkewMs: tuning.bookCheckSkewMs,
  // The verdict channel: the ingestor polls these items and resubscribes the product's book.
  onMismatch: (o) =>
    putBookVerdict(
      {
        product: o.product,
        result: 'mismatch',
        checkId: o.checkId,
        atUs: Date.now() * 1000,
        reason: o.reason ?? 'book differs from the exchange',
      },
      latestStore,
    ),
  s3,
  lakeBucket: names.lakeBucket,
  objectTicks: tuning.lakeObjectTicks,
  models: () => models.served(),
  writeLatest: async (snap) => void wroteLatest.set(snap.product, await latestWriter.put(snap)),
  history: {
    ...history,
    put: (item) => putHistory(item, latestStore),
    labels: (product, tsUs, labels, expiresAt) =>
      putHistoryLabels(product, tsUs, labels, expiresAt, latestStore),
  },
  onLatestAck: (product, ms) => {
    if (wroteLatest.get(product)) latencies.push(ms);
  },
  ...(push ? { push } : {}),
  now: () => Date.now(),
  log,
  recovery: {
    kinesis,
    dynamo,
    streamName: names.streamName,
    table: names.checkpointTable,
    lookbackMs: tuning.recoveryLookbackMs,
  },
  telemetry,
  qualityEveryMs: tuning.qualityEveryMs,
  quality: { windowMs: tuning.qualityWindowMs, minLabels: tuning.qualityMinLabels },
  drift: { limit: tuning.driftPsiLimit },
  arbiter: tuning.arbiter,
  publishFeatures: tuning.featuresStream
    ? kinesisFeaturesPublisher(kinesis, tuning.featuresStream, log)
    : undefined,
});

const consumer = new KinesisConsumer({
  kinesis,
  dynamo,
  streamName: names.streamName,
  checkpointTable: names.checkpointTable,
  // Leases (several workers split the shards), polling or enhanced fan-out, and the idle pause.
  ...consumerOptionsFrom(consumerConfig),
  start: startPositionFrom(tuning),
  log,
  telemetry,
  onIdle: () => liveness.beat(),
  // Keep what cannot be decoded, for inspection, instead of losing it.
  onBadRecord: async (bad) => {
    const key = `deadletter/shard=${bad.shardId}/${bad.sequenceNumber}.bin`;
    await s3.send(new PutObjectCommand({ Bucket: names.lakeBucket, Key: key, Body: bad.data }));
  },
});

const abort = new AbortController();
function stop(signal: string): void {
  if (stopping) return;
  stopping = true;
  liveness.stop();
  log('info', 'worker stopping', { signal });
  abort.abort();
}
process.on('SIGTERM', () => stop('SIGTERM'));
collectGarbageOnSignal();
process.on('SIGINT', () => stop('SIGINT'));

log('info', 'worker starting', {
  ...core,
  ...names,
  ...tuning,
  ...featureConfig,
  ...consumerConfig,
  ...latestWrites,
  push: pushConfig,
});
await models.refresh();
const modelTimer = setInterval(() => void models.refresh(), tuning.modelCheckMs);
const latencyTimer = setInterval(reportLatency, 10_000);

try {
  await consumer.run(async (batch) => {
    const r = await worker.handleBatch(batch);
    liveness.beat();
    if (++batches % 100 === 1 || r.objects.length > 0) {
      log('info', 'batch', {
        shardId: batch.shardId,
        records: batch.records.length,
        ...r,
        millisBehindLatest: batch.millisBehindLatest,
        lines: worker.lines,
        ...worker.pipeline.stats(),
      });
    }
  }, abort.signal);
  clearInterval(modelTimer);
  clearInterval(latencyTimer);
  // Open lake windows are not written here: the saved recovery state makes the next start recompute them
  // and write them complete, under the names a partial write would not have had.
  await push?.stop();
  log('info', 'worker stopped', { replayedRecords: worker.replayedRecords });
  await models.release();
  await stopTelemetry();
  process.exit(0);
} catch (err) {
  clearInterval(modelTimer);
  clearInterval(latencyTimer);
  log('error', 'worker failed', { error: describeError(err) });
  process.exit(1);
}
