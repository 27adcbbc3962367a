/**
 * What the running system does, per product and second, as measured: `npm run bench -- --only cost`
 * (bench/costUsage.ts) runs the real simulator -> ingestor -> Kinesis -> worker -> DynamoDB / S3 path at the
 * deployed tuning through a counting router and writes these figures again (cost.measured_*); the real Coinbase
 * capture in ../shared (README there) gives the sizes the simulator does not reproduce (frame bytes, book
 * snapshots). `quotewatch cost` multiplies them by src/cost/prices.ts. Each figure says where it comes from.
 */
export const USAGE = {
  measuredAt: '2026-12-05',
  /**
   * Kinesis records per second per product (bench: 29.5/s for two simulator products at the deployed 10 ms
   * producer linger; the simulator's event rates are calibrated to the capture's). All are under 25 KB: one PUT
   * payload unit each.
   */
  recordsPerSPerProduct: 15,
  /**
   * Stream bytes per second per product: the capture's frames without snapshots (34 KB/s for BTC-USD and
   * ETH-USD). The stream carries the normalized events, which are smaller (bench: 9 KB/s per simulator
   * product), so this bounds fan-out's per-GB charge from above.
   */
  streamBytesPerSPerProduct: 17_000,
  /** A claim-checked full-depth book, gzip (capture: BTC-USD 361 KB, ETH-USD 188 KB). */
  snapshotBytes: 275_000,
  /** The raw frame archive per product (the capture's frames, gzip 12.9 : 1). */
  archiveBytesPerSPerProduct: 1_320,
  /**
   * Lake Parquet bytes per second per product: the raw zone (bench 1.6 KB/s per simulator product, scaled by the
   * real feed's larger frames) and the per-tick zones, features, labels and predictions (bench, feed-independent).
   */
  lakeBytesPerSPerProduct: { raw: 2_900, perTick: 530 },
  /** Log lines of the two tasks (bench: 356 B/s ingestor + 195 B/s worker for two products). */
  logBytesPerSPerProduct: 275,
  /**
   * CloudWatch custom metrics (one per name and dimension values) the system emits: counted on a run of the whole
   * system and the training job by test/telemetry.contract.test.ts, which fails when this is below that count.
   * The API's request counts and latency stay out of CloudWatch (API Gateway's own metrics cover them).
   */
  // CloudWatch prorates custom metrics by the hour they receive data, so the tasks' series (sent every minute) are
  // billed for the month and the training job's only for the hours a run sends them. At steady state: feed 6
  // (resyncs one series, their reasons local), the producer 2, worker 11 (book mismatches included), live quality 5
  // per target (one served version scores a target's L2 rows: after a promotion the old version's series stop; a
  // ticker model scores only ticker-only products) and its shortfall below the model's test interval 1 per target,
  // push's failed posts 1: 32 (/predict's model time is local: the function's own Duration is free). Training: its
  // duration and its runs by decision, per target.
  metrics: { series: 32, trainingSeriesPerTarget: 4 },
  /** Rejected-traffic VPC flow logs (scanners knocking on the tasks' public IPs); an estimate. */
  flowLogBytesPerDay: 5_000_000,
  /** Both images in ECR (node:22-slim ~ 75 MB compressed each, the worker's onnxruntime 25 MB). */
  imageGb: 0.2,
  training: {
    /** A training run: Train and Evaluate per target, each a Fargate task of about this long (measured: < 5 min of CPU for what 4 GB holds). */
    taskMinutes: 10,
    /** Step Functions state transitions per run and target. */
    transitionsPerRun: 8,
  },
  push: {
    /**
     * The worker's CPU per PostToConnection (µs), the publisher's whole share: building the message, the SDK's
     * signing and its HTTP request (bench: push.worker_cpu_us_per_post, 1,000 subscribers on the local
     * management endpoint, 328 µs on 2 shared cores).
     */
    workerCpuUsPerPost: 330,
    /** A message of two products (~1 KB each, src/api/push.ts PushEntry): one 32 KB unit. */
    messageBytes: 2_200,
    /** A socket lives at most 2 hours: a reconnect ($connect, subscribe, $disconnect) that often. */
    connectionHours: 2,
  },
  api: {
    /** Warm handler duration (ms) by route memory class: the read routes and /predict (onnxruntime). */
    readMs: 30,
    predictMs: 15,
    /** Log bytes per request: the API access log line and Lambda's START/END/REPORT lines. */
    logBytesPerRequest: 700,
    /** X-Ray: Lambda's default sampling keeps about one request a second plus 5%. */
    tracedShare: 0.05,
    tracesPerMillionUsd: 5,
  },
} as const;

/** The latency model's assumptions (published averages and measured local figures), each stated. */
export const LATENCY_ASSUMPTIONS = {
  /** Exchange -> ingestor in us-east-1 (Coinbase's feed is served from AWS us-east-1). */
  exchangeToIngestorMs: 2,
  /** PutRecords round trip in-region. */
  putRecordsMs: 20,
  /** Kinesis propagation to the consumer: published averages, ~200 ms polling, ~70 ms enhanced fan-out. */
  propagationMs: { polling: 200, fanout: 70 },
  /** Worker: decode, book, features and both models per batch (bench: worker.realtime_multiple, inference.tick_p99_us). */
  workerMs: 5,
  /** DynamoDB PutItem round trip in-region. */
  dynamoPutMs: 10,
  /** A warm /latest: API Gateway + Lambda + BatchGetItem. */
  apiReadMs: 40,
  /** The dashboard's poll period. */
  dashboardPollMs: 300,
} as const;
