/**
 * Every metric QuoteWatch emits, once: its name, unit, dimensions and meaning. The code emits only these
 * (src/telemetry/telemetry.ts takes a catalog entry, never a bare name), the CloudWatch dashboard and alarms
 * (lib/observability.ts) graph only these, and test/telemetry.contract.test.ts checks that every metric a widget
 * or alarm uses is one the running system really emits, with the same namespace, name and dimensions.
 *
 * Each distinct combination of dimension values is one CloudWatch custom metric (priced per month), so
 * dimensions are few and bounded: no product, shard or request id among them.
 */

export const NAMESPACE = 'QuoteWatch';

export type MetricKind =
  /** A count of events in the period: summed (CloudWatch Sum), a monotonic counter in Prometheus. */
  | 'counter'
  /** A level at a moment (rates, depths, ages): last value in Prometheus, Average/Max in CloudWatch. */
  | 'gauge'
  /** A duration in milliseconds: a histogram in Prometheus, percentiles in CloudWatch. */
  | 'timing';

export interface MetricDef<D extends string = string> {
  readonly name: string;
  readonly kind: MetricKind;
  readonly unit: 'Count' | 'Milliseconds' | 'Seconds' | 'None' | 'Count/Second' | 'Bytes/Second';
  readonly dimensions: readonly D[];
  readonly description: string;
  /** Kept out of CloudWatch (Prometheus /metrics only): see `local` below. */
  readonly localOnly?: true;
}

const counter = <D extends string>(
  name: string,
  dimensions: readonly D[],
  description: string,
): MetricDef<D> => ({
  name,
  kind: 'counter',
  unit: 'Count',
  dimensions,
  description,
});
const gauge = <D extends string>(
  name: string,
  unit: MetricDef['unit'],
  dimensions: readonly D[],
  description: string,
): MetricDef<D> => ({ name, kind: 'gauge', unit, dimensions, description });
const timing = <D extends string>(
  name: string,
  dimensions: readonly D[],
  description: string,
): MetricDef<D> => ({
  name,
  kind: 'timing',
  unit: 'Milliseconds',
  dimensions,
  description,
});

/**
 * A metric kept out of CloudWatch (Prometheus /metrics only): CloudWatch bills every custom metric by the month,
 * so it gets what its dashboard or an alarm uses (test/telemetry.contract.test.ts checks both ways), and the
 * detail behind those stays local.
 */
const local = <D extends string>(def: MetricDef<D>): MetricDef<D> => ({ ...def, localOnly: true });

/** The feed, as the ingestor sees it. */
export const FEED = {
  frames: local(counter('FeedFrames', [], 'frames received from the exchange')),
  malformed: counter('FeedMalformedFrames', [], 'frames that did not parse (skipped)'),
  errors: counter('FeedErrors', [], 'error messages sent by the exchange (the connection is closed)'),
  transitions: local(counter('FeedTransitions', ['From', 'To'], 'moves of the connection state machine')),
  closes: local(
    counter('FeedCloses', ['Reason'], 'connections closed, by reason (silence, pong, remote, error, ...)'),
  ),
  reconnects: counter('FeedReconnects', [], 'connections after the first'),
  connected: local(gauge('FeedConnected', 'None', [], '1 while subscribed, else 0')),
  watchdogSuspensions: local(
    counter('FeedWatchdogSuspensions', [], 'watchdog checks skipped: socket paused or loop blocked'),
  ),
  // One CloudWatch series for all resyncs (each reason would be a metric billed by the month); the reason is in
  // the log line and in Prometheus.
  resyncs: counter('FeedResyncs', [], 'book resyncs published'),
  resyncReasons: local(
    counter(
      'FeedResyncsByReason',
      ['Reason'],
      'book resyncs published, by reason (gap, regression, crossed, ...)',
    ),
  ),
  droppedChanges: local(
    counter('FeedDroppedChanges', [], 'book changes dropped while waiting for a fresh snapshot'),
  ),
  periodicSnapshots: local(counter('FeedPeriodicSnapshots', [], 'periodic full-depth snapshots published')),
  // The book check (src/ingest/bookCheck.ts): the worker's verification metrics are the ones alarmed on.
  bookChecks: local(
    counter(
      'FeedBookChecks',
      ['Result'],
      'REST book checks by result: book (published), unavailable (published with the reason), skipped (auction)',
    ),
  ),
  bookCheckFailures: local(
    counter(
      'FeedBookCheckFailures',
      ['Reason'],
      'failed REST book fetches by reason (http, throttled, timeout, malformed, network)',
    ),
  ),
  bookCheckMs: local(timing('FeedBookCheckMs', [], "a REST book's round trip, request to parsed body")),
  bookVerdicts: local(
    counter('FeedBookVerdicts', [], "the worker's mismatch verdicts acted on (that product resubscribed)"),
  ),
  messagesPerSecond: gauge(
    'FeedMessagesPerSecond',
    'Count/Second',
    [],
    'frames per second since the last report',
  ),
  bytesPerSecond: local(
    gauge('FeedBytesPerSecond', 'Bytes/Second', [], 'bytes per second since the last report'),
  ),
  heartbeatAge: gauge(
    'FeedHeartbeatAgeSeconds',
    'Seconds',
    [],
    'age of the newest exchange heartbeat (-1: none yet)',
  ),
  producerRetries: counter('ProducerRetries', [], 'PutRecords entries retried (throttling, failures)'),
  bufferDepth: gauge('ProducerBufferDepth', 'None', [], 'events waiting in the producer buffer'),
  throttledMs: local(
    counter('ProducerThrottledMs', [], 'ms spent holding records back to stay under a shard quota'),
  ),
} as const;

/** The process itself, on every long-running component's ops port (src/telemetry/ops.ts). */
export const PROCESS = {
  loopDelayMaxMs: local(
    gauge('EventLoopDelayMaxMs', 'Milliseconds', [], 'longest event-loop delay since the previous scrape'),
  ),
  loopDelayP99Ms: local(
    gauge('EventLoopDelayP99Ms', 'Milliseconds', [], 'p99 event-loop delay since the previous scrape'),
  ),
} as const;

/** The worker: stream position, ticks, inference, live quality. */
export const WORKER = {
  records: local(counter('WorkerRecords', [], 'stream records handled')),
  events: local(counter('WorkerEvents', [], 'market events handled (duplicates included)')),
  duplicates: counter(
    'WorkerDuplicateEvents',
    [],
    'events dropped as already applied (at-least-once delivery)',
  ),
  badRecords: counter('WorkerBadRecords', [], 'records that did not decode (kept in the dead-letter prefix)'),
  iteratorAgeMs: local(
    timing(
      'WorkerIteratorAgeMs',
      [],
      "age of a batch's newest record when handled (now - its Kinesis arrival; deployed, Kinesis' own IteratorAgeMilliseconds)",
    ),
  ),
  millisBehindLatest: gauge(
    'WorkerMillisBehindLatest',
    'Milliseconds',
    [],
    'how far the newest batch is behind the stream tip (GetRecords and SubscribeToShardEvent alike)',
  ),
  ticks: counter('WorkerTicks', [], 'feature rows computed (ticks x products)'),
  lateEvents: local(
    counter(
      'WorkerLateEvents',
      [],
      "events older than their product's clock (a newer event or a watermark passed first): applied at the clock",
    ),
  ),
  bookChecks: local(
    counter('WorkerBookChecks', ['Result'], "books checked against the exchange's REST book, by result"),
  ),
  bookMismatches: counter(
    'WorkerBookMismatches',
    [],
    "book checks where our book differed from the exchange's outside the skew window",
  ),
  batchMs: timing('WorkerBatchMs', [], 'time to handle one batch (book, features, scoring, sinks)'),
  inferenceMs: timing('WorkerInferenceMs', ['Target'], 'one onnxruntime run over a batch, per model'),
  latencyMs: timing(
    'WorkerLatencyMs',
    [],
    "how far the latest item is behind the exchange: from the time the product's stream has reached (its newest event, or a watermark) to the item acknowledged",
  ),
  predictions: counter(
    'WorkerPredictions',
    ['Target'],
    'ticks scored, per target (its model version: Live*)',
  ),
  liveAuc: gauge('LiveAUC', 'None', ['Target', 'ModelVersion'], 'rolling ROC-AUC of matured labels'),
  livePrAuc: gauge(
    'LivePRAUC',
    'None',
    ['Target', 'ModelVersion'],
    'rolling PR-AUC (average precision) of matured labels',
  ),
  liveBrier: gauge('LiveBrier', 'None', ['Target', 'ModelVersion'], 'rolling Brier score of matured labels'),
  liveCalibrationError: gauge(
    'LiveCalibrationError',
    'None',
    ['Target', 'ModelVersion'],
    'rolling expected calibration error (10 bins) of matured labels',
  ),
  featureDrift: gauge(
    'FeatureDriftPSI',
    'None',
    ['Target'],
    "largest population stability index of a served model's inputs over the last hour against its training distribution, across products",
  ),
  liveBaseRate: gauge('LiveBaseRate', 'None', ['Target', 'ModelVersion'], 'rolling share of positive labels'),
  liveLabels: local(
    gauge('LiveLabels', 'Count', ['Target', 'ModelVersion'], 'matured labels in the rolling window'),
  ),
  liveAucShortfall: gauge(
    'LiveAUCShortfall',
    'None',
    ['Target'],
    "how far live ROC-AUC is below the low end of the served model's test interval (0: within it)",
  ),
} as const;

/** The HTTP API (Lambda handlers, and the local gateway running them). */
export const API = {
  // API Gateway's own Count / 4XXError / 5XXError / Latency cover these deployed (the dashboard graphs them).
  requests: local(
    counter('ApiRequests', ['Route', 'Status'], 'requests answered, by route key and status code'),
  ),
  latencyMs: local(timing('ApiLatencyMs', ['Route'], 'handler time per request')),
  predictions: local(counter('ApiPredictions', ['Target', 'ModelVersion'], 'vectors scored by /predict')),
  // Deployed, the /predict function's own Duration (free) stands for it on the dashboard.
  predictionMs: local(
    timing('ApiPredictionMs', ['Target'], 'one /predict model run (a single vector or a batch)'),
  ),
} as const;

/** Push: the worker's publisher (src/worker/sinks/push.ts) posting to the WebSocket API's connections. */
export const PUSH = {
  posts: local(counter('PushPosts', [], 'messages posted to connections (PostToConnection answered 2xx)')),
  failedPosts: counter(
    'PushFailedPosts',
    [],
    'posts that failed other than 410 Gone (throttled, timed out, refused): the alarm watches these',
  ),
  gone: local(
    counter('PushGoneConnections', [], 'connections removed because the API called them gone (410)'),
  ),
  connections: local(
    gauge('PushConnections', 'Count', [], 'connections the publisher holds with a subscription'),
  ),
  postMs: local(timing('PushPostMs', [], 'one PostToConnection round trip')),
} as const;

/** The training pipeline. */
export const TRAINING = {
  runs: counter(
    'TrainingRuns',
    ['Target', 'Decision'],
    'evaluated candidates by gate decision (promote, keep), and failed steps (failed)',
  ),
  durationS: gauge('TrainingDurationSeconds', 'Seconds', ['Target'], 'duration of the last train step'),
} as const;

export const CATALOG: readonly MetricDef[] = [
  ...Object.values(PROCESS),
  ...Object.values(FEED),
  ...Object.values(WORKER),
  ...Object.values(API),
  ...Object.values(PUSH),
  ...Object.values(TRAINING),
];

export type DimensionsOf<M> = M extends MetricDef<infer D> ? { readonly [K in D]: string } : never;
