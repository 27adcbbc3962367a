/**
 * The one place every QuoteWatch process reads and validates its settings.
 * A bad value stops the process with a message naming the variable (ConfigError).
 */
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as z from 'zod';
import { QuoteWatchError } from './errors.js';
import { type FeatureSetName, MODEL_SETS, TARGETS, type Target } from './model/types.js';
import { loadProfile, type Profile, ProfileError } from './simulator/profile.js';

export class ConfigError extends QuoteWatchError {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
  }
}

type Env = Record<string, string | undefined>;

// Shared definitions: the one home of the values the processes, the local runner and CDK (lib/) all use.

/** A product id as Coinbase writes it: upper-case BASE-QUOTE ("BTC-USD"). SYMBOLS, /latest and /predict check it. */
export const PRODUCT_ID_PATTERN = /^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/;

/** Coinbase's WebSocket feeds: Advanced Trade (the deployed default, `--live`) and the legacy Exchange feed. */
export const COINBASE_FEEDS = {
  advancedTrade: 'wss://advanced-trade-ws.coinbase.com',
  exchange: 'wss://ws-feed.exchange.coinbase.com',
} as const;

/** The fixed local ports: `npm start`, `quotewatch emulators` and the processes' PORT / SIM_PORT defaults. */
export const DEFAULT_PORTS = {
  gateway: 3000,
  simulator: 8765,
  kinesis: 4567,
  dynamodb: 4568,
  s3: 4569,
  /** The ingestor's and the worker's ops ports (/metrics, /healthz) under `npm start`. */
  ingestorOps: 9101,
  workerOps: 9102,
  /** The second ingestor's (INGESTORS=2). */
  ingestor2Ops: 9103,
  /** The second worker's (WORKERS=2). */
  worker2Ops: 9104,
  /** The local gateway's WebSocket API and its management endpoint (`/@connections/{id}`). */
  websocket: 3001,
} as const;

/**
 * The path of the local simulator's Exchange feed: one simulator (one market) speaks Advanced Trade at `/` and the
 * legacy Exchange protocol here, as Coinbase serves the two from two hosts (src/simulator/server.ts).
 */
export const SIMULATOR_EXCHANGE_PATH = '/exchange';

/** The local exchange simulator's feed (FEED_URL's default), in either protocol. */
export function simulatorFeedUrl(
  port: number = DEFAULT_PORTS.simulator,
  kind: FeedKind = 'advanced',
): string {
  return `ws://127.0.0.1:${port}${kind === 'exchange' ? SIMULATOR_EXCHANGE_PATH : ''}`;
}

/** The market settings every component shares, as the stack passes them (SYMBOLS, TICK_MS, DELTA_MS). */
export interface CoreSettings {
  readonly symbols: readonly string[];
  readonly tickMs: number;
  readonly deltaMs: number;
}

/** The design's defaults: two products, a 100 ms feature tick, a 500 ms quote-change horizon. */
export const DEFAULT_CORE: CoreSettings = { symbols: ['BTC-USD', 'ETH-USD'], tickMs: 100, deltaMs: 500 };

/** The environment that carries core settings to a process; readCoreConfig reads it back. */
export function coreEnv(core: CoreSettings): { SYMBOLS: string; TICK_MS: string; DELTA_MS: string } {
  return { SYMBOLS: core.symbols.join(','), TICK_MS: String(core.tickMs), DELTA_MS: String(core.deltaMs) };
}

const productId = z.string().regex(PRODUCT_ID_PATTERN, 'expected products like BTC-USD');

function read<T>(env: Env, variable: string, schema: z.ZodType<T>, fallback?: string): T {
  const raw = env[variable] ?? fallback;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => i.message).join('; ');
    throw new ConfigError(variable, `invalid value ${JSON.stringify(raw)} (${why})`);
  }
  return parsed.data;
}

const intMs = (min: number, max: number) =>
  z.coerce
    .number({ message: 'expected a whole number of milliseconds' })
    .int('expected a whole number of milliseconds')
    .min(min, `must be >= ${min}`)
    .max(max, `must be <= ${max}`);

const symbols = z
  .string({ message: 'required' })
  .transform((s) =>
    s
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean),
  )
  .pipe(z.array(productId).min(1, 'at least one product'));

const modelUri = z
  .string({ message: 'required' })
  .regex(/^(s3:\/\/[a-z0-9.-]+(\/.*)?|file:\/\/.+)$/, 'expected s3://bucket/prefix or file:///path');

const nonEmpty = z.string({ message: 'required' }).min(1, 'required');

/** Market and model settings shared by every component. */
export interface CoreConfig {
  symbols: string[];
  tickMs: number;
  deltaMs: number;
  modelUri: string;
}

export function readCoreConfig(env: Env = process.env): CoreConfig {
  const defaults = coreEnv(DEFAULT_CORE);
  return {
    symbols: read(env, 'SYMBOLS', symbols, defaults.SYMBOLS),
    tickMs: read(env, 'TICK_MS', intMs(10, 60_000), defaults.TICK_MS),
    deltaMs: read(env, 'DELTA_MS', intMs(10, 600_000), defaults.DELTA_MS),
    modelUri: read(env, 'MODEL_URI', modelUri, 's3://quotewatch-models/registry'),
  };
}

/** Physical resource names: CDK passes the generated ones; locally they default to the provisioned names. */
export interface ResourceNames {
  streamName: string;
  latestTable: string;
  registryTable: string;
  checkpointTable: string;
  lakeBucket: string;
  /** The WebSocket API's connections (src/storage/connections.ts). */
  connectionsTable: string;
}

export function readResourceNames(env: Env = process.env): ResourceNames {
  return {
    connectionsTable: read(env, 'CONNECTIONS_TABLE', nonEmpty, 'quotewatch-connections'),
    streamName: read(env, 'STREAM_NAME', nonEmpty, 'quotewatch-market'),
    latestTable: read(env, 'LATEST_TABLE', nonEmpty, 'quotewatch-latest'),
    registryTable: read(env, 'REGISTRY_TABLE', nonEmpty, 'quotewatch-registry'),
    checkpointTable: read(env, 'CHECKPOINT_TABLE', nonEmpty, 'quotewatch-checkpoints'),
    lakeBucket: read(env, 'LAKE_BUCKET', nonEmpty, 'quotewatch-lake'),
  };
}

/** Where the ingestor connects: the local simulator by default, Coinbase with FEED_URL=COINBASE_FEEDS.advancedTrade. */
export function readFeedUrl(env: Env = process.env): string {
  return read(
    env,
    'FEED_URL',
    z.string().regex(/^wss?:\/\/.+/, 'expected ws:// or wss:// URL'),
    simulatorFeedUrl(),
  );
}

export function readPort(env: Env, variable: string, fallback: number): number {
  return read(env, variable, z.coerce.number().int().min(0).max(65535), String(fallback));
}

/** Runs a reader and turns a ConfigError into a one-line message and exit code 2: fail fast, name the variable. */
export function orExit<T>(reader: () => T): T {
  try {
    return reader();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`configuration error: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

/** Settings of the API handlers (Lambda and the local gateway). */
export interface ApiConfig {
  /** Commit the deployed code was built from, when the build passes it. */
  buildSha: string | undefined;
  /** /health reports "degraded" when the newest latest snapshot is older than this. */
  staleAfterMs: number;
  /** How often a warm handler re-reads the active model pointer to pick up a new version. */
  modelCheckMs: number;
  /** How long /latest keeps a read of the latest table (0: every request reads it). */
  latestCacheMs: number;
}

export function readApiConfig(env: Env = process.env): ApiConfig {
  return {
    buildSha: read(env, 'BUILD_SHA', z.string().min(1, 'must not be empty').optional()),
    staleAfterMs: read(env, 'HEALTH_STALE_MS', intMs(100, 3_600_000), '10000'),
    modelCheckMs: read(env, 'MODEL_CHECK_MS', intMs(0, 600_000), '5000'),
    latestCacheMs: read(env, 'LATEST_CACHE_MS', intMs(0, 10_000), '100'),
  };
}

/**
 * The local gateway's stand-in for the deployed API's authorizer (src/gateway/auth.ts), off by default:
 * API_AUTH=iam accepts requests SigV4-signed (execute-api, AWS_REGION) with the gateway's own AWS_ACCESS_KEY_ID /
 * AWS_SECRET_ACCESS_KEY; API_AUTH=jwt accepts a Bearer JWT of JWT_ISSUER (keys from its OpenID discovery) for
 * JWT_AUDIENCE, as the deployed JWT authorizer checks it. The protected routes (and, with PUBLIC_READS=false,
 * the read routes) of src/api/routes.ts need it, as deployed.
 */
export interface GatewayAuthConfig {
  mode: 'none' | 'iam' | 'jwt';
  publicReads: boolean;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  jwtIssuer: string | undefined;
  jwtAudience: string[];
}

export function readGatewayAuthConfig(env: Env = process.env): GatewayAuthConfig {
  const mode = read(
    env,
    'API_AUTH',
    z.enum(['none', 'iam', 'jwt'], { message: 'expected none, iam or jwt' }),
    'none',
  );
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  const config: GatewayAuthConfig = {
    mode,
    publicReads: read(env, 'PUBLIC_READS', z.enum(['true', 'false']), 'true') === 'true',
    region: read(env, 'AWS_REGION', nonEmpty, 'us-east-1'),
    credentials: accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : undefined,
    jwtIssuer: read(
      env,
      'JWT_ISSUER',
      z
        .string()
        .regex(/^https?:\/\/\S+$/, 'expected the issuer URL')
        .optional(),
    ),
    jwtAudience:
      read(env, 'JWT_AUDIENCE', z.string().optional())
        ?.split(',')
        .map((a) => a.trim())
        .filter(Boolean) ?? [],
  };
  if (mode === 'iam' && !config.credentials) {
    throw new ConfigError('AWS_ACCESS_KEY_ID', 'API_AUTH=iam needs the credentials requests are signed with');
  }
  if (mode === 'jwt' && (!config.jwtIssuer || config.jwtAudience.length === 0)) {
    throw new ConfigError(config.jwtIssuer ? 'JWT_AUDIENCE' : 'JWT_ISSUER', 'required with API_AUTH=jwt');
  }
  return config;
}

/** An allowed origin of cross-origin calls: `*`, or scheme://host[:port] as a browser sends it. */
const corsOrigins = z
  .string()
  .optional()
  .transform((v) =>
    v
      ? v
          .split(',')
          .map((o) => o.trim())
          .filter(Boolean)
      : [],
  )
  .pipe(
    z.array(
      z
        .string()
        .regex(/^(\*|https?:\/\/[a-z0-9.-]+(:\d{1,5})?)$/, 'expected * or origins like https://example.com'),
    ),
  );

/** The origins whose browsers may call the local gateway (CORS_ORIGINS; none: same origin only). */
export function readCorsConfig(env: Env = process.env): { origins: string[] } {
  return { origins: read(env, 'CORS_ORIGINS', corsOrigins) };
}

/** Settings of the local runner (bin/quotewatch.ts): where emulator data lives and the gateway's port. */
export interface LocalConfig {
  dataDir: string;
  gatewayPort: number;
  /** INGESTORS: `quotewatch start` runs this many ingestors, each on its own connection (2: a hot-standby pair). */
  ingestors: number;
  /** WORKERS: `quotewatch start` runs this many workers; they split the stream's shards by lease. */
  workers: number;
}

export function readLocalConfig(env: Env = process.env): LocalConfig {
  return {
    dataDir: read(env, 'QW_DATA_DIR', nonEmpty, '.quotewatch'),
    gatewayPort: readPort(env, 'PORT', DEFAULT_PORTS.gateway),
    ingestors: read(
      env,
      'INGESTORS',
      z.coerce.number().int().min(1, 'must be 1 or 2').max(2, 'must be 1 or 2'),
      '1',
    ),
    workers: read(
      env,
      'WORKERS',
      z.coerce.number().int().min(1, 'must be 1 or 2').max(2, 'must be 1 or 2'),
      '1',
    ),
  };
}

/** The local exchange simulator (src/simulator/main.ts). */
export interface SimulatorConfig {
  port: number;
  seed: number;
  mode: 'realtime' | 'fast';
  /** NDJSON log of every frame sent; off when unset. */
  logPath: string | undefined;
  /** SIM_PROFILE: the market's parameters (src/simulator/profile.ts), validated; the shipped defaults when unset. */
  profile: Profile | undefined;
  /** SIM_SPEED: simulated seconds per wall second in realtime mode (chaos and soak runs use several). */
  speed: number;
  /** SIM_HOSTILE_MS: hostile mode, a hostile frame every this many simulated ms (0 = off; src/simulator/hostile.ts). */
  hostileEveryMs: number;
  /** SIM_REST_DELAY_MS `min,max`: the REST product book answers after a delay drawn from [min, max] wall ms. */
  restDelayMs: [minMs: number, maxMs: number];
  /** SIM_LOST_UPDATE_MS: one lost level update per connection every this many simulated ms (0 = off). */
  lostUpdateEveryMs: number;
}

/** `min,max` (or one value for both) in whole ms, min <= max <= 60 s. */
const msRange = z
  .string()
  .regex(/^\s*\d+\s*(,\s*\d+\s*)?$/, 'expected min,max in whole milliseconds, e.g. 20,300')
  .transform((s): [number, number] => {
    const [min, max = min] = s.split(',').map(Number) as [number, number?];
    return [min, max];
  })
  .refine(([min, max]) => min <= max && max <= 60_000, 'expected min <= max <= 60000');

export function readSimulatorConfig(env: Env = process.env): SimulatorConfig {
  const profilePath = read(env, 'SIM_PROFILE', z.string().min(1, 'must not be empty').optional());
  let profile: Profile | undefined;
  try {
    profile = profilePath === undefined ? undefined : loadProfile(profilePath);
  } catch (err) {
    if (err instanceof ProfileError) throw new ConfigError('SIM_PROFILE', err.message);
    throw err;
  }
  return {
    port: readPort(env, 'SIM_PORT', DEFAULT_PORTS.simulator),
    seed: read(env, 'SIM_SEED', z.coerce.number().int('expected a whole number').min(0).max(0xffffffff), '1'),
    mode: read(env, 'SIM_MODE', z.enum(['realtime', 'fast']), 'realtime'),
    logPath: read(env, 'SIM_LOG', z.string().optional()),
    profile,
    speed: read(
      env,
      'SIM_SPEED',
      z.coerce.number().min(0.01, 'must be >= 0.01').max(1000, 'must be <= 1000'),
      '1',
    ),
    hostileEveryMs: read(env, 'SIM_HOSTILE_MS', intMs(0, 3_600_000), '0'),
    restDelayMs: read(env, 'SIM_REST_DELAY_MS', msRange, '20,300'),
    lostUpdateEveryMs: read(env, 'SIM_LOST_UPDATE_MS', intMs(0, 86_400_000), '0'),
  };
}

/** Ingestor tuning: silence watchdog, stats period, producer linger and rate limit. */
export interface IngestConfig {
  silenceMs: number;
  statsIntervalMs: number;
  lingerMs: number;
  /**
   * Producer budget per partition key (one product = one shard) and, the shard map being unknown to the
   * ingestor, for the whole producer too: at most this many records / bytes in any 1 s window. A shard takes
   * 1,000 records/s and 1 MiB/s; the defaults keep 10% in reserve.
   */
  maxRecordsPerS: number;
  maxBytesPerS: number;
}

export function readIngestConfig(env: Env = process.env): IngestConfig {
  return {
    silenceMs: read(env, 'FEED_SILENCE_MS', intMs(100, 600_000), '5000'),
    statsIntervalMs: read(env, 'FEED_STATS_MS', intMs(100, 600_000), '5000'),
    // 10 ms: batches still form (one in flight, one record per product each), at most ~100 records/s per product,
    // far below a shard's 1000 records/s for a handful of products; every ms of it is exchange -> DynamoDB latency.
    lingerMs: read(env, 'PRODUCER_LINGER_MS', intMs(0, 10_000), '10'),
    maxRecordsPerS: read(
      env,
      'PRODUCER_MAX_RECORDS_PER_S',
      z.coerce
        .number({ message: 'expected a whole number' })
        .int('expected a whole number')
        .min(1, 'must be >= 1')
        .max(1000, "must be <= 1000 (a shard's limit)"),
      '900',
    ),
    // A record is never bigger than this budget, so it bounds the largest event too: keep it far above events.
    maxBytesPerS: read(
      env,
      'PRODUCER_MAX_BYTES_PER_S',
      z.coerce
        .number({ message: 'expected a whole number' })
        .int('expected a whole number')
        .min(65_536, 'must be >= 65536')
        .max(1_048_576, "must be <= 1048576 (a shard's limit)"),
      '943718',
    ),
  };
}

export type FeedKind = 'advanced' | 'exchange';

/** Which feed protocol FEED_URL speaks, and the ingestor's book-keeping periods. */
export interface FeedConfig {
  url: string;
  /**
   * FEED_KIND when set, else from the URL: a ws-feed.* host (Coinbase) or the simulator's /exchange path is the legacy
   * Exchange feed, anything else Advanced Trade.
   */
  kind: FeedKind;
  /** Full-depth book snapshot to S3 (claim-checked into the stream) this often, per product; 0 disables. */
  snapshotIntervalMs: number;
  /** Exchange feed: a product with heartbeats but no book update for this long is resynced; 0 disables. */
  bookStaleMs: number;
  /** CDP API key for Advanced Trade (both variables or neither). */
  auth: { keyName: string; privateKey: string } | undefined;
  /**
   * WATERMARK_LATENESS_MS: how late, after the exchange time the connection's newest book update or heartbeat
   * extrapolates to, an event may still arrive; a quiet product's ticks are closed by a watermark that far behind
   * (src/stream/record.ts WatermarkEvent). `off`: no watermarks (a tick waits for the product's next event).
   * Defaults from the real captures (README, "Watermarks"): 300 ms on Advanced Trade, 100 ms on the Exchange feed.
   */
  watermarkLatenessMs: number | undefined;
}

/** WATERMARK_LATENESS_MS defaults per feed, measured on the captures in ../shared (README, "Watermarks"). */
export const DEFAULT_WATERMARK_LATENESS_MS: Record<FeedKind, number> = { advanced: 300, exchange: 100 };

export function feedKindOf(url: string): FeedKind {
  let host = '';
  let path = '';
  try {
    ({ hostname: host, pathname: path } = new URL(url));
  } catch {
    // readFeedUrl already validated the scheme; an unparsable rest falls back to the default kind.
  }
  return host.startsWith('ws-feed.') || path === SIMULATOR_EXCHANGE_PATH ? 'exchange' : 'advanced';
}

/** FEED_KIND, when set (the supervisor points the ingestors at the simulator's feed of that protocol). */
export function readFeedKind(env: Env = process.env): FeedKind | undefined {
  return read(env, 'FEED_KIND', z.enum(['advanced', 'exchange']).optional());
}

export function readFeedConfig(env: Env = process.env): FeedConfig {
  const url = readFeedUrl(env);
  const explicit = readFeedKind(env);
  const keyName = read(env, 'COINBASE_API_KEY_NAME', z.string().min(1, 'must not be empty').optional());
  const privateKey = read(env, 'COINBASE_API_PRIVATE_KEY', z.string().min(1, 'must not be empty').optional());
  if ((keyName === undefined) !== (privateKey === undefined)) {
    const missing = keyName === undefined ? 'COINBASE_API_KEY_NAME' : 'COINBASE_API_PRIVATE_KEY';
    throw new ConfigError(missing, 'required when the other COINBASE_API_* variable is set');
  }
  const kind = explicit ?? feedKindOf(url);
  const lateness = read(
    env,
    'WATERMARK_LATENESS_MS',
    z.union([z.literal('off'), intMs(0, 10_000)]),
    String(DEFAULT_WATERMARK_LATENESS_MS[kind]),
  );
  return {
    url,
    kind,
    watermarkLatenessMs: lateness === 'off' ? undefined : lateness,
    snapshotIntervalMs: read(env, 'SNAPSHOT_INTERVAL_MS', intMs(0, 3_600_000), '30000'),
    bookStaleMs: read(env, 'FEED_BOOK_STALE_MS', intMs(0, 3_600_000), '60000'),
    auth: keyName && privateKey ? { keyName, privateKey } : undefined,
  };
}

/**
 * BOOK_CHECK_DEPTH's bound: a book check this deep still travels inline in one Kinesis record, far under its 1 MiB
 * (test/stream.bookCheck.test.ts measures it), so it needs no claim-check. (A PRODUCER_MAX_BYTES_PER_S under a deep
 * check's size refuses it: that check is published as unavailable, 'too large to publish'.)
 */
export const MAX_BOOK_CHECK_DEPTH = 1000;

/** Coinbase's public REST bases: BOOK_REST_URL's default for each Coinbase feed (bookRestUrlFor). */
export const COINBASE_REST = {
  advancedTrade: 'https://api.coinbase.com',
  exchange: 'https://api.exchange.coinbase.com',
} as const;

/**
 * The REST base that serves the book of the feed at `feedUrl`: Coinbase's own for its two feeds, otherwise the
 * feed's host and port over http(s) (the local simulator serves both on one port: ws://host:port -> http://host:port).
 */
export function bookRestUrlFor(feedUrl: string): string {
  let url: URL;
  try {
    url = new URL(feedUrl);
  } catch {
    throw new ConfigError('FEED_URL', `cannot derive BOOK_REST_URL from ${JSON.stringify(feedUrl)}`);
  }
  if (url.hostname === new URL(COINBASE_FEEDS.advancedTrade).hostname) return COINBASE_REST.advancedTrade;
  if (url.hostname === new URL(COINBASE_FEEDS.exchange).hostname) return COINBASE_REST.exchange;
  return `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}`;
}

/**
 * The partition key of the book-check lease item in the latest table (src/ingest/bookCheckLease.ts): the one item
 * the ingestor's task role may put (lib/fargate-services.ts, IAM condition dynamodb:LeadingKeys).
 */
export const BOOK_CHECK_LEASE_PK = '_bookcheck';

/** The book-check lease's timing (src/ingest/bookCheckLease.ts): held leaseMs, renewed every renewMs. */
export const BOOK_CHECK_LEASE = { leaseMs: 30_000, renewMs: 10_000 } as const;

/** How often the ingestor reads the worker's book verdicts (BOOK_VERDICT_POLL_MS default; the cost model's reads). */
export const DEFAULT_BOOK_VERDICT_POLL_MS = 5000;

/**
 * The book check (src/ingest/bookCheck.ts): the exchange's REST book of each product put into the stream for the
 * worker to compare with its own, and the worker's verdicts read back (src/storage/bookVerdicts.ts).
 */
export interface BookCheckConfig {
  /** BOOK_CHECK_S: seconds between two checks of one product (jittered); 0 = off. */
  everyS: number;
  /** BOOK_CHECK_DEPTH: levels asked per side. */
  depth: number;
  /** BOOK_CHECK_JITTER: each period is everyS x (1 +- this), so the products' checks spread out. */
  jitter: number;
  /** BOOK_CHECK_TIMEOUT_MS: a REST answer (headers and body) slower than this is a failed check. */
  timeoutMs: number;
  /** BOOK_REST_URL: the REST base (default from FEED_URL, bookRestUrlFor). */
  restUrl: string;
  /** BOOK_VERDICT_POLL_MS: how often the worker's verdicts are read from the latest table; 0 = never. */
  verdictPollMs: number;
}

export function readBookCheckConfig(env: Env = process.env): BookCheckConfig {
  const verdictPollMs = read(
    env,
    'BOOK_VERDICT_POLL_MS',
    intMs(0, 600_000),
    String(DEFAULT_BOOK_VERDICT_POLL_MS),
  );
  if (verdictPollMs > 0 && verdictPollMs < 100) {
    throw new ConfigError('BOOK_VERDICT_POLL_MS', `${verdictPollMs} must be 0 (off) or >= 100`);
  }
  return {
    everyS: read(
      env,
      'BOOK_CHECK_S',
      z.coerce
        .number({ message: 'expected whole seconds' })
        .int('expected whole seconds')
        .min(0, 'must be >= 0 (0 = off)')
        .max(86_400, 'must be <= 86400'),
      '60',
    ),
    depth: read(
      env,
      'BOOK_CHECK_DEPTH',
      z.coerce
        .number({ message: 'expected a whole number of levels' })
        .int('expected a whole number of levels')
        .min(1, 'must be >= 1')
        .max(MAX_BOOK_CHECK_DEPTH, `must be <= ${MAX_BOOK_CHECK_DEPTH}`),
      '50',
    ),
    jitter: read(
      env,
      'BOOK_CHECK_JITTER',
      z.coerce.number({ message: 'expected a fraction' }).min(0, 'must be >= 0').max(0.5, 'must be <= 0.5'),
      '0.2',
    ),
    timeoutMs: read(env, 'BOOK_CHECK_TIMEOUT_MS', intMs(100, 60_000), '2000'),
    restUrl: read(
      env,
      'BOOK_REST_URL',
      z.string().regex(/^https?:\/\/[^/\s]+$/, 'expected http(s)://host[:port] without a path'),
      bookRestUrlFor(readFeedUrl(env)),
    ),
    verdictPollMs,
  };
}

/** Worker tuning: lake object size in ticks of event time, model pointer check period. */
export interface WorkerConfig {
  /** Ticks per Parquet object (one event-time window); TICK_MS x this must divide one hour. */
  lakeObjectTicks: number;
  modelCheckMs: number;
  /** History replayed before the oldest open lake window after a restart (windowed features, label horizons). */
  recoveryLookbackMs: number;
  /** Live-quality metrics are published every this much event time. */
  qualityEveryMs: number;
  /** Live-quality windows: their span of event time and the matured labels a figure needs to be shown. */
  qualityWindowMs: number;
  qualityMinLabels: number;
  /** Feature drift: PSI of a model's inputs over the last hour above this flags the product. */
  driftPsiLimit: number;
  /** FEATURES_STREAM: Kinesis stream that receives every tick's features; undefined = off (the default). */
  featuresStream: string | undefined;
  /**
   * Where a brand-new worker group starts a shard with no checkpoint (WORKER_START): `lookback` = AT_TIMESTAMP
   * now - startLookbackMs (deployed retention is 24 h: replaying all of it would take the worker far behind),
   * `trim_horizon` = the whole retention. The book comes from the first snapshot_ref in reach; ticks before it
   * use the ticker's quote (flagged source_is_ticker). Honoured by the consumer (src/worker/consumer.ts).
   */
  start: 'lookback' | 'trim_horizon';
  /**
   * WORKER_START_LOOKBACK_MS: at least SNAPSHOT_INTERVAL_MS, so a periodic snapshot is in reach at once; the
   * default (7 min) also fills the 300 s feature windows and the 60 s label horizon before "now".
   */
  startLookbackMs: number;
  /**
   * DEDUP_WINDOW_MS: exchange time a product remembers the event ids it applied (src/worker/dedup.ts: repeats
   * within it are dropped, older trades and book changes are stale); LINE_FAILOVER_MS: how far a standby
   * ingestor's line may run ahead of a silent or slow primary before it takes over (src/worker/arbiter.ts).
   */
  arbiter: { windowMs: number; failoverMs: number };
  /**
   * BOOK_CHECK_SKEW_MS: the in-flight tolerance of the book check (src/book/verify.ts): a level that changed within
   * this much exchange time of the REST book's time is not compared at that check.
   */
  bookCheckSkewMs: number;
}

export function readWorkerConfig(env: Env = process.env): WorkerConfig {
  const tickMs = readCoreConfig(env).tickMs;
  const ticks = read(
    env,
    'LAKE_OBJECT_TICKS',
    z.coerce.number().int('expected a whole number of ticks').min(1, 'must be >= 1'),
    String(Math.round(60_000 / tickMs)),
  );
  if (3_600_000 % (ticks * tickMs) !== 0) {
    throw new ConfigError('LAKE_OBJECT_TICKS', `${ticks} ticks of ${tickMs} ms must divide one hour evenly`);
  }
  return {
    lakeObjectTicks: ticks,
    modelCheckMs: read(env, 'MODEL_CHECK_MS', intMs(0, 600_000), '5000'),
    recoveryLookbackMs: read(env, 'RECOVERY_LOOKBACK_MS', intMs(0, 86_400_000), '420000'),
    qualityEveryMs: read(env, 'QUALITY_EVERY_MS', intMs(100, 3_600_000), '10000'),
    qualityWindowMs: read(env, 'QUALITY_WINDOW_MS', intMs(60_000, 86_400_000), '1800000'),
    qualityMinLabels: read(
      env,
      'QUALITY_MIN_LABELS',
      z.coerce.number().int('expected a whole number').min(1),
      '200',
    ),
    driftPsiLimit: read(
      env,
      'DRIFT_PSI_LIMIT',
      z.coerce.number({ message: 'expected a number' }).gt(0, 'must be > 0'),
      '0.25',
    ),
    featuresStream: readFeaturesStream(env),
    start: read(
      env,
      'WORKER_START',
      z.enum(['lookback', 'trim_horizon'], { message: 'expected lookback or trim_horizon' }),
      'lookback',
    ),
    startLookbackMs: read(env, 'WORKER_START_LOOKBACK_MS', intMs(0, 7 * 86_400_000), '420000'),
    arbiter: {
      windowMs: read(env, 'DEDUP_WINDOW_MS', intMs(1000, 3_600_000), '120000'),
      failoverMs: read(env, 'LINE_FAILOVER_MS', intMs(1, 600_000), '2000'),
    },
    bookCheckSkewMs: read(env, 'BOOK_CHECK_SKEW_MS', intMs(0, 60_000), '1000'),
  };
}

/** FEATURES_STREAM: the optional features stream's name (src/resources.ts FEATURES_STREAM); undefined = off. */
export function readFeaturesStream(env: Env = process.env): string | undefined {
  return read(
    env,
    'FEATURES_STREAM',
    z
      .string()
      .regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'expected a Kinesis stream name (1-128 letters, digits, _ . -)')
      .optional(),
  );
}

/**
 * TRAIN_L2 when unset, per target (the shipped baselines use the same). vol_spike_60s rows are heavily
 * autocorrelated (overlapping 60 s windows), so few are independent and the weak penalty of the quote-change
 * model overfits (test Brier above the base rate's at 1e-3, measured).
 */
export const DEFAULT_TRAIN_L2: Readonly<Record<Target, number>> = {
  quote_change_500ms: 1e-3,
  vol_spike_60s: 0.3,
};

/** The training job (models/train/main.ts), run by the training state machine or by hand. */
export interface TrainingConfig {
  target: Target;
  /**
   * The feature set the model takes (TRAIN_SET, default l2): the registry's slot it is a candidate for is
   * (target, set) (src/model/types.ts slotKey); its version lives with the target's others, the set in its
   * feature_spec.json.
   */
  set: FeatureSetName;
  /** The version the run trains, evaluates and may promote (the state machine's execution name). */
  candidateVersion: string;
  /** Oldest share of the labelled rows used for training; the newer rest is held out. */
  trainFraction: number;
  /** L2 penalty of the logistic regression; default DEFAULT_TRAIN_L2 of the target. */
  l2: number;
  /** Fewer joined rows than this is an error, not a model. */
  minRows: number;
  /** The learner on the set's inputs: the gradient-boosted trees (default) or the logistic regression. */
  algorithm: 'logistic' | 'gbdt' | 'auto';
  /** Keep rows the lake's corrections mark suspect (a book later found wrong); default: leave them out. */
  keepSuspect: boolean;
}

export function readTrainingConfig(env: Env = process.env): TrainingConfig {
  const target = read(env, 'TARGET', z.enum(TARGETS as [Target, ...Target[]]), 'quote_change_500ms');
  return {
    target,
    set: read(env, 'TRAIN_SET', z.enum(MODEL_SETS as [FeatureSetName, ...FeatureSetName[]]), 'l2'),
    candidateVersion: read(
      env,
      'CANDIDATE_VERSION',
      z
        .string({ message: 'required' })
        .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'letters, digits, ".", "_", "-" (at most 128)'),
    ),
    trainFraction: read(
      env,
      'TRAIN_FRACTION',
      z.coerce.number({ message: 'expected a number' }).gt(0, 'must be > 0').lt(1, 'must be < 1'),
      '0.7',
    ),
    l2: read(
      env,
      'TRAIN_L2',
      z.coerce.number({ message: 'expected a number' }).min(0, 'must be >= 0'),
      String(DEFAULT_TRAIN_L2[target]),
    ),
    minRows: read(env, 'TRAIN_MIN_ROWS', z.coerce.number().int('expected a whole number').min(2), '100'),
    algorithm: read(env, 'TRAIN_ALGORITHM', z.enum(['logistic', 'gbdt', 'auto']), 'auto'),
    keepSuspect: read(env, 'TRAIN_KEEP_SUSPECT', z.enum(['true', 'false']), 'false') === 'true',
  };
}

/** The promotion rule's settings (models/eval/gate.ts), recorded with every decision. */
export interface PromotionConfig {
  /** The candidate's gain in the main metric must have its lower bound above this. */
  margin: number;
  /** Most expected calibration error a promoted candidate may have. */
  maxCalibrationError: number;
  /** Least independent label horizons (test time span / horizon) per fold. */
  minHorizons: number;
  /** Least positives per fold. */
  minPositives: number;
  /** Bootstrap block length, seconds (at least the label horizon is used). */
  blockS: number;
  resamples: number;
  /**
   * Consecutive time folds the held-out window is cut into (models/train/evaluate.ts): each must hold both
   * classes, `minPositives` and `minHorizons`, so a window whose spikes all fall in one stretch is not enough.
   */
  folds: number;
}

export function readPromotionConfig(env: Env = process.env): PromotionConfig {
  const number = z.coerce.number({ message: 'expected a number' });
  const count = z.coerce.number().int('expected a whole number');
  return {
    margin: read(env, 'PROMOTE_MARGIN', number.min(0, 'must be >= 0'), '0'),
    maxCalibrationError: read(env, 'PROMOTE_MAX_ECE', number.gt(0).max(1), '0.05'),
    minHorizons: read(env, 'PROMOTE_MIN_HORIZONS', count.min(1), '30'),
    minPositives: read(env, 'PROMOTE_MIN_POSITIVES', count.min(1), '20'),
    blockS: read(env, 'PROMOTE_BLOCK_S', number.gt(0), '60'),
    resamples: read(env, 'PROMOTE_RESAMPLES', count.min(100).max(100_000), '1000'),
    folds: read(env, 'PROMOTE_FOLDS', count.min(1).max(50), '5'),
  };
}

/** Raw frame archive of the ingestor (src/ingest/archive.ts): off, NDJSON file(s) locally, or S3 objects. */
export interface ArchiveConfig {
  mode: 'off' | 'file' | 's3';
  /** file mode: the NDJSON file (".gz" suffix = gzip); default `<QW_DATA_DIR>/archive/<session>.ndjson.gz`. */
  path: string | undefined;
  /** s3 mode: an object is written once it holds this many bytes (uncompressed) or frames. */
  rollBytes: number;
  rollFrames: number;
  /** s3 mode: and at the latest this long after its first frame. */
  rollMs: number;
}

export function readArchiveConfig(env: Env = process.env): ArchiveConfig {
  const count = (min: number) =>
    z.coerce.number().int('expected a whole number').min(min, `must be >= ${min}`);
  return {
    mode: read(env, 'ARCHIVE', z.enum(['off', 'file', 's3']), 'off'),
    path: read(env, 'ARCHIVE_PATH', z.string().min(1, 'must not be empty').optional()),
    rollBytes: read(env, 'ARCHIVE_ROLL_BYTES', count(1024), String(16 * 1024 * 1024)),
    rollFrames: read(env, 'ARCHIVE_ROLL_FRAMES', count(1), '100000'),
    rollMs: read(env, 'ARCHIVE_ROLL_MS', intMs(100, 3_600_000), '300000'),
  };
}

/** Feature pipeline settings (src/features/): the same in the worker, replays and training. */
export interface FeatureConfig {
  /**
   * No event of a product for longer than this is a data gap: ticks in it are flagged (data_gap_now) and
   * label nothing, and windows and forward-volatility labels break there instead of bridging it.
   */
  gapLimitMs: number;
}

export function readFeatureConfig(env: Env = process.env): FeatureConfig {
  return { gapLimitMs: read(env, 'GAP_LIMIT_MS', intMs(100, 3_600_000), '5000') };
}

/** How the worker reads the stream (src/worker/consumer.ts). */
export interface ConsumerConfig {
  /** polling GetRecords (everywhere, the local default) or enhanced fan-out SubscribeToShard (deployed latency). */
  mode: 'polling' | 'fanout';
  /** The enhanced fan-out consumer registered on the stream, shared by every worker. */
  consumerName: string;
  /**
   * CONSUMER_ARN: the consumer registered ahead (deployed, a CloudFormation resource); the worker then neither
   * registers nor needs the right to. Unset: the worker registers CONSUMER_NAME itself (or finds it registered).
   */
  consumerArn: string | undefined;
  /** This worker's lease owner id; unique per live worker (default: host name and process id). */
  workerId: string;
  /** A shard lease not renewed for this long passes to another worker. */
  leaseMs: number;
  /**
   * Polling mode: pause after an empty GetRecords. 200 ms keeps within Kinesis' 5 reads/s per shard; the local
   * emulators have no such limit, so `npm start` uses less (latency, not correctness, depends on it).
   */
  pollIdleMs: number;
  /**
   * Least time between two checkpoint writes of a shard: each is a DynamoDB write unit, and a batch every 200 ms
   * per shard would make the checkpoint table cost as much as the latest items. A crash re-reads up to this much
   * of the stream, which the dedup stage drops (its window is minutes). 0: after every batch.
   */
  checkpointMs: number;
}

/** The deployed checkpoint cadence (CHECKPOINT_MS default; the cost model's checkpoint writes follow it). */
export const DEFAULT_CHECKPOINT_MS = 1000;

export function readConsumerConfig(env: Env = process.env): ConsumerConfig {
  return {
    mode: read(
      env,
      'CONSUMER_MODE',
      z.enum(['polling', 'fanout'], { message: 'expected polling or fanout' }),
      'polling',
    ),
    consumerName: read(
      env,
      'CONSUMER_NAME',
      z.string().regex(/^[a-zA-Z0-9_.-]{1,128}$/, 'expected 1-128 letters, digits, _ . -'),
      'quotewatch-worker',
    ),
    consumerArn: read(
      env,
      'CONSUMER_ARN',
      z
        .string()
        .regex(
          /^arn:aws[a-z-]*:kinesis:[a-z0-9-]+:\d{12}:stream\/[^/]+\/consumer\/[^/:]+:\d+$/,
          'expected a Kinesis stream consumer ARN',
        )
        .optional(),
    ),
    workerId: read(env, 'WORKER_ID', nonEmpty, `${hostname()}-${process.pid}`),
    leaseMs: read(env, 'LEASE_MS', intMs(1000, 600_000), '10000'),
    pollIdleMs: read(env, 'POLL_IDLE_MS', intMs(1, 10_000), '200'),
    checkpointMs: read(env, 'CHECKPOINT_MS', intMs(0, 60_000), String(DEFAULT_CHECKPOINT_MS)),
  };
}

/**
 * How often the latest item is written (src/storage/latest.ts LatestWriter), in event time: every LATEST_WRITE_MS
 * (the dashboard polls every 300 ms: writing more often is paid for and never seen). With the history rows
 * (readHistoryConfig) this cadence is most of the deployed DynamoDB cost (`quotewatch cost`).
 */
export interface LatestWriteConfig {
  latestWriteMs: number;
}

export function readLatestWriteConfig(env: Env = process.env): LatestWriteConfig {
  return { latestWriteMs: read(env, 'LATEST_WRITE_MS', intMs(0, 60_000), '300') };
}

/** The container liveness file (src/health/liveness.ts) of a component, and how the health check reads it. */
export interface LivenessConfig {
  /** LIVENESS_FILE, default `<tmpdir>/quotewatch-<component>.alive`. */
  path: string;
  /** LIVENESS_EVERY_MS: how often the file is written. */
  everyMs: number;
  /** LIVENESS_STUCK_MS: a loop that has not progressed this long is stuck. */
  stuckAfterMs: number;
  /** LIVENESS_MAX_AGE_MS: an older file means a blocked or dead process (default 3 writes). */
  maxAgeMs: number;
}

export const LIVENESS_COMPONENTS = ['ingestor', 'worker'] as const;

export function readLivenessConfig(
  component: (typeof LIVENESS_COMPONENTS)[number],
  env: Env = process.env,
): LivenessConfig {
  const everyMs = read(env, 'LIVENESS_EVERY_MS', intMs(100, 60_000), '5000');
  return {
    path: read(env, 'LIVENESS_FILE', nonEmpty, join(tmpdir(), `quotewatch-${component}.alive`)),
    everyMs,
    stuckAfterMs: read(env, 'LIVENESS_STUCK_MS', intMs(1000, 3_600_000), '60000'),
    maxAgeMs: read(env, 'LIVENESS_MAX_AGE_MS', intMs(everyMs, 3_600_000), String(3 * everyMs)),
  };
}

// The deployment: CDK context (`cdk synth -c key=value`, cdk.json "context") read by the stack (bin/app.ts,
// lib/quotewatch-stack.ts) and by `quotewatch cost` (src/cost/), so the price is the price of what deploys.

/** Fargate task sizes: CPU units -> the memory (MiB) Fargate accepts with them. */
export const FARGATE_SIZES: Readonly<Record<number, readonly number[]>> = {
  256: [512, 1024, 2048],
  512: [1024, 2048, 3072, 4096],
  1024: Array.from({ length: 7 }, (_, i) => 2048 + i * 1024),
  2048: Array.from({ length: 13 }, (_, i) => 4096 + i * 1024),
  4096: Array.from({ length: 23 }, (_, i) => 8192 + i * 1024),
};

/**
 * Measured load of one followed product, as a share of one vCPU, at the deployed tuning (polling every 200 ms,
 * producer linger 10 ms, latest item every 300 ms): the real simulator -> ingestor -> Kinesis -> worker ->
 * DynamoDB/S3 path on the local emulators, CPU time of each process over a minute (bench/cost.ts writes them as
 * cost.ingestor_vcpu_per_product and cost.worker_vcpu_per_product). The default task sizes follow from them.
 */
export const MEASURED_VCPU_PER_PRODUCT = { ingestor: 0.043, worker: 0.053 } as const;
/**
 * Measured training cost on one vCPU (bench/cost.ts writes cost.train_cpu_us_per_row and
 * cost.train_heap_bytes_per_row): Parquet decode and the logistic regression's Newton iterations to
 * convergence, per row (66-76 µs on this machine's Xeon), and the heap a row holds while training (decoded row,
 * feature array, standardized copy: ~4.3 KB). The trainer's task timeout follows from them
 * (lib/training-pipeline.ts trainerTaskTimeout).
 */
export const MEASURED_TRAINING = { cpuUsPerRow: 76, bytesPerRow: 4400 } as const;

/** Default task sizes keep the measured load at or below this share of the task's vCPU (bursts, recovery). */
export const TARGET_CPU_UTILIZATION = 0.5;
/** The worker's memory floor: two onnxruntime sessions, full-depth books and the open lake windows. */
export const WORKER_MIN_MEMORY_MIB = 1024;

export interface TaskSize {
  cpu: number;
  memoryMiB: number;
}

/** The smallest Fargate size whose vCPU keeps `vcpu` of load at TARGET_CPU_UTILIZATION, with its least memory. */
export function taskSizeFor(vcpu: number, minMemoryMiB = 512): TaskSize {
  for (const [cpuText, memories] of Object.entries(FARGATE_SIZES)) {
    const cpu = Number(cpuText);
    if (vcpu > (cpu / 1024) * TARGET_CPU_UTILIZATION) continue;
    const memoryMiB = memories.find((m) => m >= minMemoryMiB);
    if (memoryMiB !== undefined) return { cpu, memoryMiB };
  }
  return { cpu: 4096, memoryMiB: Math.max(8192, Math.ceil(minMemoryMiB / 1024) * 1024) };
}

/** Who may call the API's routes (src/api/routes.ts `access`). */
export interface ApiAccessSettings {
  /** The authorizer of the protected routes: IAM (SigV4-signed requests) or a JWT authorizer for an issuer. */
  auth: 'iam' | 'jwt';
  jwtIssuer: string | undefined;
  jwtAudience: string[];
  /** The read routes (`access: 'read'`) answer without authorization; false puts them behind `auth` too. */
  publicReads: boolean;
  /** Reserved concurrency of the routes that ask for it (POST /predict); false = none (low account limits). */
  reservedConcurrency: boolean;
  /** Origins whose browsers may call the API (CORS); empty: same origin only (the dashboard is). */
  corsOrigins: string[];
}

/**
 * DynamoDB capacity of a table: its steady write and read rates (units per second, from the cadences below) and
 * the provisioned capacity that carries them at PROVISIONED_UTILIZATION (auto scaling's floor and target).
 */
export interface TableCapacity {
  writeUnitsPerS: number;
  readUnitsPerS: number;
  writeUnits: number;
  readUnits: number;
  /**
   * Auto scaling above the computed floor: for the latest table, whose reads follow the API's viewers. The
   * checkpoint table's rates are set by the shard count and the consumer mode alone: fixed capacity, no
   * scaling policies (each keeps two CloudWatch alarms, $0.20 a month).
   */
  autoScaling: boolean;
}

/** Auto scaling target and the provisioned floor: the steady rate is this share of the provisioned capacity. */
export const PROVISIONED_UTILIZATION = 0.8;
/**
 * The steady request rates the deployment puts on DynamoDB, per unit:
 * - latest table: a latest item (compact, < 1 KB: one write unit; test/storage.emulators.test.ts checks the size)
 *   per product every latestWriteMs, a history row every historyWriteMs and one labels item per
 *   LABEL_BUCKET_ROWS rows (src/worker/sinks/history.ts), the status item (feed health, live quality) at most
 *   every 5 s (src/storage/latest.ts STATUS_WRITE_MS);
 * - checkpoint table: a checkpoint per shard every DEFAULT_CHECKPOINT_MS at most (a batch comes more often:
 *   polling GetRecords up to 5 times a second per shard, fan-out a SubscribeToShard event about every 100 ms), the lease
 *   heartbeat and renewals every 2 s (src/worker/consumer.ts), the recovery state (2 units) about twice a minute.
 */
export const DYNAMO_RATES = {
  latestItemWriteUnits: 1,
  /** A history row (one unit) and its share of a labels item (one unit per LABEL_BUCKET_ROWS rows). */
  historyWriteUnitsPerRow: 1 + 1 / 10,
  statusWritesPerSPerProduct: 1 / 5,
  checkpointsPerSPerShard: {
    polling: Math.min(5, 1000 / DEFAULT_CHECKPOINT_MS),
    fanout: Math.min(10, 1000 / DEFAULT_CHECKPOINT_MS),
  },
  leaseWritesPerSPerTask: 0.5,
  recoveryWriteUnitsPerSPerShard: (2 * 2) / 60,
  /** The worker's lease table scan every 2 s (one read unit: a few small items). */
  checkpointReadUnitsPerSPerWorker: 0.5,
  /**
   * Reads on the latest table come from the API only (priced per request by `quotewatch cost`): the floor is
   * one unit and auto scaling follows viewers (a first dashboard viewer, ~7 units/s at two products, runs on
   * burst capacity for about a minute, then may be throttled for a minute or two until the capacity is raised).
   */
  latestReadUnitsPerS: 0,
  /**
   * The book check: every ingestor reads each product's verdict item every DEFAULT_BOOK_VERDICT_POLL_MS (BatchGet,
   * eventually consistent: half a unit per key, found or not) and tries the lease item every
   * BOOK_CHECK_LEASE.renewMs (one write unit, a failed condition included). The worker's verdicts are written only
   * on a mismatch (none in a healthy run), and the checks themselves are a few KB a minute per product in the stream.
   */
  verdictReadUnitsPerSPerProductPerIngestor: (0.5 * 1000) / DEFAULT_BOOK_VERDICT_POLL_MS,
  bookCheckLeaseWritesPerSPerIngestor: 1000 / BOOK_CHECK_LEASE.renewMs,
} as const;

/**
 * Provisioned units for steady rates: at PROVISIONED_UTILIZATION when auto scaling follows the load, at the
 * rates themselves when they are upper bounds (the checkpoint table: CHECKPOINT_MS bounds its checkpoints per
 * shard; DynamoDB's burst capacity absorbs the seconds above).
 */
function capacity(writeUnitsPerS: number, readUnitsPerS: number, autoScaling: boolean): TableCapacity {
  const utilization = autoScaling ? PROVISIONED_UTILIZATION : 1;
  return {
    autoScaling,
    writeUnitsPerS,
    readUnitsPerS,
    writeUnits: Math.max(1, Math.ceil(writeUnitsPerS / utilization)),
    readUnits: Math.max(1, Math.ceil(readUnitsPerS / utilization)),
  };
}

/** The latest and checkpoint tables' capacity for a deployment (the registry table stays on demand). */
export function dynamoCapacity(
  d: Pick<
    DeploymentSettings,
    'products' | 'shards' | 'workers' | 'ingestors' | 'consumer' | 'latestWriteMs' | 'historyWriteMs'
  >,
  tickMs: number = DEFAULT_CORE.tickMs,
): { latest: TableCapacity; checkpoints: TableCapacity } {
  const r = DYNAMO_RATES;
  const n = d.products.length;
  const perS = (ms: number) => 1000 / Math.max(ms, tickMs);
  const latestWrites =
    n * perS(d.latestWriteMs) * r.latestItemWriteUnits +
    (d.historyWriteMs > 0 ? n * perS(d.historyWriteMs) * r.historyWriteUnitsPerRow : 0) +
    n * r.statusWritesPerSPerProduct +
    d.ingestors * r.bookCheckLeaseWritesPerSPerIngestor;
  const latestReads = r.latestReadUnitsPerS + d.ingestors * n * r.verdictReadUnitsPerSPerProductPerIngestor;
  const checkpointWrites =
    d.shards * r.checkpointsPerSPerShard[d.consumer] +
    (d.workers + d.shards) * r.leaseWritesPerSPerTask +
    d.shards * r.recoveryWriteUnitsPerSPerShard;
  return {
    latest: capacity(latestWrites, latestReads, true),
    checkpoints: capacity(checkpointWrites, d.workers * r.checkpointReadUnitsPerSPerWorker, false),
  };
}

/** Every deployment choice, resolved: defaults applied and derived sizes computed. */
export interface DeploymentSettings {
  products: string[];
  /** Market stream shards (default one per PRODUCTS_PER_SHARD products). */
  shards: number;
  consumer: 'polling' | 'fanout';
  /** Worker tasks; they split the shards by lease, so at most one per shard is useful. */
  workers: number;
  /**
   * Ingestor tasks on the feed, each on its own connection (`-c ingestors=2`: a hot-standby pair). Event ids come
   * from the exchange, so the worker keeps one copy and covers one connection's drops with the other's
   * (src/worker/arbiter.ts); the second doubles the ingestor's Fargate task and PUTs (`quotewatch cost`).
   */
  ingestors: number;
  ingestorTask: TaskSize;
  workerTask: TaskSize;
  /**
   * Where the worker tasks run: Fargate Spot (default) or on demand. The worker keeps no state a restart loses
   * (checkpoints, recovery state, the stream's 24 h), so a Spot interruption (two minutes' notice, SIGTERM) only
   * pauses predictions until the replacement has caught up; the ingestor stays on demand, as its connection is
   * the data. Spot runs ~68% below the on-demand price (`quotewatch cost`, src/cost/prices.ts).
   */
  workerCapacity: 'spot' | 'on-demand';
  latestWriteMs: number;
  historyWriteMs: number;
  dynamoCapacity: 'provisioned' | 'on-demand';
  /** The capacity provisioned (or, on demand, the rates paid for) of the latest and checkpoint tables. */
  tables: { latest: TableCapacity; checkpoints: TableCapacity };
  streamRetentionHours: number;
  logRetentionDays: number;
  /** Claim-checked full-depth book snapshots (lake `snapshots/`): only needed while the stream holds their refs. */
  snapshotRetentionDays: number;
  archive: 'off' | 's3';
  /** The raw frame archive (lake `archive/`). */
  archiveRetentionDays: number;
  /** The Parquet zones (and everything else in the lake). */
  lakeRetentionDays: number;
  /**
   * Event time per lake object (the worker's LAKE_OBJECT_TICKS): S3 bills per PUT and per lifecycle transition,
   * and Standard-IA has a 128 KB minimum, so few larger objects cost less than many small ones.
   */
  lakeObjectMinutes: number;
  containerInsights: boolean;
  api: ApiAccessSettings;
  /** Base image of both container images (Docker build arg BASE_IMAGE). */
  baseImage: string;
  /** A production synth: the base image must be pinned by digest. */
  prod: boolean;
  /** Secrets Manager secret holding the CDP API key ({"name": ..., "privateKey": ...}); unset = no key. */
  coinbaseKeySecret: string | undefined;
  featuresStream: boolean;
  /** The dashboard's push: the WebSocket API, its connections table and the worker's publisher. */
  push: PushSettings;
  /**
   * When the training state machine runs on its own: an EventBridge Scheduler expression (`rate(1 day)`,
   * `cron(0 3 * * ? *)`, UTC) starting one execution per target; undefined (the default, or `off`) = no
   * schedule, runs only on demand.
   */
  trainingSchedule: string | undefined;
}

/** The WebSocket API's choices (`-c push`, `-c maxConnections`, `-c maxConnectionsPerIp`). */
export interface PushSettings {
  enabled: boolean;
  maxConnections: number;
  maxConnectionsPerIp: number;
}

/** A shard takes 1,000 records/s and 1 MiB/s; a product's feed uses a few percent of that (`quotewatch cost`). */
export const PRODUCTS_PER_SHARD = 4;
export const DEFAULT_BASE_IMAGE = 'node:22-slim';
/** `name@sha256:<64 hex>`: an image pinned by its digest. */
export const PINNED_IMAGE_PATTERN = /^[a-z0-9][a-z0-9._/:-]*@sha256:[a-f0-9]{64}$/;
/** CloudWatch Logs accepts only these retention periods (days). */
export const LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** The context keys the deployment reads; any other plain key is a typo and fails synth. */
export const DEPLOYMENT_CONTEXT_KEYS = [
  'products',
  'shards',
  'consumer',
  'workers',
  'ingestors',
  'ingestorCpu',
  'ingestorMemory',
  'workerCpu',
  'workerMemory',
  'workerCapacity',
  'latestWriteMs',
  'historyWriteMs',
  'dynamoCapacity',
  'streamRetentionHours',
  'logRetentionDays',
  'snapshotRetentionDays',
  'archive',
  'archiveRetentionDays',
  'lakeRetentionDays',
  'lakeObjectMinutes',
  'containerInsights',
  'apiAuth',
  'jwtIssuer',
  'jwtAudience',
  'publicReads',
  'reservedConcurrency',
  'corsOrigins',
  'baseImage',
  'prod',
  'coinbaseKeySecret',
  'featuresStream',
  'push',
  'maxConnections',
  'maxConnectionsPerIp',
  'trainingSchedule',
] as const;

const RATE_EXPRESSION = /^rate\((\d+) (minutes?|hours?|days?)\)$/;
const CRON_EXPRESSION = /^cron\(([^()]*)\)$/;
const CRON_FIELDS = ['minutes', 'hours', 'day-of-month', 'month', 'day-of-week', 'year'];

/**
 * What is wrong with a recurring EventBridge Scheduler expression, or undefined when it is one: `rate(<n>
 * <unit>)` (the unit singular for 1, plural otherwise, as AWS requires) or `cron(<6 fields>)` with exactly one of
 * day-of-month and day-of-week `?`. One-time `at(...)` expressions are not a schedule.
 */
export function scheduleExpressionProblem(expression: string): string | undefined {
  const rate = RATE_EXPRESSION.exec(expression);
  if (rate) {
    const n = Number(rate[1]);
    const unit = rate[2]!;
    if (n < 1) return 'a rate needs a value of at least 1';
    const singular = unit.replace(/s$/, '');
    if ((n === 1) !== (unit === singular)) {
      return `write rate(1 ${singular}) or rate(${n === 1 ? 2 : n} ${singular}s): singular for 1, plural otherwise`;
    }
    return undefined;
  }
  const cron = CRON_EXPRESSION.exec(expression);
  if (cron) {
    const fields = cron[1]!.trim().split(/\s+/).filter(Boolean);
    if (fields.length !== CRON_FIELDS.length) {
      return `cron(...) takes ${CRON_FIELDS.length} fields (${CRON_FIELDS.join(' ')}), got ${fields.length}`;
    }
    const bad = fields.findIndex((f) => !/^[0-9A-Za-z*?,/#-]+$/.test(f));
    if (bad >= 0)
      return `cron(...): the ${CRON_FIELDS[bad]} field ${JSON.stringify(fields[bad])} is not a cron field`;
    if ((fields[2] === '?') === (fields[4] === '?')) {
      return 'cron(...): exactly one of day-of-month and day-of-week must be ? (e.g. cron(0 3 * * ? *))';
    }
    return undefined;
  }
  return 'expected rate(<n> <minutes|hours|days>), cron(<minutes> <hours> <day-of-month> <month> <day-of-week> <year>) or off';
}

/** `-c trainingSchedule`: a recurring schedule expression, or `off` (= none, as when absent). */
const trainingScheduleSetting = z
  .string()
  .superRefine((expression, ctx) => {
    const problem = expression === 'off' ? undefined : scheduleExpressionProblem(expression);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  })
  .transform((expression) => (expression === 'off' ? undefined : expression))
  .optional();

/**
 * Reads the deployment from CDK context values (`-c key=value` arrives as a string, cdk.json may hold JSON
 * values). A bad value is a ConfigError naming the key as `-c <key>`, so synth fails with it.
 */
export function readDeploymentContext(context: Readonly<Record<string, unknown>>): DeploymentSettings {
  const known = new Set<string>(DEPLOYMENT_CONTEXT_KEYS);
  for (const key of Object.keys(context)) {
    // CDK's own keys contain ':' or start with '@'; a plain unknown key is a typo that would be ignored.
    if (/^[a-zA-Z][a-zA-Z0-9]*$/.test(key) && !known.has(key)) {
      throw new ConfigError(
        `-c ${key}`,
        `unknown context key (known: ${DEPLOYMENT_CONTEXT_KEYS.join(', ')})`,
      );
    }
  }
  const env: Env = {};
  for (const key of DEPLOYMENT_CONTEXT_KEYS) {
    const v = context[key];
    if (v === undefined || v === null) continue;
    env[`-c ${key}`] = Array.isArray(v) ? v.join(',') : String(v);
  }
  const get = <T>(key: (typeof DEPLOYMENT_CONTEXT_KEYS)[number], schema: z.ZodType<T>, fallback?: string) =>
    read(env, `-c ${key}`, schema, fallback);
  const whole = (min: number, max: number) =>
    z.coerce
      .number({ message: 'expected a whole number' })
      .int('expected a whole number')
      .min(min, `must be >= ${min}`)
      .max(max, `must be <= ${max}`);
  const flag = z
    .enum(['true', 'false'], { message: 'expected true or false' })
    .transform((v) => v === 'true');

  const products = get('products', symbols, DEFAULT_CORE.symbols.join(','));
  const shards = get('shards', whole(1, 500), String(Math.ceil(products.length / PRODUCTS_PER_SHARD)));
  const workers = get('workers', whole(1, shards), String(shards));
  const streamRetentionHours = get('streamRetentionHours', whole(24, 8760), '24');

  const task = (
    cpuKey: 'ingestorCpu' | 'workerCpu',
    memoryKey: 'ingestorMemory' | 'workerMemory',
    measured: TaskSize,
  ): TaskSize => {
    const cpu = get(
      cpuKey,
      z.coerce
        .number()
        .refine((c) => c in FARGATE_SIZES, `expected one of ${Object.keys(FARGATE_SIZES).join(', ')}`),
      String(measured.cpu),
    );
    const memories = FARGATE_SIZES[cpu]!;
    const fallback = cpu === measured.cpu ? measured.memoryMiB : Math.max(memories[0]!, measured.memoryMiB);
    const memoryMiB = get(
      memoryKey,
      z.coerce
        .number()
        .refine((m) => memories.includes(m), `with ${cpuKey}=${cpu} expected one of ${memories.join(', ')}`),
      String(memories.includes(fallback) ? fallback : memories[memories.length - 1]),
    );
    return { cpu, memoryMiB };
  };
  const ingestorTask = task(
    'ingestorCpu',
    'ingestorMemory',
    taskSizeFor(products.length * MEASURED_VCPU_PER_PRODUCT.ingestor),
  );
  const workerTask = task(
    'workerCpu',
    'workerMemory',
    taskSizeFor(
      Math.ceil(products.length / workers) * MEASURED_VCPU_PER_PRODUCT.worker,
      WORKER_MIN_MEMORY_MIB,
    ),
  );

  const apiAuth = get('apiAuth', z.enum(['iam', 'jwt'], { message: 'expected iam or jwt' }), 'iam');
  const jwtIssuer = get(
    'jwtIssuer',
    z
      .string()
      .regex(/^https:\/\/\S+$/, 'expected the issuer URL (https://...)')
      .optional(),
  );
  const jwtAudience = get(
    'jwtAudience',
    z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((a) => a.trim())
          .filter(Boolean),
      )
      .optional(),
  );
  if (apiAuth === 'jwt' && (!jwtIssuer || !jwtAudience?.length)) {
    throw new ConfigError(
      jwtIssuer ? '-c jwtAudience' : '-c jwtIssuer',
      'required with -c apiAuth=jwt (the JWT authorizer checks iss and aud)',
    );
  }

  // A snapshot must outlive every stream record that refers to it, plus a worker's recovery look-back.
  const minSnapshotDays = Math.ceil(streamRetentionHours / 24) + 1;
  const snapshotRetentionDays = get('snapshotRetentionDays', whole(1, 3650), String(minSnapshotDays));
  if (snapshotRetentionDays < minSnapshotDays) {
    throw new ConfigError(
      '-c snapshotRetentionDays',
      `${snapshotRetentionDays} is shorter than the stream retention (${streamRetentionHours} h) + 1 day: ` +
        `the stream would hold refs to deleted snapshots (use >= ${minSnapshotDays})`,
    );
  }
  const baseImage = get(
    'baseImage',
    z.string().regex(/^[a-z0-9][a-z0-9._/:@-]*$/, 'expected an image reference like node:22-slim'),
    DEFAULT_BASE_IMAGE,
  );
  const prod = get('prod', flag, 'false');
  if (prod && !PINNED_IMAGE_PATTERN.test(baseImage)) {
    throw new ConfigError(
      '-c baseImage',
      `a production synth (-c prod=true) needs the base image pinned by digest (name@sha256:<64 hex>), got ` +
        `"${baseImage}" (README "Deploying": docker buildx imagetools inspect ${baseImage})`,
    );
  }

  const consumer = get(
    'consumer',
    z.enum(['polling', 'fanout'], { message: 'expected polling or fanout' }),
    'polling',
  );
  const latestWriteMs = get('latestWriteMs', intMs(0, 60_000), '300');
  const historyWriteMs = get('historyWriteMs', intMs(0, 3_600_000), '1000');
  const ingestors = get('ingestors', whole(1, 2), '1');
  return {
    products,
    shards,
    consumer,
    workers,
    ingestors,
    ingestorTask,
    workerTask,
    workerCapacity: get(
      'workerCapacity',
      z.enum(['spot', 'on-demand'], { message: 'expected spot or on-demand' }),
      'spot',
    ),
    latestWriteMs,
    historyWriteMs,
    tables: dynamoCapacity({ products, shards, workers, ingestors, consumer, latestWriteMs, historyWriteMs }),
    dynamoCapacity: get(
      'dynamoCapacity',
      z.enum(['provisioned', 'on-demand'], { message: 'expected provisioned or on-demand' }),
      'provisioned',
    ),
    streamRetentionHours,
    logRetentionDays: get(
      'logRetentionDays',
      z.coerce.number().refine((d) => (LOG_RETENTION_DAYS as readonly number[]).includes(d), {
        message: `expected one of ${LOG_RETENTION_DAYS.join(', ')}`,
      }),
      '30',
    ),
    snapshotRetentionDays,
    archive: get('archive', z.enum(['off', 's3'], { message: 'expected off or s3' }), 's3'),
    archiveRetentionDays: get('archiveRetentionDays', whole(1, 36_500), '30'),
    lakeRetentionDays: get('lakeRetentionDays', whole(31, 36_500), '365'),
    lakeObjectMinutes: get(
      'lakeObjectMinutes',
      z.coerce.number().refine((m) => [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60].includes(m), {
        message: 'expected a whole number of minutes that divides the hour',
      }),
      '5',
    ),
    containerInsights: get('containerInsights', flag, 'false'),
    api: {
      auth: apiAuth,
      jwtIssuer,
      jwtAudience: jwtAudience ?? [],
      publicReads: get('publicReads', flag, 'true'),
      reservedConcurrency: get('reservedConcurrency', flag, 'true'),
      corsOrigins: get('corsOrigins', corsOrigins),
    },
    baseImage,
    prod,
    coinbaseKeySecret: get(
      'coinbaseKeySecret',
      z
        .string()
        .regex(/^[A-Za-z0-9/_+=.@:-]{1,512}$/, 'expected a Secrets Manager secret name or ARN')
        .optional(),
    ),
    featuresStream: get('featuresStream', flag, 'false'),
    push: {
      enabled: get('push', flag, 'true'),
      maxConnections: get('maxConnections', whole(1, 1_000_000), '1000'),
      maxConnectionsPerIp: get('maxConnectionsPerIp', whole(1, 100_000), '20'),
    },
    trainingSchedule: get('trainingSchedule', trainingScheduleSetting),
  };
}

// Over 400 lines on purpose: the one module that reads and validates every setting; each reader is short.

/** How often a long-running process flushes its metrics (and the Fargate tasks call PutMetricData). */
export const DEFAULT_TELEMETRY_FLUSH_MS = 60_000;

/** Where each component's metrics go (src/telemetry/): see README "Observability". */
export interface TelemetryConfig {
  /**
   * METRICS_SINK: `emf` (EMF lines on stdout: Lambda, whose logs CloudWatch extracts), `cloudwatch`
   * (PutMetricData: the Fargate tasks) or `none` (local runs: Prometheus only). Default: `emf` inside Lambda,
   * else `none`.
   */
  sink: 'emf' | 'cloudwatch' | 'none';
  /** How often a long-running component hands its metrics to the sink (CloudWatch's resolution is 1 min). */
  flushMs: number;
  /** OPS_PORT: a local HTTP port serving /metrics (Prometheus) and /healthz; 0 = none. */
  opsPort: number;
  /** METRICS_TARGETS: ops ports (http://host:port, comma-separated) whose metrics the gateway's /metrics adds. */
  targets: string[];
}

export function readTelemetryConfig(env: Env = process.env): TelemetryConfig {
  return {
    sink: read(
      env,
      'METRICS_SINK',
      z.enum(['emf', 'cloudwatch', 'none'], { message: 'expected emf, cloudwatch or none' }),
      env.AWS_LAMBDA_FUNCTION_NAME ? 'emf' : 'none',
    ),
    flushMs: read(env, 'METRICS_FLUSH_MS', intMs(1000, 3_600_000), String(DEFAULT_TELEMETRY_FLUSH_MS)),
    opsPort: readPort(env, 'OPS_PORT', 0),
    targets: read(
      env,
      'METRICS_TARGETS',
      z
        .string()
        .transform((s) =>
          s
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean),
        )
        .pipe(z.array(z.string().regex(/^https?:\/\/[^/]+$/, 'expected http://host:port entries'))),
      '',
    ),
  };
}

/**
 * The dashboard's history (the latest table's "t#" rows, served by GET /history): one row per product every
 * HISTORY_WRITE_MS of exchange time (0 = off: no rows, and /history answers 404), kept HISTORY_TTL_S.
 */
export interface HistorySettings {
  readonly writeMs: number;
  readonly ttlS: number;
}

export const DEFAULT_HISTORY: HistorySettings = { writeMs: 1000, ttlS: 6 * 3600 };

/** The environment that carries history settings to the worker and the API (readHistoryConfig reads it back). */
export function historyEnv(h: HistorySettings): { HISTORY_WRITE_MS: string; HISTORY_TTL_S: string } {
  return { HISTORY_WRITE_MS: String(h.writeMs), HISTORY_TTL_S: String(h.ttlS) };
}

/** The history a deployment writes: its cadence (context `historyWriteMs`), the default lifetime. */
export function deploymentHistory(d: Pick<DeploymentSettings, 'historyWriteMs'>): HistorySettings {
  return { writeMs: d.historyWriteMs, ttlS: DEFAULT_HISTORY.ttlS };
}

export function readHistoryConfig(env: Env = process.env): HistorySettings {
  const writeMs = read(env, 'HISTORY_WRITE_MS', intMs(0, 3_600_000), String(DEFAULT_HISTORY.writeMs));
  if (writeMs > 0 && 3_600_000 % writeMs !== 0) {
    throw new ConfigError(
      'HISTORY_WRITE_MS',
      `${writeMs} must divide one hour evenly (rows on whole multiples)`,
    );
  }
  return {
    writeMs,
    ttlS: read(
      env,
      'HISTORY_TTL_S',
      z.coerce
        .number({ message: 'expected whole seconds' })
        .int('expected whole seconds')
        .min(60)
        .max(30 * 86_400),
      String(DEFAULT_HISTORY.ttlS),
    ),
  };
}

// Push: the WebSocket API (lambdas/ws/, the local gateway's src/gateway/websocket.ts) and the worker's publisher
// (src/worker/sinks/push.ts). README "The dashboard" and "Push".

/** The limits API Gateway's WebSocket APIs enforce (its quotas page); the local gateway applies the same. */
export const WEBSOCKET_LIMITS = {
  idleMs: 10 * 60_000,
  maxConnectionMs: 2 * 3_600_000,
  frameBytes: 32 * 1024,
  messageBytes: 128 * 1024,
  newConnectionsPerS: 500,
} as const;

/** The local gateway's WebSocket API: its port and API Gateway's limits, each shortened in tests. */
export interface WebSocketGatewayConfig {
  port: number;
  idleMs: number;
  maxConnectionMs: number;
  frameBytes: number;
  messageBytes: number;
  newConnectionsPerS: number;
}

export function readWebSocketGatewayConfig(env: Env = process.env): WebSocketGatewayConfig {
  const L = WEBSOCKET_LIMITS;
  const bytes = (min: number) =>
    z.coerce.number().int('expected a whole number of bytes').min(min, `must be >= ${min}`);
  return {
    port: readPort(env, 'WS_PORT', DEFAULT_PORTS.websocket),
    idleMs: read(env, 'WS_IDLE_MS', intMs(100, 86_400_000), String(L.idleMs)),
    maxConnectionMs: read(env, 'WS_MAX_CONNECTION_MS', intMs(100, 86_400_000), String(L.maxConnectionMs)),
    frameBytes: read(env, 'WS_MAX_FRAME_BYTES', bytes(125), String(L.frameBytes)),
    messageBytes: read(env, 'WS_MAX_MESSAGE_BYTES', bytes(125), String(L.messageBytes)),
    newConnectionsPerS: read(
      env,
      'WS_CONNECTS_PER_S',
      z.coerce.number().int('expected a whole number').min(1, 'must be >= 1'),
      String(L.newConnectionsPerS),
    ),
  };
}

/** The WebSocket route handlers ($connect and subscribe): who may connect, and how many. */
export interface WebSocketApiConfig {
  /** MAX_CONNECTIONS: open connections at most (the connections table's counter). */
  maxConnections: number;
  /** MAX_CONNECTIONS_PER_IP: open connections per source address (no WAF can sit before a WebSocket API). */
  maxConnectionsPerIp: number;
  /** WS_ORIGINS: the browser origins $connect accepts (the dashboard's); empty = any (a local default). */
  origins: string[];
  /** Products one subscribe may name at most (every configured product fits). */
  maxProducts: number;
}

export function readWebSocketApiConfig(env: Env = process.env): WebSocketApiConfig {
  const count = (max: number) =>
    z.coerce
      .number({ message: 'expected a whole number' })
      .int('expected a whole number')
      .min(1, 'must be >= 1')
      .max(max, `must be <= ${max}`);
  return {
    maxConnections: read(env, 'MAX_CONNECTIONS', count(1_000_000), '1000'),
    maxConnectionsPerIp: read(env, 'MAX_CONNECTIONS_PER_IP', count(100_000), '20'),
    origins: read(env, 'WS_ORIGINS', corsOrigins),
    maxProducts: 50,
  };
}

/** The JWT a WebSocket REQUEST authorizer checks (the same issuer and audience as the HTTP API's). */
export function readJwtConfig(env: Env = process.env): { issuer: string; audience: string[] } {
  const issuer = read(env, 'JWT_ISSUER', z.string().regex(/^https?:\/\/\S+$/, 'expected the issuer URL'));
  const audience = read(env, 'JWT_AUDIENCE', nonEmpty)
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  return { issuer, audience };
}

/** The worker's publisher (src/worker/sinks/push.ts); off unless PUSH_ENDPOINT names a management endpoint. */
export interface PushConfig {
  /** The WebSocket API's management endpoint (`https://{api}.execute-api.{region}.amazonaws.com/{stage}`). */
  endpoint: string | undefined;
  /** A connection gets at most one message per this long. */
  minIntervalMs: number;
  /** Posts in flight at once, over every connection. */
  concurrency: number;
  /** How often the subscriptions are re-read from the connections table. */
  refreshMs: number;
  /** A post that takes longer is abandoned (the next snapshot goes instead). */
  timeoutMs: number;
}

export function readPushConfig(env: Env = process.env): PushConfig {
  return {
    endpoint: read(
      env,
      'PUSH_ENDPOINT',
      z
        .string()
        .regex(/^https?:\/\/[^\s]+$/, 'expected the management endpoint, http(s)://host[:port][/stage]')
        .optional(),
    ),
    minIntervalMs: read(env, 'PUSH_MIN_MS', intMs(0, 60_000), '250'),
    concurrency: read(
      env,
      'PUSH_CONCURRENCY',
      z.coerce.number().int('expected a whole number').min(1, 'must be >= 1').max(1024, 'must be <= 1024'),
      '64',
    ),
    refreshMs: read(env, 'PUSH_REFRESH_MS', intMs(100, 600_000), '1000'),
    timeoutMs: read(env, 'PUSH_TIMEOUT_MS', intMs(100, 60_000), '3000'),
  };
}

/** The dashboard's WebSocket URL (WS_URL: `wss://{api}.execute-api.{region}.amazonaws.com/{stage}`); unset = poll. */
export function readDashboardPushUrl(env: Env = process.env): string | undefined {
  return read(
    env,
    'WS_URL',
    z
      .string()
      .regex(/^wss?:\/\/\S+$/, 'expected ws:// or wss:// URL')
      .optional(),
  );
}
