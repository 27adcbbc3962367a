/**
 * `quotewatch simulate --hours N [--products P,...] [--seed S]`: fills the lake with N hours of simulated
 * market, as fast as the machine allows.
 *
 * The documented in-process path: the simulator's Advanced Trade frames (the channels the ingestor subscribes
 * to) go through the production mapper (mapAdvancedTradeFrame), become records of the stream's format v1
 * (encodeRecord, then decodeRecord as the consumer does), and shard batches of them go to the worker's own
 * code (Worker.handleBatch: books, features, labels, scoring with the registry's active models, the Parquet
 * lake in S3), one shard and one worker per product. Book snapshots are claim-checked in S3 with the ingestor's SnapshotStore, at the start and
 * every SNAPSHOT_INTERVAL_MS of exchange time, as the ingestor does. What it leaves out: WebSocket,
 * Kinesis, sequence checks (the simulator has no gaps), feed stats, the latest-snapshot table (a history fill
 * is not "latest") and checkpoints. Same seed, products and profile: the same lake objects.
 */
import { HeadBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../aws/clients.js';
import {
  ConfigError,
  readCoreConfig,
  readFeatureConfig,
  readFeedConfig,
  readLocalConfig,
  readResourceNames,
  readSimulatorConfig,
  readWorkerConfig,
} from '../config.js';
import { DEFAULT_EMULATOR_PORTS, emulatorEnv, startEmulators } from '../local/emulators.js';
import { provision } from '../local/provision.js';
import { componentLogger, type Logger } from '../log.js';
import { mapAdvancedTradeFrame } from '../marketdata/advancedTrade.js';
import { ActiveModels } from '../model/serving.js';
import { registrySource } from '../model/source.js';
import type { LoadedModel } from '../model/types.js';
import { SnapshotStore } from '../stream/claimCheck.js';
import { decodeRecord, encodeRecord, eventKey, type StreamEvent } from '../stream/record.js';
import type { ConsumedRecord } from '../worker/consumer.js';
import { Worker } from '../worker/worker.js';
import { snapshotEvent } from './events.js';
import { productSpecs, seedEpochUs } from './exchange.js';
import type { Profile } from './profile.js';
import { NO_PROGRESS, type Progress, progressBar } from './progress.js';
import { Session } from './session.js';

type Env = Record<string, string | undefined>;

/** Simulated time per shard batch handed to the worker. */
const BATCH_US = 10_000_000;

export interface SimulateOptions {
  hours: number;
  products: readonly string[];
  seed: number;
  profile?: Profile;
  s3: S3Client;
  lakeBucket: string;
  tickMs: number;
  deltaMs: number;
  gapLimitMs?: number;
  objectTicks?: number;
  /** Periodic book snapshots in exchange time (0: only the first). */
  snapshotIntervalMs: number;
  models: () => readonly LoadedModel[];
  progress?: Progress;
  log?: Logger;
}

export interface SimulateSummary {
  simulatedHours: number;
  products: string[];
  seed: number;
  frames: number;
  events: number;
  records: number;
  featureRows: number;
  labels: number;
  predictions: number;
  /** Lake objects written (snapshots not counted). */
  objects: number;
  snapshots: number;
  wallSeconds: number;
  simulatedHoursPerWallMinute: number;
  fromUs: number;
  toUs: number;
}

export async function simulateToLake(o: SimulateOptions): Promise<SimulateSummary> {
  const t0 = performance.now();
  const progress = o.progress ?? NO_PROGRESS;
  const log = o.log ?? componentLogger('simulate', { level: 'warn' });
  const startUs = seedEpochUs(o.seed);
  const endUs = startUs + Math.round(o.hours * 3600e6);
  const specs = productSpecs(o.products, o.profile);
  const session = new Session(specs, o.seed, startUs, 0);
  const snapshots = new SnapshotStore(o.s3, o.lakeBucket);
  const idPrefix = `sim${o.seed}.1`;
  // One shard per product and a worker per shard, as when several workers split the shards by lease: their
  // batches run side by side, so one worker's waits (S3, onnxruntime) overlap another's work.
  const workers = new Map(
    o.products.map((product, i) => [
      product,
      {
        shardId: `shardId-${String(i).padStart(12, '0')}`,
        worker: new Worker({
          tickMs: o.tickMs,
          deltaMs: o.deltaMs,
          gapLimitMs: o.gapLimitMs,
          s3: o.s3,
          lakeBucket: o.lakeBucket,
          objectTicks: o.objectTicks,
          models: o.models,
          writeLatest: async () => {},
          // No wall clock: simulated time is hours away from it, so a latency would be a huge negative number
          // (WorkerLatencyMs skips non-finite timings; nothing else here reads the clock).
          now: () => Number.NaN,
          log,
        }),
      },
    ]),
  );
  const summary: SimulateSummary = {
    simulatedHours: o.hours,
    products: [...o.products],
    seed: o.seed,
    frames: 0,
    events: 0,
    records: 0,
    featureRows: 0,
    labels: 0,
    predictions: 0,
    objects: 0,
    snapshots: 0,
    wallSeconds: 0,
    simulatedHoursPerWallMinute: 0,
    fromUs: startUs,
    toUs: endUs,
  };

  let recordNo = 0;
  const open = new Map<string, StreamEvent[]>();
  const push = (e: StreamEvent) => {
    const list = open.get(e.product) ?? [];
    if (list.length === 0) open.set(e.product, list);
    list.push(e);
    summary.events++;
  };
  let snapshotNo = 0;
  /** The books as the ingestor would store them: claim-checked in S3, a ref in the stream. */
  const publishSnapshots = async (atUs: number, source: 'exchange' | 'periodic') => {
    for (const m of session.exchange.markets) {
      const n = snapshotNo++;
      const ref = await snapshots.put(snapshotEvent(m, atUs, n), idPrefix);
      const event = { ...ref, ...(source === 'periodic' ? { source } : {}) };
      push({ ...event, id: eventKey(event, idPrefix, n) });
      summary.snapshots++;
    }
  };
  const feed = (text: string, recvUs: number) => {
    summary.frames++;
    const mapped = mapAdvancedTradeFrame(text, recvUs);
    for (const e of mapped.events) {
      // The first level2 frame of each product is its snapshot: the claim-checked copy stands for it.
      if (e.type !== 'book_snapshot') push({ ...e, id: eventKey(e, idPrefix) });
    }
  };
  /** The open records as one shard batch, through the record codec both ways (producer, then consumer). */
  const takeBatch = (): ConsumedRecord[] => {
    const records: ConsumedRecord[] = [];
    for (const [product, events] of open) {
      if (events.length === 0) continue;
      const decoded = decodeRecord(encodeRecord(product, events));
      records.push({
        sequenceNumber: String(10n ** 20n + BigInt(++recordNo)),
        product: decoded.product,
        events: decoded.events,
      });
      open.set(product, []);
    }
    summary.records += records.length;
    return records;
  };
  // One batch per worker at a time, while the next ones are simulated: the lake's S3 puts of one batch overlap
  // the simulation of the next (the emulator runs in its own process).
  let inWorkers: Promise<void>[] = [];
  const handOver = async (records: ConsumedRecord[]) => {
    await Promise.all(inWorkers);
    inWorkers = records.map((record) => {
      const { worker, shardId } = workers.get(record.product)!;
      return worker.handleBatch({ shardId, records: [record] }).then((r) => {
        summary.featureRows += r.rows;
        summary.labels += r.labels;
        summary.predictions += r.predictions;
        summary.objects += r.objects.length;
      });
    });
  };

  for (const channel of ['level2', 'market_trades', 'ticker']) {
    const subscribe = { type: 'subscribe', channel, product_ids: o.products };
    for (const f of session.handleMessage(JSON.stringify(subscribe))) feed(f.text, startUs);
  }
  await publishSnapshots(startUs, 'exchange');
  const everyUs = o.snapshotIntervalMs * 1000;
  let nextSnapshotUs = everyUs > 0 ? startUs + everyUs : Number.POSITIVE_INFINITY;
  for (let t = startUs; t < endUs; ) {
    t = Math.min(t + BATCH_US, endUs);
    for (const f of session.advanceTo(t)) feed(f.text, session.timeUs);
    if (t >= nextSnapshotUs) {
      await publishSnapshots(t, 'periodic');
      while (nextSnapshotUs <= t) nextSnapshotUs += everyUs;
    }
    await handOver(takeBatch());
    const wallMin = (performance.now() - t0) / 60_000;
    const simHours = (t - startUs) / 3600e6;
    progress.update((t - startUs) / (endUs - startUs), `${(simHours / wallMin).toFixed(1)} simulated h/min`);
  }
  await handOver(takeBatch());
  await Promise.all(inWorkers);
  for (const { worker } of workers.values()) summary.objects += (await worker.close()).length;
  summary.wallSeconds = (performance.now() - t0) / 1000;
  summary.simulatedHoursPerWallMinute = o.hours / (summary.wallSeconds / 60);
  progress.end(`${summary.simulatedHoursPerWallMinute.toFixed(1)} simulated h/min`);
  return summary;
}

// --- the command ---------------------------------------------------------------------------------------

/** Is the lake bucket there? false when nothing answers at the S3 endpoint. */
async function lakeReachable(s3: S3Client, bucket: string): Promise<boolean> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return true;
  } catch (err) {
    const code =
      (err as { code?: string; cause?: { code?: string } }).code ??
      (err as { cause?: { code?: string } }).cause?.code;
    if (code === 'ECONNREFUSED') return false;
    return true; // reachable: provisioning below creates what is missing
  }
}

/**
 * `quotewatch simulate` (arguments checked by the CLI). Uses the emulators of a running `npm start` /
 * `quotewatch emulators` (or AWS_ENDPOINT_URL_*); when none answer, starts the local emulators on their usual ports
 * with QW_DATA_DIR, provisions, and stops them at the end. Exit code 2 on a bad configuration.
 */
export async function simulateCommand(
  run: { hours: number; products: readonly string[]; seed: number },
  baseEnv: Env = process.env,
): Promise<number> {
  const hasEndpoints = Object.keys(baseEnv).some((k) => k.startsWith('AWS_ENDPOINT_URL'));
  let env: Env = hasEndpoints ? baseEnv : { ...baseEnv, ...emulatorEnv(DEFAULT_EMULATOR_PORTS) };
  let lakeBucket: string;
  try {
    readSimulatorConfig(env); // SIM_PROFILE, validated before anything starts
    lakeBucket = readResourceNames(env).lakeBucket;
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`quotewatch simulate: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const s3 = s3Client(env);
  let stopEmulators: (() => Promise<void>) | undefined;
  if (!(await lakeReachable(s3, lakeBucket))) {
    if (hasEndpoints) {
      console.error(
        `quotewatch simulate: nothing answers at ${env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL}`,
      );
      return 1;
    }
    const dataDir = readLocalConfig(env).dataDir;
    console.error(`[simulate] no emulators running: starting them (data in ${dataDir})`);
    const emulators = await startEmulators({ dataDir, ports: DEFAULT_EMULATOR_PORTS });
    env = { ...env, ...emulators.env };
    stopEmulators = () => emulators.stop();
  }
  try {
    const summary = await simulateWithEnv(run, env, progressBar('simulate'));
    console.log(JSON.stringify(summary));
    return 0;
  } finally {
    await stopEmulators?.();
  }
}

/**
 * Provisions (idempotent; seeds the registry with the baseline if it has no active model), loads the active
 * models as the worker does, and fills the lake of `env` (SIM_PROFILE and the worker's settings from it too).
 */
export async function simulateWithEnv(
  run: { hours: number; products: readonly string[]; seed: number },
  env: Env,
  progress: Progress = NO_PROGRESS,
): Promise<SimulateSummary> {
  const core = readCoreConfig(env);
  const lakeBucket = readResourceNames(env).lakeBucket;
  const profile = readSimulatorConfig(env).profile;
  await provision(env, { log: (line) => console.error(`[provision] ${line}`) });
  const log = componentLogger('simulate', { level: 'warn' });
  const models = new ActiveModels({ source: registrySource(env, { tickMs: core.tickMs }), log });
  await models.refresh();
  const served = models.served().map((m) => `${m.target}=${m.version}`);
  console.error(
    `[simulate] ${run.hours} h of ${run.products.join(', ')} (seed ${run.seed}) into s3://${lakeBucket}; models: ${served.join(', ') || 'none'}`,
  );
  return simulateToLake({
    ...run,
    ...(profile ? { profile } : {}),
    s3: s3Client(env),
    lakeBucket,
    tickMs: core.tickMs,
    deltaMs: core.deltaMs,
    gapLimitMs: readFeatureConfig(env).gapLimitMs,
    objectTicks: readWorkerConfig(env).lakeObjectTicks,
    snapshotIntervalMs: readFeedConfig(env).snapshotIntervalMs,
    models: () => models.served(),
    progress,
    log,
  });
}
