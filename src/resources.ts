/**
 * The ONE definition of QuoteWatch's AWS resources. The CDK constructs (lib/) and the local provisioner
 * (src/local/provision.ts) both build from it, so local and deployed resources cannot drift.
 * Physical names: deployed, CDK generates them and passes them as the `env` variables below;
 * locally the `localName` is used (and is also the default in src/config.ts).
 */

export type KeyType = 'S' | 'N';
export interface KeyAttr {
  name: string;
  type: KeyType;
}

export interface TableDef {
  logicalId: string;
  localName: string;
  env: string;
  partitionKey: KeyAttr;
  sortKey?: KeyAttr;
  /** Attribute holding an epoch-seconds expiry (TTL when deployed; dynalite has no TTL API). */
  ttlAttribute?: string;
  /**
   * Holds only what lives as long as a connection: on demand, no point-in-time recovery, destroyed with the
   * stack (the other tables are kept).
   */
  ephemeral?: boolean;
}

export interface StreamDef {
  logicalId: string;
  localName: string;
  env: string;
  shardCount: number;
  retentionHours: number;
}

export interface BucketDef {
  logicalId: string;
  localName: string;
  env: string;
}

export const STREAM: StreamDef = {
  logicalId: 'MarketStream',
  localName: 'quotewatch-market',
  env: 'STREAM_NAME',
  shardCount: 2,
  retentionHours: 24,
};

/**
 * Optional (off by default): every tick's features, for other consumers (the volatility design's
 * `ticks.features` topic). Exists only when enabled: FEATURES_STREAM set locally (provision), the
 * `featuresStream` stack prop or context flag deployed; the worker publishes to it when FEATURES_STREAM is set.
 */
export const FEATURES_STREAM: StreamDef = {
  logicalId: 'FeaturesStream',
  localName: 'quotewatch-features',
  env: 'FEATURES_STREAM',
  shardCount: 1,
  retentionHours: 24,
};

export const TABLES = {
  /** pk = product, sk = "latest" for the newest snapshot or "t#<epoch ms>" for the chart history. */
  latest: {
    logicalId: 'LatestTable',
    localName: 'quotewatch-latest',
    env: 'LATEST_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    ttlAttribute: 'expiresAt',
  },
  /** See REGISTRY_KEYS: version rows pk = <target>, the active pointer pk = "active#<target>". */
  registry: {
    logicalId: 'RegistryTable',
    localName: 'quotewatch-registry',
    env: 'REGISTRY_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
  },
  /** pk = "<stream>#<shardId>": the consumer's checkpoint per shard. */
  checkpoints: {
    logicalId: 'CheckpointTable',
    localName: 'quotewatch-checkpoints',
    env: 'CHECKPOINT_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
  },
  /**
   * The WebSocket API's open connections (src/storage/connections.ts): pk = "c#<connectionId>" with its products
   * and `expiresAt` a little past API Gateway's 2-hour limit (TTL deletes lazily: readers ignore expired items),
   * and the connection counters $connect checks, pk = "n#all" and "n#ip#<address>".
   */
  connections: {
    logicalId: 'ConnectionsTable',
    localName: 'quotewatch-connections',
    env: 'CONNECTIONS_TABLE',
    partitionKey: { name: 'pk', type: 'S' },
    ttlAttribute: 'expiresAt',
    ephemeral: true,
  },
} as const satisfies Record<string, TableDef>;

/**
 * The registry table's items. Each published version has a row in its target's partition; the active pointer
 * lives in a partition of its own, so IAM can tell them apart (dynamodb:LeadingKeys names partition keys only):
 * the trainer may publish version rows but never move the pointer, which only the training state machine's
 * Promote state writes (lib/training-pipeline.ts).
 */
export const REGISTRY_KEYS = {
  version: (target: string, version: string) => ({ pk: target, sk: `v#${version}` }),
  /** One pointer per target and feature set: "active#<target>" (l2), "active#<target>.<set>" (src/model/types.ts slotKey). */
  active: (target: string, set: 'l2' | 'ticker' = 'l2') => ({
    pk: `${ACTIVE_PARTITION_PREFIX}${set === 'l2' ? target : `${target}.${set}`}`,
    sk: 'active',
  }),
  /**
   * The version tag counter of a target's tag series (VERSION_TAGS): `n`, advanced by an atomic ADD. Claiming a
   * tag takes the next n, then puts the tag's claim row on condition that it does not exist; a tag already
   * claimed (by a run given that version by hand) is skipped by taking the next n again.
   */
  tagCounter: (target: string, series: string) => ({ pk: target, sk: `tagcounter#${series}` }),
  /** The claim row of a version tag: written once by the run that uses the version. */
  tagClaim: (target: string, tag: string) => ({ pk: target, sk: `tag#${tag}` }),
} as const;
export const ACTIVE_PARTITION_PREFIX = 'active#';

/**
 * Version tags, `qs-<feature version>.0.<n>` as the QuoteWatch design emits them: one series per feature
 * version, n counting that series' runs from 1 per target. The ONE rule for the CLI's claim
 * (src/model/registry.ts claimNextVersion) and the training state machine's (lib/training-pipeline.ts, which
 * renders `tag(series, '{}')` as its States.Format template).
 */
export const VERSION_TAGS = {
  series: (featureVersion: number) => `qs-${featureVersion}.0`,
  tag: (series: string, n: number | string) => `${series}.${n}`,
} as const;

/**
 * What the training state machine writes beside a run's files (`<prefix>/<target>/<version>/`) when the run
 * failed: the error and cause it caught, whether or not the trainer got to write its own run record
 * (models/runs.ts reads it back for `quotewatch runs`).
 */
export const EXECUTION_FAILURE_RECORD = 'failure.json';

export const BUCKETS = {
  /** Parquet lake (raw / features / labels / predictions) and claim-checked book snapshots. */
  lake: { logicalId: 'LakeBucket', localName: 'quotewatch-lake', env: 'LAKE_BUCKET' },
  /** Model registry: <target>/<version>/{model.onnx, feature_spec.json, metrics.json}. */
  models: { logicalId: 'ModelBucket', localName: 'quotewatch-models', env: 'MODEL_BUCKET' },
} as const satisfies Record<string, BucketDef>;

/**
 * Key prefixes of the lake bucket, by writer: IAM scopes each task to its own prefixes and the lifecycle rules
 * keep each as long as it is useful. The worker's Parquet zones are src/storage/lake.ts LAKE_KINDS.
 */
export const LAKE_PREFIXES = {
  /** Ingestor: claim-checked full-depth books (src/stream/claimCheck.ts); the worker reads them back. */
  snapshots: 'snapshots/',
  /** Ingestor: the raw frame archive (src/ingest/archive.ts, ARCHIVE=s3). */
  archive: 'archive/',
  /** Worker: the Parquet zones (src/storage/lake.ts). */
  raw: 'raw/',
  features: 'features/',
  labels: 'labels/',
  predictions: 'predictions/',
  /** Worker: append-only marks on predictions already written (src/storage/corrections.ts); training reads them. */
  corrections: 'corrections/',
  /** Worker: records it could not decode (containers/worker/main.ts). */
  deadletter: 'deadletter/',
} as const;

/** The MODEL_URI of the local registry. */
export const LOCAL_MODEL_URI = `s3://${BUCKETS.models.localName}/registry`;
