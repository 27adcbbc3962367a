/**
 * Ingestor process: `node --import tsx containers/ingestor/main.ts`. Streams the feed at FEED_URL (Advanced
 * Trade, or the legacy Exchange feed: FEED_KIND or the host decides) for SYMBOLS into the Kinesis stream
 * STREAM_NAME (snapshots via LAKE_BUCKET) until SIGTERM/SIGINT, then flushes what it buffered. With
 * COINBASE_API_KEY_NAME + COINBASE_API_PRIVATE_KEY set, Advanced Trade subscriptions carry a CDP JWT.
 * ARCHIVE=file|s3 also keeps every raw frame (src/ingest/archive.ts) for `quotewatch replay`.
 * Every BOOK_CHECK_S it puts the exchange's REST book of each product into the stream (src/ingest/bookCheck.ts;
 * of several ingestors the one holding the lease in LATEST_TABLE), and every BOOK_VERDICT_POLL_MS it reads the
 * worker's verdicts from LATEST_TABLE and resyncs a product whose book the worker found wrong.
 * Exits 1 if the stream cannot be written (e.g. it does not exist), 2 on bad configuration.
 */

import { kinesisClient, s3Client } from '../../src/aws/clients.js';
import {
  ConfigError,
  orExit,
  readArchiveConfig,
  readBookCheckConfig,
  readCoreConfig,
  readFeedConfig,
  readIngestConfig,
  readLivenessConfig,
  readLocalConfig,
  readResourceNames,
} from '../../src/config.js';
import { Liveness } from '../../src/health/liveness.js';
import { createArchive } from '../../src/ingest/archive.js';
import { CdpKeyError, cdpJwtSource } from '../../src/ingest/auth.js';
import { startBookChecks } from '../../src/ingest/bookCheckService.js';
import { Ingestor, newSession } from '../../src/ingest/ingestor.js';
import { KinesisProducer } from '../../src/ingest/producer.js';
import { collectGarbageOnSignal } from '../../src/local/gcSignal.js';
import { componentLogger, describeError } from '../../src/log.js';
import { SnapshotStore } from '../../src/stream/claimCheck.js';
import { componentTelemetry } from '../../src/telemetry/setup.js';

const { symbols, tickMs } = orExit(() => readCoreConfig());
const { streamName, lakeBucket } = orExit(() => readResourceNames());
const feed = orExit(() => readFeedConfig());
const tuning = orExit(() => readIngestConfig());
const archiveConfig = orExit(() => readArchiveConfig());
const bookCheck = orExit(() => readBookCheckConfig());
const jwt = orExit(() => {
  if (!feed.auth) return undefined;
  try {
    return cdpJwtSource(feed.auth);
  } catch (err) {
    if (err instanceof CdpKeyError) throw new ConfigError('COINBASE_API_PRIVATE_KEY', err.message);
    throw err;
  }
});

const log = componentLogger('ingestor');
let stopping = false;
// Metrics: PutMetricData when deployed (METRICS_SINK=cloudwatch), /metrics and /healthz on OPS_PORT.
let ingestor: Ingestor | undefined;
let liveness: Liveness | undefined;
// /healthz says what the container's health check reads (the liveness file's record).
const { telemetry, stop: stopTelemetry } = await componentTelemetry('ingestor', log, {
  health: () => ({
    ...liveness?.last(),
    ok: !stopping && (liveness?.last()?.ok ?? true),
    state: ingestor?.state,
  }),
});
// One session for the event ids and the archive's names, so archived frames and published events match up.
const session = newSession();
// A frame the archive cannot store is logged (and counted again at stop), but never stops the market data.
const archive = createArchive(archiveConfig, {
  session,
  dataDir: orExit(() => readLocalConfig()).dataDir,
  s3: s3Client(),
  bucket: lakeBucket,
  onError: (err) => log('error', 'archive write failed', { error: describeError(err) }),
});
const producer = new KinesisProducer({
  client: kinesisClient(),
  streamName,
  lingerMs: tuning.lingerMs,
  // No shardCount: the task may only PutRecords (no DescribeStreamSummary), so all products share one shard's budget.
  maxRecordsPerS: tuning.maxRecordsPerS,
  maxBytesPerS: tuning.maxBytesPerS,
  onRetry: (info) =>
    log('warn', 'PutRecords retry', { ...info, error: info.error && describeError(info.error) }),
});
ingestor = new Ingestor({
  feedUrl: feed.url,
  telemetry,
  feedKind: feed.kind,
  products: symbols,
  producer,
  snapshots: new SnapshotStore(s3Client(), lakeBucket),
  log,
  session,
  archive,
  silenceMs: tuning.silenceMs,
  statsIntervalMs: tuning.statsIntervalMs,
  snapshotIntervalMs: feed.snapshotIntervalMs,
  bookStaleMs: feed.bookStaleMs,
  watermarks:
    feed.watermarkLatenessMs === undefined ? undefined : { tickMs, latenessMs: feed.watermarkLatenessMs },
  jwt,
  onFatal: (err) => {
    log('error', 'ingestor cannot publish: exiting', { error: describeError(err) });
    process.exit(1);
  },
});

log('info', 'ingestor starting', {
  feedUrl: feed.url,
  feedKind: feed.kind,
  authenticated: jwt !== undefined,
  symbols,
  streamName,
  lakeBucket,
  session: ingestor.session,
  archive: archiveConfig.mode,
  bookCheck,
});
ingestor.start();
// The book check: of several ingestors on the feed the lease holder fetches; every one acts on the verdicts.
const bookChecks = startBookChecks({ ingestor, products: symbols, config: bookCheck, log, telemetry });
// Healthy while frames arrive, or while the feed state machine is (re)connecting: a connection that stays
// "subscribed" with no frame for LIVENESS_STUCK_MS means the watchdog itself is stuck.
let framesSeen = -1;
liveness = new Liveness({
  ...orExit(() => readLivenessConfig('ingestor')),
  progress: () => {
    const moved = ingestor!.counters.frames !== framesSeen || ingestor!.state !== 'subscribed';
    framesSeen = ingestor!.counters.frames;
    return moved;
  },
}).start();

const STOP_DEADLINE_MS = 10_000;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  log('info', 'ingestor stopping', { signal });
  liveness?.stop();
  // If Kinesis is unreachable the flush would retry forever: give up after a while and say what is lost.
  const deadline = setTimeout(() => {
    log('error', 'flush did not finish: exiting with events undelivered', { ...producer.stats() });
    process.exit(1);
  }, STOP_DEADLINE_MS);
  try {
    // Nothing is published after the producer closes: the checks and the verdicts stop first.
    await bookChecks.stop();
    await ingestor?.stop();
    await stopTelemetry();
    clearTimeout(deadline);
    process.exit(0);
  } catch (err) {
    log('error', 'ingestor could not flush before exit', { error: describeError(err) });
    process.exit(1);
  }
}
process.on('SIGTERM', () => void stop('SIGTERM'));
collectGarbageOnSignal();
process.on('SIGINT', () => void stop('SIGINT'));
