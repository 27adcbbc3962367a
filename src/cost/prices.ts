/**
 * The one price file: AWS list prices (USD) in us-east-1, on-demand, without free tiers, as of `asOf`. The figures
 * are the issue's starting points and the AWS pricing pages' for the rest; this machine has no internet, so
 * they were not re-read online on that date. Check them (and the region's) when you deploy: README "Cost".
 */
export const PRICES = {
  asOf: '2026-12-05',
  region: 'us-east-1',
  hoursPerMonth: 730,
  kinesis: {
    shardHour: 0.015,
    /** Per million 25 KB PUT payload units. */
    putUnitsPerMillion: 0.014,
    /** Retention beyond 24 h (up to 7 days), per shard-hour. */
    extendedRetentionShardHour: 0.02,
    /** Enhanced fan-out: per consumer-shard-hour, and per GB delivered. */
    fanoutConsumerShardHour: 0.015,
    fanoutPerGb: 0.013,
  },
  dynamodb: {
    writeUnitsPerMillion: 0.625,
    readUnitsPerMillion: 0.125,
    wcuHour: 0.00065,
    rcuHour: 0.00013,
    storageGbMonth: 0.25,
    pitrGbMonth: 0.2,
  },
  /** Fargate, Linux/ARM64. */
  fargate: { vcpuHour: 0.03238, gbHour: 0.00356 },
  /** Fargate Spot, Linux/ARM64: its price follows spare capacity (~68% below on demand when dated; check it). */
  fargateSpot: { vcpuHour: 0.01039, gbHour: 0.00114 },
  publicIpv4Hour: 0.005,
  cloudwatch: {
    metricMonth: 0.3,
    /** PutMetricData (and other metric API) requests, per 1,000. */
    apiRequestsPerThousand: 0.01,
    dashboardMonth: 3,
    alarmMonth: 0.1,
    logsIngestPerGb: 0.5,
    logsStorageGbMonth: 0.03,
  },
  s3: {
    putsPerThousand: 0.005,
    getsPerThousand: 0.0004,
    standardGbMonth: 0.023,
    infrequentAccessGbMonth: 0.0125,
    /** Lifecycle transitions to Standard-IA, per 1,000 objects. */
    iaTransitionsPerThousand: 0.01,
  },
  /** HTTP API, first 300 million requests a month. */
  httpApi: { requestsPerMillion: 1.0 },
  /**
   * WebSocket API, first billion messages a month: messages (either way; counted in 32 KB units) and connection
   * minutes.
   */
  webSocketApi: { messagesPerMillion: 1.0, messageUnitBytes: 32 * 1024, connectionMinutesPerMillion: 0.25 },
  /** Lambda, ARM64. */
  lambda: { requestsPerMillion: 0.2, gbSecond: 0.0000133334 },
  kms: { keyMonth: 1.0 },
  secretsManager: { secretMonth: 0.4 },
  /** Standard workflows, per 1,000 state transitions. */
  stepFunctions: { transitionsPerThousand: 0.025 },
  ecr: { storageGbMonth: 0.1 },
} as const;

export type Prices = typeof PRICES;
