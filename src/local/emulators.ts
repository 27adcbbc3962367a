/**
 * Local AWS: kinesalite (Kinesis), dynalite (DynamoDB) and s3rver (S3), each a child process on 127.0.0.1 with
 * its data on disk, so killing and restarting one keeps what it stored. Reached with the ordinary SDK clients
 * of src/aws/clients.ts through the AWS_ENDPOINT_URL_* variables in `Emulators.env`.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { ListBucketsCommand } from '@aws-sdk/client-s3';
import { dynamoClient, kinesisClient, s3Client } from '../aws/clients.js';
import { sleep } from '../clock.js';
import { DEFAULT_PORTS } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { onLines } from './lines.js';
import { freePort } from './ports.js';

export type EmulatorName = 'kinesis' | 'dynamodb' | 's3';
export const EMULATOR_NAMES: readonly EmulatorName[] = ['kinesis', 'dynamodb', 's3'];

/** The emulators' share of the fixed local ports (src/config.ts DEFAULT_PORTS). */
export const DEFAULT_EMULATOR_PORTS: Record<EmulatorName, number> = {
  kinesis: DEFAULT_PORTS.kinesis,
  dynamodb: DEFAULT_PORTS.dynamodb,
  s3: DEFAULT_PORTS.s3,
};

export class EmulatorStartError extends QuoteWatchError {
  constructor(
    readonly emulator: EmulatorName,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${emulator} emulator: ${message}`, options);
  }
}

export interface EmulatorOptions {
  /** Root of the on-disk data: <dataDir>/kinesis, <dataDir>/dynamodb, <dataDir>/s3. */
  dataDir: string;
  /** 0 or absent picks a free port. */
  ports?: Partial<Record<EmulatorName, number>>;
  /** How long each emulator may take to answer its first request. */
  startTimeoutMs?: number;
  /** Receives each line an emulator prints (already prefixed with its name); default: dropped. */
  log?: (line: string) => void;
}

export interface Emulators {
  /** AWS SDK settings pointing at the emulators: merge into a component's environment. */
  env: Record<string, string>;
  endpoints: Record<EmulatorName, string>;
  ports: Record<EmulatorName, number>;
  dataDir: string;
  /** Stops one emulator (SIGKILL by default, like a crash); it stays down until restart(). */
  kill(name: EmulatorName, signal?: NodeJS.Signals): Promise<void>;
  /** Starts the emulator again (stopping it first if it runs) on the same port with the same data. */
  restart(name: EmulatorName): Promise<void>;
  /** Stops all emulators; the data stays on disk. */
  stop(): Promise<void>;
}

/** The SDK settings for emulators on these ports (also what `quotewatch provision` uses by default). */
export function emulatorEnv(ports: Record<EmulatorName, number>): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1',
    // s3rver accepts only these credentials; kinesalite and dynalite accept anything.
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
    AWS_ENDPOINT_URL_KINESIS: `http://127.0.0.1:${ports.kinesis}`,
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${ports.dynamodb}`,
    AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${ports.s3}`,
    AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
    AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
  };
}

const require = createRequire(import.meta.url);
const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));
/** Preloaded into every child so it exits when this process dies, whatever the way. */
export const EXIT_WITH_PARENT = here('./exit-with-parent.cjs');

interface Spec {
  script: string;
  args(port: number, dir: string): string[];
  env?: Record<string, string>;
  /** One cheap real request; resolves once the emulator serves. */
  probe(env: Record<string, string>, abortSignal: AbortSignal): Promise<unknown>;
}

const SPECS: Record<EmulatorName, Spec> = {
  kinesis: {
    script: here('./launch-kinesalite.cjs'),
    // Zero state-transition delays: streams are ACTIVE at once. kinesalite's default shard limit is 10.
    args: (port, dir) => [
      ...['--port', String(port), '--path', dir, '--createStreamMs', '0', '--deleteStreamMs', '0'],
      ...['--updateStreamMs', '0', '--shardLimit', '1000'],
    ],
    probe: (env, abortSignal) => kinesisClient(env).send(new ListStreamsCommand({}), { abortSignal }),
  },
  dynamodb: {
    script: require.resolve('dynalite/cli.js'),
    args: (port, dir) => [
      ...['--host', '127.0.0.1', '--port', String(port), '--path', dir],
      ...['--createTableMs', '0', '--deleteTableMs', '0', '--updateTableMs', '0'],
    ],
    probe: (env, abortSignal) => dynamoClient(env).send(new ListTablesCommand({}), { abortSignal }),
  },
  s3: {
    script: here('./launch-s3rver.cjs'),
    args: (port, dir) => ['--address', '127.0.0.1', '--port', String(port), '--directory', dir, '--silent'],
    // s3rver's signature code needs OpenSSL's legacy provider on Node 17+ (paginated listings fail with 500
    // otherwise). Only its own environment gets it.
    env: { NODE_OPTIONS: '--openssl-legacy-provider' },
    probe: (env, abortSignal) => s3Client(env).send(new ListBucketsCommand({}), { abortSignal }),
  },
};

/** A running emulator child: its process, and the tail of its stderr for error messages. */
class EmulatorProcess {
  child: ChildProcess | undefined;
  private stderrTail: string[] = [];
  /** Set when the emulator prints its "listening" line. */
  private listening = false;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: EmulatorName,
    readonly port: number,
    readonly dir: string,
    private readonly log: (line: string) => void,
  ) {}

  tail(): string {
    return this.stderrTail.join('\n').trim() || '(no stderr output)';
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  spawn(): void {
    const spec = SPECS[this.name];
    this.stderrTail = [];
    this.listening = false;
    const child = spawn(
      process.execPath,
      ['--require', EXIT_WITH_PARENT, spec.script, ...spec.args(this.port, this.dir)],
      {
        // NODE_OPTIONS of a tsx or vitest parent has no business in an emulator (s3rver sets its own).
        env: { ...process.env, NODE_OPTIONS: '', ...spec.env },
        // Own process group: a terminal Ctrl-C must not stop the emulators before the components using them.
        detached: true,
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      },
    );
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    const forward = (stream: NodeJS.ReadableStream | null, keep: boolean) =>
      onLines(stream, (line) => {
        if (keep) this.stderrTail = [...this.stderrTail, line].slice(-20);
        else if (/listening/i.test(line)) this.listening = true;
        this.log(`[${this.name}] ${line}`);
      });
    forward(child.stdout, false);
    forward(child.stderr, true);
  }

  async waitReady(env: Record<string, string>, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (!this.running) {
        await this.exited;
        const how = this.child?.exitCode ?? this.child?.signalCode;
        if (this.tail().includes('EADDRINUSE')) {
          throw new EmulatorStartError(
            this.name,
            `port ${this.port} is already in use (another QuoteWatch running?); stderr:\n${this.tail()}`,
          );
        }
        throw new EmulatorStartError(
          this.name,
          `exited (${how}) before serving on port ${this.port}:\n${this.tail()}`,
        );
      }
      // Only our own process saying it listens proves the port is ours: another server (or a leftover
      // emulator) could hold it and answer the probe while ours dies of EADDRINUSE.
      if (!this.listening) {
        await sleep(25);
        continue;
      }
      try {
        const probeTimeout = AbortSignal.timeout(Math.max(1, Math.min(2_000, deadline - Date.now())));
        await SPECS[this.name].probe(env, probeTimeout);
        return;
      } catch (err) {
        lastError = err;
        await sleep(50);
      }
    }
    throw new EmulatorStartError(
      this.name,
      `did not answer on port ${this.port} within ${timeoutMs} ms; stderr:\n${this.tail()}`,
      { cause: lastError },
    );
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    this.child?.kill(signal);
    await this.exited;
  }

  killNow(): void {
    if (this.running) this.child?.kill('SIGKILL');
  }
}

const liveEmulators = new Set<EmulatorProcess>();
let exitHookInstalled = false;
/** A normal exit of this process (including process.exit) kills the emulators synchronously. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const emulator of liveEmulators) emulator.killNow();
  });
}

async function startOne(
  name: EmulatorName,
  requestedPort: number | undefined,
  dataDir: string,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<EmulatorProcess> {
  const dir = join(dataDir, name);
  mkdirSync(dir, { recursive: true });
  // A picked port can be taken by someone else before the emulator binds it: pick again (a fixed port is final).
  const attempts = requestedPort ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    const port = requestedPort || (await freePort());
    const emulator = new EmulatorProcess(name, port, dir, log);
    emulator.spawn();
    liveEmulators.add(emulator);
    try {
      await emulator.waitReady(emulatorEnv({ kinesis: port, dynamodb: port, s3: port }), timeoutMs);
      return emulator;
    } catch (err) {
      await emulator.kill();
      liveEmulators.delete(emulator);
      if (attempt >= attempts || !emulator.tail().includes('EADDRINUSE')) throw err;
    }
  }
}

/** Starts the three emulators (in parallel) and resolves once each answers a real SDK request. */
export async function startEmulators(options: EmulatorOptions): Promise<Emulators> {
  const { dataDir, startTimeoutMs = 20_000, log = () => {} } = options;
  installExitHook();
  const started = await Promise.allSettled(
    EMULATOR_NAMES.map((name) => startOne(name, options.ports?.[name], dataDir, startTimeoutMs, log)),
  );
  const running = started.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failure = started.find((r) => r.status === 'rejected');
  if (failure) {
    await Promise.all(running.map((e) => e.kill()));
    for (const e of running) liveEmulators.delete(e);
    throw failure.reason;
  }

  const byName = Object.fromEntries(running.map((e) => [e.name, e])) as Record<EmulatorName, EmulatorProcess>;
  const ports = { kinesis: byName.kinesis.port, dynamodb: byName.dynamodb.port, s3: byName.s3.port };
  const env = emulatorEnv(ports);
  return {
    env,
    ports,
    endpoints: {
      kinesis: env.AWS_ENDPOINT_URL_KINESIS!,
      dynamodb: env.AWS_ENDPOINT_URL_DYNAMODB!,
      s3: env.AWS_ENDPOINT_URL_S3!,
    },
    dataDir,
    kill: (name, signal) => byName[name].kill(signal),
    async restart(name) {
      const emulator = byName[name];
      await emulator.kill('SIGTERM');
      emulator.spawn();
      await emulator.waitReady(env, startTimeoutMs);
    },
    async stop() {
      await Promise.all(running.map((e) => e.kill('SIGTERM')));
      for (const e of running) liveEmulators.delete(e);
    },
  };
}

/**
 * kinesis-local (kinesis-mock, the Kinesis backend LocalStack uses), an optional fourth emulator: unlike
 * kinesalite it serves enhanced fan-out (RegisterStreamConsumer, SubscribeToShard over HTTP/1.1). Kept in memory
 * (no data on disk) and slow at volume, so it only backs the fan-out tests and an opt-in local fan-out run.
 */
export interface KinesisMock {
  endpoint: string;
  port: number;
  /** emulatorEnv-style SDK settings for a Kinesis client pointing at it. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startKinesisMock(
  options: { port?: number; startTimeoutMs?: number; log?: (line: string) => void } = {},
): Promise<KinesisMock> {
  const { startTimeoutMs = 30_000, log = () => {} } = options;
  const main = require.resolve('kinesis-local/main.js');
  const port = options.port || (await freePort());
  const tlsPort = await freePort();
  installExitHook();
  const child = spawn(process.execPath, ['--require', EXIT_WITH_PARENT, main], {
    env: {
      ...process.env,
      NODE_OPTIONS: '',
      // Its self-signed certificate is looked up relative to the working directory unless named.
      KINESIS_MOCK_CERT_PATH: join(main, '..', 'server.json'),
      KINESIS_MOCK_PLAIN_PORT: String(port),
      KINESIS_MOCK_TLS_PORT: String(tlsPort),
      CREATE_STREAM_DURATION: '0ms',
      DELETE_STREAM_DURATION: '0ms',
      REGISTER_STREAM_CONSUMER_DURATION: '0ms',
      DEREGISTER_STREAM_CONSUMER_DURATION: '0ms',
      MERGE_SHARDS_DURATION: '0ms',
      SPLIT_SHARD_DURATION: '0ms',
      LOG_LEVEL: 'WARN',
    },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  const tail: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        tail.push(line);
        if (tail.length > 20) tail.shift();
        log(`[kinesis-local] ${line}`);
      }
    });
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const env = { ...emulatorEnv({ kinesis: port, dynamodb: 0, s3: 0 }) };
  for (const k of ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_S3']) delete env[k];
  const deadline = Date.now() + startTimeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new EmulatorStartError('kinesis', `kinesis-local exited before serving:\n${tail.join('\n')}`);
    }
    try {
      await kinesisClient(env).send(new ListStreamsCommand({}), { abortSignal: AbortSignal.timeout(2000) });
      break;
    } catch (err) {
      if (Date.now() > deadline) {
        kill();
        throw new EmulatorStartError('kinesis', `kinesis-local did not answer on port ${port}`, {
          cause: err,
        });
      }
      await sleep(100);
    }
  }
  return {
    endpoint: env.AWS_ENDPOINT_URL_KINESIS!,
    port,
    env,
    async stop() {
      process.removeListener('exit', kill);
      kill();
      await exited;
    },
  };
}
