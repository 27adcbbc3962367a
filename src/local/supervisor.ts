/**
 * Runs the whole system locally: emulators, provisioning, then one OS process per component (simulator,
 * ingestor, worker, gateway), restarting a component that crashes with a capped backoff. `npm start` and the
 * end-to-end tests both use startSystem(), so tests run exactly what a developer runs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { COINBASE_FEEDS, DEFAULT_PORTS, readFeedKind, simulatorFeedUrl } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { BUCKETS, LOCAL_MODEL_URI, STREAM, TABLES } from '../resources.js';
import { type Emulators, EXIT_WITH_PARENT, startEmulators } from './emulators.js';
import { onLines } from './lines.js';
import { freePort } from './ports.js';
import { provision } from './provision.js';

export type ComponentName = 'simulator' | 'ingestor' | 'ingestor2' | 'worker' | 'worker2' | 'gateway';
/**
 * What runs by default; `ingestor2` (the same program on a second connection) joins with `ingestors: 2`,
 * `worker2` (a second worker taking its share of the shards by lease) with `workers: 2`.
 */
export const COMPONENT_NAMES: readonly ComponentName[] = ['simulator', 'ingestor', 'worker', 'gateway'];

/** The components `quotewatch start` runs: without the simulator when live, the second ingestor and worker when asked. */
export function defaultComponents(o: {
  live?: boolean;
  ingestors?: number | undefined;
  workers?: number | undefined;
}): ComponentName[] {
  return COMPONENT_NAMES.filter((n) => !(o.live && n === 'simulator')).flatMap((n) =>
    n === 'ingestor' && (o.ingestors ?? 1) > 1
      ? [n, 'ingestor2' as const]
      : n === 'worker' && (o.workers ?? 1) > 1
        ? [n, 'worker2' as const]
        : [n],
  );
}

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Entry files, relative to the repository root. */
export const COMPONENT_FILES: Record<ComponentName, string> = {
  simulator: 'src/simulator/main.ts',
  ingestor: 'containers/ingestor/main.ts',
  ingestor2: 'containers/ingestor/main.ts',
  worker: 'containers/worker/main.ts',
  worker2: 'containers/worker/main.ts',
  gateway: 'src/gateway/main.ts',
};

export class SystemStartError extends QuoteWatchError {}

export interface SystemOptions {
  /** Emulator data and anything else on disk (QW_DATA_DIR, default .quotewatch). */
  dataDir: string;
  /** Connect to Coinbase instead of starting the simulator. */
  live?: boolean;
  /** Every port (emulators, simulator, gateway) picked free: for tests running next to each other. */
  freePorts?: boolean;
  ports?: Partial<
    Record<
      | 'kinesis'
      | 'dynamodb'
      | 's3'
      | 'simulator'
      | 'gateway'
      | 'websocket'
      | 'ingestorOps'
      | 'ingestor2Ops'
      | 'workerOps'
      | 'worker2Ops',
      number
    >
  >;
  /** The components to run (default all; without the simulator when live). */
  components?: ComponentName[];
  /**
   * INGESTORS: 2 adds `ingestor2` to the default components, a second ingestor on its own connection to the same
   * feed (a hot-standby pair: the worker keeps one book from both, src/worker/arbiter.ts). Default 1.
   */
  ingestors?: number;
  /** WORKERS: 2 adds `worker2` to the default components (the shards split by lease, src/worker/leases.ts). Default 1. */
  workers?: number;
  /** Replacement entry files (absolute, or relative to the repository root), e.g. stand-ins in tests. */
  componentFiles?: Partial<Record<ComponentName, string>>;
  /** Extra environment for the components (e.g. SYMBOLS, TICK_MS), over the computed one. */
  env?: Record<string, string>;
  /** Publish the baseline model when the registry has none (default true). */
  seed?: boolean;
  /** Where prefixed output lines go (default stdout); `quiet` drops them (they stay in logs()). */
  log?: (line: string) => void;
  quiet?: boolean;
  /** How long the gateway may take to report it listens (default 60 s: tsx compiles on first start). */
  readyTimeoutMs?: number;
  /** Crash restarts wait initialMs, doubling up to maxMs; a run of stableMs resets the delay. */
  backoff?: { initialMs?: number; maxMs?: number; stableMs?: number };
  /** SIGTERM grace before SIGKILL on stop (default 5 s). */
  stopGraceMs?: number;
}

export interface System {
  /** The dashboard, the feed, and the WebSocket API (its management endpoint is the same host and port). */
  urls: { dashboard: string; feed: string; websocket: string };
  /** The environment the components get (emulator endpoints, resource names, FEED_URL, MODEL_URI...). */
  env: Record<string, string>;
  emulators: Emulators;
  dataDir: string;
  components: ComponentName[];
  /** Stops the components (SIGTERM, SIGKILL after the grace period), then the emulators. */
  stop(): Promise<void>;
  /** Stops a component (SIGKILL by default) and keeps it down until restart(). */
  kill(component: ComponentName, signal?: NodeJS.Signals): Promise<void>;
  /** Gracefully stops a component if it runs, then starts it again. */
  restart(component: ComponentName): Promise<void>;
  /** SIGKILLs a component like a crash: the supervisor restarts it with its backoff. */
  crash(component: ComponentName): Promise<void>;
  /** The component's recent output lines (newest last). */
  logs(component: ComponentName): string[];
  /** Resolves with the first output line (from now on) of the component that matches. */
  waitForLog(component: ComponentName, match: (line: string) => boolean, timeoutMs?: number): Promise<string>;
}

const require = createRequire(import.meta.url);
const TSX_LOADER = pathToFileURL(require.resolve('tsx')).href;
const LOG_TAIL = 500;
/**
 * Settings that differ locally only because the emulators have no AWS quotas: Kinesis allows 5 GetRecords/s per
 * shard (hence the consumer's 200 ms default pause), kinesalite has no such limit. The caller's environment wins.
 * Measured with bench/worker.ts (exchange -> DynamoDB, 4 products): POLL_IDLE_MS 5 instead of 10 gained nothing
 * at p50 and costs idle CPU (kinesalite + worker about 38% of a core instead of 25%); a 2 ms producer linger
 * instead of 10 takes p50 from about 26 to 18 ms for about one more % of ingestor CPU (0 ms measured no better).
 * LATEST_WRITE_MS 0: the latest item every tick, since local writes cost nothing (deployed: every 300 ms, the
 * dashboard's poll, because DynamoDB bills each write).
 * WATERMARK_LATENESS_MS 10: the simulator sends each event as it happens, so on loopback an event arrives within a
 * few ms of its time (the real feeds' defaults, 300 and 100 ms, come from their captures: README, "Watermarks").
 */
export const LOCAL_TUNING: Readonly<Record<string, string>> = {
  POLL_IDLE_MS: '10',
  PRODUCER_LINGER_MS: '2',
  LATEST_WRITE_MS: '0',
  WATERMARK_LATENESS_MS: '10',
};
/**
 * The local worker's lease owner id, the same across restarts: a lease held by the same id is the worker's own
 * (src/worker/leases.ts), so a worker restarted after a crash takes its shards back at once instead of waiting
 * LEASE_MS for the dead process's leases to expire. `worker2` (WORKERS=2) is `local-worker-2`; the caller's
 * environment wins.
 */
export const LOCAL_WORKER_ID = 'local-worker';

type LineListener = (line: string) => void;

/** One component: a child process the supervisor keeps running until told otherwise. */
class Component {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private wanted = false;
  private failures = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  readonly recent: string[] = [];
  private readonly listeners = new Set<LineListener>();

  constructor(
    readonly name: ComponentName,
    private readonly file: string,
    private readonly env: Record<string, string>,
    private readonly say: (line: string) => void,
    private readonly backoff: { initialMs: number; maxMs: number; stableMs: number },
  ) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  onLine(listener: LineListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  start(): void {
    this.wanted = true;
    clearTimeout(this.restartTimer);
    if (this.running) return;
    const startedAt = Date.now();
    const child = spawn(
      process.execPath,
      ['--require', EXIT_WITH_PARENT, '--import', TSX_LOADER, this.file],
      {
        cwd: REPO_ROOT,
        env: this.env,
        // Own process group: a terminal Ctrl-C reaches only the supervisor, which then stops the components
        // before the emulators they still need for a clean shutdown.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.pipe(child.stdout);
    this.pipe(child.stderr);
    child.once('error', (err) => this.say(`[supervisor] ${this.name} could not start: ${err.message}`));
    child.once('exit', (code, signal) => {
      if (!this.wanted || this.child !== child) return;
      this.failures = Date.now() - startedAt >= this.backoff.stableMs ? 1 : this.failures + 1;
      const delay = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (this.failures - 1));
      this.say(
        `[supervisor] ${this.name} exited (${signal ?? `code ${code}`}); restarting in ${delay} ms ` +
          `(attempt ${this.failures})`,
      );
      this.restartTimer = setTimeout(() => this.wanted && this.start(), delay);
    });
  }

  private pipe(stream: NodeJS.ReadableStream | null): void {
    onLines(stream, (line) => this.emit(line), { unterminatedLast: true });
  }

  private emit(line: string): void {
    this.recent.push(line);
    if (this.recent.length > LOG_TAIL) this.recent.shift();
    this.say(`[${this.name}] ${line}`);
    for (const listener of this.listeners) listener(line);
  }

  /** Stops and keeps it down: `signal` first, SIGKILL if still running after graceMs. */
  async stop(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    this.wanted = false;
    clearTimeout(this.restartTimer);
    if (!this.running) return;
    this.child?.kill(signal);
    const timer = setTimeout(() => {
      this.say(`[supervisor] ${this.name} still running ${graceMs} ms after ${signal}; sending SIGKILL`);
      this.child?.kill('SIGKILL');
    }, graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  async crash(): Promise<void> {
    if (!this.running) return;
    this.child?.kill('SIGKILL');
    await this.exited;
  }

  killNow(): void {
    if (this.running) this.child?.kill('SIGKILL');
  }
}

function listeningUrl(line: string): string | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed = JSON.parse(line) as { message?: unknown; url?: unknown };
    return parsed.message === 'gateway listening' && typeof parsed.url === 'string' ? parsed.url : undefined;
  } catch {
    return undefined;
  }
}

/** Resource names from src/resources.ts, as the variables src/config.ts reads (its defaults match anyway). */
function resourceEnv(): Record<string, string> {
  const defs = [STREAM, ...Object.values(TABLES), ...Object.values(BUCKETS)];
  return Object.fromEntries(defs.map((def) => [def.env, def.localName]));
}

export async function startSystem(options: SystemOptions): Promise<System> {
  const {
    dataDir,
    live = false,
    freePorts = false,
    seed = true,
    quiet = false,
    readyTimeoutMs = 60_000,
    stopGraceMs = 5_000,
  } = options;
  const say = quiet ? () => {} : (options.log ?? ((line: string) => console.log(line)));
  const backoff = { initialMs: 500, maxMs: 10_000, stableMs: 10_000, ...options.backoff };
  const names =
    options.components ?? defaultComponents({ live, ingestors: options.ingestors, workers: options.workers });
  if (live && names.includes('simulator')) throw new SystemStartError('--live runs without the simulator');

  const files = { ...COMPONENT_FILES, ...options.componentFiles };
  const missing = names.filter((n) => !existsSync(resolve(REPO_ROOT, files[n])));
  if (missing.length > 0) {
    throw new SystemStartError(`component entry file(s) missing: ${missing.map((n) => files[n]).join(', ')}`);
  }

  mkdirSync(dataDir, { recursive: true });
  const pick = async (name: keyof NonNullable<SystemOptions['ports']>, fallback: number) =>
    options.ports?.[name] ?? (freePorts ? await freePort() : fallback);
  const emulatorPorts = {
    kinesis: options.ports?.kinesis ?? (freePorts ? 0 : DEFAULT_PORTS.kinesis),
    dynamodb: options.ports?.dynamodb ?? (freePorts ? 0 : DEFAULT_PORTS.dynamodb),
    s3: options.ports?.s3 ?? (freePorts ? 0 : DEFAULT_PORTS.s3),
  };
  const simulatorPort = await pick('simulator', DEFAULT_PORTS.simulator);
  const gatewayPort = await pick('gateway', DEFAULT_PORTS.gateway);
  const websocketPort = await pick('websocket', DEFAULT_PORTS.websocket);
  const websocket = `ws://127.0.0.1:${websocketPort}`;
  const opsPorts = {
    ingestor: await pick('ingestorOps', DEFAULT_PORTS.ingestorOps),
    ingestor2: await pick('ingestor2Ops', DEFAULT_PORTS.ingestor2Ops),
    worker: await pick('workerOps', DEFAULT_PORTS.workerOps),
    worker2: await pick('worker2Ops', DEFAULT_PORTS.worker2Ops),
  };
  // The gateway's /metrics adds the ops ports of the components that run here.
  const metricsTargets = (['ingestor', 'ingestor2', 'worker', 'worker2'] as const)
    .filter((n) => names.includes(n))
    .map((n) => `http://127.0.0.1:${opsPorts[n]}`);

  say(`[supervisor] starting emulators (data in ${dataDir})`);
  const emulators = await startEmulators({ dataDir, ports: emulatorPorts, log: say });
  let components: Component[] = [];
  const stopAll = async () => {
    await Promise.all(components.map((c) => c.stop('SIGTERM', stopGraceMs)));
    await emulators.stop();
  };

  // The optional features stream is created when the components will be told to publish to it.
  const featuresStream = options.env?.FEATURES_STREAM ?? process.env.FEATURES_STREAM;
  try {
    await provision(
      { ...emulators.env, ...(featuresStream ? { FEATURES_STREAM: featuresStream } : {}) },
      { seed, log: (line) => say(`[provision] ${line}`) },
    );
  } catch (err) {
    await stopAll();
    throw new SystemStartError(`provisioning the local resources failed: ${(err as Error).message}`, {
      cause: err,
    });
  }

  // FEED_KIND=exchange: the legacy Exchange feed, Coinbase's or the simulator's (same market, its /exchange path).
  const kind = readFeedKind({ ...process.env, ...options.env }) ?? 'advanced';
  const feed = live
    ? kind === 'exchange'
      ? COINBASE_FEEDS.exchange
      : COINBASE_FEEDS.advancedTrade
    : simulatorFeedUrl(simulatorPort, kind);
  const env: Record<string, string> = {
    ...resourceEnv(),
    ...emulators.env,
    FEED_URL: feed,
    MODEL_URI: LOCAL_MODEL_URI,
    ...options.env,
  };
  const baseEnv = Object.fromEntries(
    Object.entries(process.env).filter((entry): entry is [string, string] => entry[1] !== undefined),
  );
  components = names.map((name) => {
    // Listening ports go only to their own component (src/config.ts: PORT, SIM_PORT).
    // Push: the gateway serves the WebSocket API (the dashboard learns its URL, and only the dashboard's origin may
    // open one), the worker posts to its management endpoint.
    const own: Record<string, string> =
      name === 'gateway'
        ? {
            PORT: String(gatewayPort),
            METRICS_TARGETS: metricsTargets.join(','),
            WS_PORT: String(websocketPort),
            WS_URL: websocket,
            WS_ORIGINS: `http://127.0.0.1:${gatewayPort},http://localhost:${gatewayPort}`,
          }
        : name === 'simulator'
          ? { SIM_PORT: String(simulatorPort) }
          : name === 'worker' || name === 'worker2'
            ? {
                OPS_PORT: String(opsPorts[name]),
                ...(names.includes('gateway') ? { PUSH_ENDPOINT: `http://127.0.0.1:${websocketPort}` } : {}),
              }
            : name === 'ingestor' || name === 'ingestor2'
              ? { OPS_PORT: String(opsPorts[name]) }
              : {};
    const defaults =
      name === 'worker'
        ? { ...LOCAL_TUNING, WORKER_ID: LOCAL_WORKER_ID }
        : name === 'worker2'
          ? { ...LOCAL_TUNING, WORKER_ID: `${LOCAL_WORKER_ID}-2` }
          : LOCAL_TUNING;
    return new Component(
      name,
      resolve(REPO_ROOT, files[name]),
      { ...defaults, ...baseEnv, ...env, ...own },
      say,
      backoff,
    );
  });
  const byName = new Map(components.map((c) => [c.name, c]));
  const component = (name: ComponentName) => {
    const found = byName.get(name);
    if (!found)
      throw new Error(`component ${name} is not part of this system (running: ${names.join(', ')})`);
    return found;
  };
  // A normal exit of this process kills whatever still runs (signals and crashes: see exit-with-parent.cjs).
  const onExit = () => {
    for (const c of components) c.killNow();
  };
  process.once('exit', onExit);

  const waitForLog = (name: ComponentName, match: (line: string) => boolean, timeoutMs = 30_000) =>
    new Promise<string>((resolve, reject) => {
      const unsubscribe = component(name).onLine((line) => {
        if (!match(line)) return;
        clearTimeout(timer);
        unsubscribe();
        resolve(line);
      });
      const timer = setTimeout(() => {
        unsubscribe();
        reject(new Error(`${name}: no matching log line within ${timeoutMs} ms`));
      }, timeoutMs);
    });

  let dashboard = `http://127.0.0.1:${gatewayPort}/`;
  const gatewayListening = names.includes('gateway')
    ? waitForLog('gateway', (line) => listeningUrl(line) !== undefined, readyTimeoutMs)
    : undefined;
  for (const c of components) c.start();

  if (gatewayListening) {
    try {
      const url = listeningUrl(await gatewayListening)!;
      dashboard = url.endsWith('/') ? url : `${url}/`;
    } catch (err) {
      await stopAll();
      process.off('exit', onExit);
      const tail = component('gateway').recent.slice(-10).join('\n');
      throw new SystemStartError(
        `the gateway did not report "gateway listening" within ${readyTimeoutMs} ms; its last lines:\n${tail}`,
        { cause: err },
      );
    }
    say(`QuoteWatch dashboard: ${dashboard}`);
  }

  let stopping: Promise<void> | undefined;
  return {
    urls: { dashboard, feed, websocket },
    env,
    emulators,
    dataDir,
    components: [...names],
    stop() {
      stopping ??= stopAll().finally(() => process.off('exit', onExit));
      return stopping;
    },
    kill: (name, signal = 'SIGKILL') => component(name).stop(signal, stopGraceMs),
    async restart(name) {
      const c = component(name);
      await c.stop('SIGTERM', stopGraceMs);
      c.start();
    },
    crash: (name) => component(name).crash(),
    logs: (name) => [...component(name).recent],
    waitForLog,
  };
}
