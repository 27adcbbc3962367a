/**
 * Creates QuoteWatch's stream, tables and buckets on the emulators (or LocalStack), idempotently, built only
 * from src/resources.ts, the same definition the CDK stack uses, so local resources cannot drift from deployed
 * ones. Deployed resources come from CDK, never from here.
 */

import { fileURLToPath } from 'node:url';
import {
  type AttributeDefinition,
  CreateTableCommand,
  DescribeTableCommand,
  type KeySchemaElement,
  ResourceInUseException,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  IncreaseStreamRetentionPeriodCommand,
  type StreamDescriptionSummary,
  ResourceInUseException as StreamInUseException,
} from '@aws-sdk/client-kinesis';
import { CreateBucketCommand, HeadBucketCommand } from '@aws-sdk/client-s3';
import { dynamoClient, kinesisClient, s3Client } from '../aws/clients.js';
import { sleep } from '../clock.js';
import { readFeaturesStream } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { seedRegistry } from '../model/registry.js';
import {
  BUCKETS,
  type BucketDef,
  FEATURES_STREAM,
  LOCAL_MODEL_URI,
  STREAM,
  type StreamDef,
  TABLES,
  type TableDef,
} from '../resources.js';

type Env = Record<string, string | undefined>;

export class ProvisionError extends QuoteWatchError {
  constructor(
    readonly resource: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${resource}: ${message}`, options);
  }
}

export interface ProvisionOptions {
  /** Progress lines ("created table quotewatch-latest"). */
  log?: (line: string) => void;
  /** Publish models/baseline via seedRegistry (src/model/registry.ts), activating where none is (default true). */
  seed?: boolean;
  baselineDir?: string;
  /** How long to wait for a stream or table to become ACTIVE. */
  activeTimeoutMs?: number;
}

export interface ProvisionResult {
  created: string[];
  existing: string[];
}

export const DEFAULT_BASELINE_DIR = fileURLToPath(new URL('../../models/baseline', import.meta.url));

async function waitActive<T extends { status: string | undefined }>(
  resource: string,
  describe: () => Promise<T>,
  timeoutMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const current = await describe();
    if (current.status === 'ACTIVE') return current;
    if (Date.now() > deadline) {
      throw new ProvisionError(resource, `still ${current.status} after ${timeoutMs} ms`);
    }
    await sleep(100);
  }
}

async function provisionStream(env: Env, def: StreamDef, result: ProvisionResult, timeoutMs: number) {
  const kinesis = kinesisClient(env);
  const name = def.localName;
  try {
    await kinesis.send(new CreateStreamCommand({ StreamName: name, ShardCount: def.shardCount }));
    result.created.push(`stream ${name}`);
  } catch (err) {
    if (!(err instanceof StreamInUseException)) {
      throw new ProvisionError(`stream ${name}`, 'could not create', { cause: err });
    }
    result.existing.push(`stream ${name}`);
  }
  const summary: StreamDescriptionSummary = (
    await waitActive(
      `stream ${name}`,
      async () => {
        const s = (await kinesis.send(new DescribeStreamSummaryCommand({ StreamName: name })))
          .StreamDescriptionSummary!;
        return { status: s.StreamStatus, s };
      },
      timeoutMs,
    )
  ).s;
  if (summary.OpenShardCount !== def.shardCount) {
    // Resharding an existing local stream would split its data across shard ids; say so instead.
    throw new ProvisionError(
      `stream ${name}`,
      `exists with ${summary.OpenShardCount} open shards, src/resources.ts says ${def.shardCount}; ` +
        'delete the local data folder (QW_DATA_DIR) to recreate it',
    );
  }
  if ((summary.RetentionPeriodHours ?? 24) < def.retentionHours) {
    await kinesis.send(
      new IncreaseStreamRetentionPeriodCommand({
        StreamName: name,
        RetentionPeriodHours: def.retentionHours,
      }),
    );
  }
}

function keySchemaOf(def: TableDef): { keys: KeySchemaElement[]; attributes: AttributeDefinition[] } {
  const keys: KeySchemaElement[] = [{ AttributeName: def.partitionKey.name, KeyType: 'HASH' }];
  const attributes: AttributeDefinition[] = [
    { AttributeName: def.partitionKey.name, AttributeType: def.partitionKey.type },
  ];
  if (def.sortKey) {
    keys.push({ AttributeName: def.sortKey.name, KeyType: 'RANGE' });
    attributes.push({ AttributeName: def.sortKey.name, AttributeType: def.sortKey.type });
  }
  return { keys, attributes };
}

async function provisionTable(env: Env, def: TableDef, result: ProvisionResult, timeoutMs: number) {
  const dynamo = dynamoClient(env);
  const name = def.localName;
  const { keys, attributes } = keySchemaOf(def);
  try {
    await dynamo.send(
      new CreateTableCommand({
        TableName: name,
        KeySchema: keys,
        AttributeDefinitions: attributes,
        BillingMode: 'PAY_PER_REQUEST',
      }),
    );
    result.created.push(`table ${name}`);
  } catch (err) {
    if (!(err instanceof ResourceInUseException)) {
      throw new ProvisionError(`table ${name}`, 'could not create', { cause: err });
    }
    result.existing.push(`table ${name}`);
  }
  const table: TableDescription = (
    await waitActive(
      `table ${name}`,
      async () => {
        const t = (await dynamo.send(new DescribeTableCommand({ TableName: name }))).Table!;
        return { status: t.TableStatus, t };
      },
      timeoutMs,
    )
  ).t;
  const actual = JSON.stringify(table.KeySchema);
  if (actual !== JSON.stringify(keys)) {
    throw new ProvisionError(
      `table ${name}`,
      `exists with key schema ${actual}, src/resources.ts says ${JSON.stringify(keys)}; ` +
        'delete the local data folder (QW_DATA_DIR) to recreate it',
    );
  }
  // def.ttlAttribute is not applied: dynalite has no TTL API (UpdateTimeToLive), so local items never expire.
}

async function provisionBucket(env: Env, def: BucketDef, result: ProvisionResult) {
  const s3 = s3Client(env);
  const name = def.localName;
  try {
    await s3.send(new HeadBucketCommand({ Bucket: name }));
    result.existing.push(`bucket ${name}`);
    return;
  } catch (err) {
    const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status !== 404)
      throw new ProvisionError(`bucket ${name}`, 'could not check whether it exists', { cause: err });
  }
  try {
    await s3.send(new CreateBucketCommand({ Bucket: name }));
    result.created.push(`bucket ${name}`);
  } catch (err) {
    throw new ProvisionError(`bucket ${name}`, 'could not create', { cause: err });
  }
}

/**
 * Creates what is missing (stream, tables, buckets), waits until usable, then seeds the model registry.
 * The optional features stream is created only when `env` enables it (FEATURES_STREAM = its name).
 */
export async function provision(env: Env, options: ProvisionOptions = {}): Promise<ProvisionResult> {
  const {
    log = () => {},
    seed = true,
    baselineDir = DEFAULT_BASELINE_DIR,
    activeTimeoutMs = 30_000,
  } = options;
  const result: ProvisionResult = { created: [], existing: [] };
  const featuresStream = readFeaturesStream(env);
  await Promise.all([
    provisionStream(env, STREAM, result, activeTimeoutMs),
    ...(featuresStream
      ? [provisionStream(env, { ...FEATURES_STREAM, localName: featuresStream }, result, activeTimeoutMs)]
      : []),
    ...Object.values(TABLES).map((def: TableDef) => provisionTable(env, def, result, activeTimeoutMs)),
    ...Object.values(BUCKETS).map((def: BucketDef) => provisionBucket(env, def, result)),
  ]);
  for (const what of result.created) log(`created ${what}`);
  if (result.existing.length > 0) log(`already there: ${result.existing.join(', ')}`);
  if (seed) {
    // The local registry lives in the models bucket provisioned above (MODEL_URI can point elsewhere).
    const seeded = await seedRegistry(baselineDir, { MODEL_URI: LOCAL_MODEL_URI, ...env });
    for (const version of seeded.published) log(`published model ${version}`);
    for (const version of seeded.activated) log(`activated model ${version}`);
  }
  return result;
}
