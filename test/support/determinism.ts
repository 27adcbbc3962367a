/**
 * What the determinism tests (lines, paths, capture) share: the registry's baseline models served as the worker
 * serves them, a worker wired as containers/worker/main.ts builds it, and a consumer that feeds it a stream until
 * the ingestors are done and the stream is drained.
 */
import type { KinesisClient } from '@aws-sdk/client-kinesis';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { dynamoClient } from '../../src/aws/clients.js';
import { readFeatureConfig, readWorkerConfig } from '../../src/config.js';
import { DEFAULT_BASELINE_DIR } from '../../src/local/provision.js';
import { seedRegistry } from '../../src/model/registry.js';
import { ActiveModels } from '../../src/model/serving.js';
import { registrySource } from '../../src/model/source.js';
import { TABLES } from '../../src/resources.js';
import type { LatestSnapshotInput } from '../../src/storage/latest.js';
import { KinesisConsumer } from '../../src/worker/consumer.js';
import { Worker } from '../../src/worker/worker.js';

export const TICK_MS = 100;
export const DELTA_MS = 500;
const quiet = () => {};

type Env = Record<string, string>;

/** The baseline models in the registry, served as the worker serves them: seeded before the suite, released after. */
export function servedBaseline(local: { readonly env: Env }): { readonly models: ActiveModels } {
  let models: ActiveModels | undefined;
  beforeAll(async () => {
    await seedRegistry(DEFAULT_BASELINE_DIR, local.env);
    models = new ActiveModels({ source: registrySource(local.env, { tickMs: TICK_MS }), log: quiet });
    await models.refresh();
  });
  afterAll(async () => {
    await models?.release();
  });
  return {
    get models() {
      if (!models) throw new Error('the served models exist only inside tests (after beforeAll)');
      return models;
    },
  };
}

export interface LiveWorkerOptions {
  env: Env;
  kinesis: KinesisClient;
  s3: S3Client;
  models: ActiveModels;
  /** The lake bucket it writes. */
  bucket: string;
  /** Default: no latest table (the tests that compare lakes). */
  writeLatest?: (snapshot: LatestSnapshotInput) => Promise<unknown>;
  /** Crash recovery over this stream, as deployed. */
  recovery?: { streamName: string };
}

/** A worker as containers/worker/main.ts builds it (the configuration's defaults), writing its lake to `bucket`. */
export function liveWorker(o: LiveWorkerOptions): Worker {
  const tuning = readWorkerConfig({});
  const writeLatest = o.writeLatest;
  return new Worker({
    tickMs: TICK_MS,
    deltaMs: DELTA_MS,
    gapLimitMs: readFeatureConfig({}).gapLimitMs,
    s3: o.s3,
    lakeBucket: o.bucket,
    objectTicks: tuning.lakeObjectTicks,
    models: () => o.models.served(),
    writeLatest: writeLatest ? async (snapshot) => void (await writeLatest(snapshot)) : async () => {},
    now: () => Date.now(),
    log: quiet,
    ...(o.recovery
      ? {
          recovery: {
            kinesis: o.kinesis,
            dynamo: dynamoClient(o.env),
            streamName: o.recovery.streamName,
            table: TABLES.checkpoints.localName,
            lookbackMs: tuning.recoveryLookbackMs,
          },
        }
      : {}),
  });
}

/**
 * Feeds `worker` from `streamName` until `ingested()` was called and the stream is drained (the consumer came back
 * empty on every shard after it); `drained` resolves then.
 */
export function drainInto(
  worker: Worker,
  o: { env: Env; kinesis: KinesisClient; streamName: string },
): { ingested(): void; drained: Promise<void> } {
  let ingested = false;
  const stop = new AbortController();
  const drained = new KinesisConsumer({
    kinesis: o.kinesis,
    dynamo: dynamoClient(o.env),
    streamName: o.streamName,
    checkpointTable: TABLES.checkpoints.localName,
    idleMs: 10,
    onIdle: () => {
      if (ingested) stop.abort();
    },
  }).run(async (batch) => {
    await worker.handleBatch(batch);
  }, stop.signal);
  return {
    ingested: () => {
      ingested = true;
    },
    drained,
  };
}
