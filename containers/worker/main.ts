/**
 * Worker process: `node --import tsx containers/worker/main.ts`. Consumes STREAM_NAME, computes features
 * every TICK_MS of event time, scores them with the active quote_change_500ms model, writes LATEST_TABLE
 * and the Parquet lake in LAKE_BUCKET, checkpointing per shard in CHECKPOINT_TABLE, until SIGTERM/SIGINT.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { dynamoClient, kinesisClient, s3Client } from '../../src/aws/clients.js';
import { orExit, readCoreConfig, readResourceNames, readWorkerConfig } from '../../src/config.js';
import { describeError, jsonLogger } from '../../src/ingest/log.js';
import { activeVersion, loadActive } from '../../src/model/registry.js';
import type { LoadedModel } from '../../src/model/types.js';
import { putLatest } from '../../src/storage/latest.js';
import { KinesisConsumer } from '../../src/worker/consumer.js';
import { Worker } from '../../src/worker/worker.js';

const TARGET = 'quote_change_500ms';

const core = orExit(() => readCoreConfig());
const tuning = orExit(() => readWorkerConfig());
const names = orExit(() => readResourceNames());
const log = jsonLogger('worker');
const s3 = s3Client();
const dynamo = dynamoClient();

let model: LoadedModel | undefined;
async function refreshModel(): Promise<void> {
  try {
    const active = core.modelUri.startsWith('file://') ? undefined : await activeVersion(TARGET);
    if (model && (active === undefined || active === model.version)) return;
    const next = await loadActive(TARGET, process.env, { tickMs: core.tickMs });
    const old = model;
    model = next;
    log('info', 'model loaded', { target: TARGET, version: next.version });
    await old?.release();
  } catch (err) {
    log(model ? 'warn' : 'error', 'model not loaded; serving features without predictions until it is', {
      error: describeError(err),
    });
  }
}

const worker = new Worker({
  tickMs: core.tickMs,
  deltaMs: core.deltaMs,
  s3,
  lakeBucket: names.lakeBucket,
  objectTicks: tuning.lakeObjectTicks,
  model: () => model,
  writeLatest: (snap) => putLatest(snap, { client: dynamo, table: names.latestTable }),
  now: () => Date.now(),
  log,
});

const consumer = new KinesisConsumer({
  kinesis: kinesisClient(),
  dynamo,
  streamName: names.streamName,
  checkpointTable: names.checkpointTable,
  log,
  // Keep what cannot be decoded, for inspection, instead of losing it.
  onBadRecord: async (bad) => {
    const key = `deadletter/shard=${bad.shardId}/${bad.sequenceNumber}.bin`;
    await s3.send(new PutObjectCommand({ Bucket: names.lakeBucket, Key: key, Body: bad.data }));
  },
});

const abort = new AbortController();
let stopping = false;
function stop(signal: string): void {
  if (stopping) return;
  stopping = true;
  log('info', 'worker stopping', { signal });
  abort.abort();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

log('info', 'worker starting', { ...core, ...names, ...tuning });
await refreshModel();
const modelTimer = setInterval(() => void refreshModel(), tuning.modelCheckMs);

let batches = 0;
try {
  await consumer.run(async (batch) => {
    const r = await worker.handleBatch(batch);
    if (++batches % 100 === 1 || r.objects.length > 0) {
      log('info', 'batch', {
        shardId: batch.shardId,
        records: batch.records.length,
        ...r,
        millisBehindLatest: batch.millisBehindLatest,
        duplicatesDropped: consumer.duplicatesDropped,
        ...worker.pipeline.stats(),
      });
    }
  }, abort.signal);
  clearInterval(modelTimer);
  const keys = await worker.close();
  log('info', 'worker stopped', { flushedObjects: keys.length });
  await model?.release();
  process.exit(0);
} catch (err) {
  clearInterval(modelTimer);
  log('error', 'worker failed', { error: describeError(err) });
  await worker
    .close()
    .catch((e: unknown) => log('error', 'could not flush the lake', { error: describeError(e) }));
  process.exit(1);
}
