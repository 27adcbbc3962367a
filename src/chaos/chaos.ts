/**
 * A chaos run (`npm run chaos`; a short one is part of `npm test`): the whole local system — emulators, two
 * ingestors (INGESTORS=2), the worker, each its own OS process under the supervisor — fed by an exchange simulator
 * in this process streaming at several times real time and logging every frame it sends. While the market runs,
 * faults fire one after another, at market-event counts drawn from a seed: kill -9 of each ingestor and of the
 * worker (the supervisor restarts them), dropped WebSocket connections, a sequence gap, frames lost on one
 * connection, a malformed frame, a hostile one, restarts of the Kinesis, DynamoDB and S3 emulators, and PutRecords
 * throttled through the fault proxy (src/local/faultProxy.ts, in front of Kinesis). After the last fault the run
 * measures how long the system takes to be back in step with the market (recovery: every product's latest item
 * within `steadyLagMs` of exchange time of the market), lets the market end, stops the ingestors, lets the worker
 * drain, and audits everything (src/audit/audit.ts): nothing accepted lost, nothing duplicated, every gap
 * explained by a resync.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuditReport, audit } from '../audit/audit.js';
import { dynamoClient } from '../aws/clients.js';
import { sleep } from '../clock.js';
import { readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { startFaultProxy } from '../local/faultProxy.js';
import { freePort } from '../local/ports.js';
import { startSystem } from '../local/supervisor.js';
import { TARGETS } from '../model/types.js';
import { productSpecs } from '../simulator/exchange.js';
import { Rng } from '../simulator/rng.js';
import { type SimulatorOptions, type SimulatorServer, startSimulator } from '../simulator/server.js';
import { listLatest } from '../storage/latest.js';

export class ChaosError extends QuoteWatchError {}

export interface ChaosOptions {
  seed: number;
  products: readonly string[];
  /** Simulated seconds per wall second. */
  speed: number;
  /** Market length, simulated ms (the run lasts about this / speed, plus start-up and the drain). */
  marketMs: number;
  /** The first fault after this many market events, then one every `everyEvents` (± a quarter, seeded). */
  warmupEvents: number;
  everyEvents: number;
  /** Which faults (default all), each `rounds` times (default 1), in a seeded order. */
  faults?: readonly FaultName[];
  rounds?: number;
  /** Back in step: every product's latest item at most this far behind the market, exchange ms. */
  steadyLagMs?: number;
  log?: (line: string) => void;
}

export const FAULT_NAMES = [
  'kill -9 ingestor',
  'kill -9 ingestor2',
  'kill -9 worker',
  'drop connections',
  'sequence gap',
  'frames lost on one connection',
  'malformed frame',
  'hostile frame',
  'restart kinesis',
  'restart dynamodb',
  'restart s3',
  'throttle PutRecords',
] as const;
export type FaultName = (typeof FAULT_NAMES)[number];

export interface InjectedFault {
  name: FaultName;
  /** Market events produced when it fired, and seconds since the market started. */
  atEvent: number;
  atS: number;
}

export interface ChaosReport {
  seed: number;
  /** The market's first instant, epoch µs (fault times `atS` count from it). */
  marketStartUs: number;
  faults: InjectedFault[];
  /** Wall seconds from the last fault until every product was back in step (undefined: never within the run). */
  recoveryS: number | undefined;
  audit: AuditReport;
  /** Totals over products: accepted by the stream but not stored; duplicated in the lake; lost on the feed with no
   * resync; lost on the feed and explained (the resyncs' gaps); of those, level changes one line delivered only
   * after the book was rebuilt from a later snapshot (the audit's `superseded`). */
  lost: number;
  duplicated: number;
  unexplainedGaps: number;
  explainedGapEvents: number;
  superseded: number;
  wallS: number;
}

/**
 * The simulator of a run (chaos, book check): realtime at `speed`, held until the first subscribe so the run starts
 * at the market's start, ending after `marketMs`, logging every frame to `logPath` (what the audit reads).
 */
export async function startRunMarket(
  o: { seed: number; speed: number; marketMs: number; products: readonly string[] },
  logPath: string,
  extra: Partial<SimulatorOptions> = {},
): Promise<SimulatorServer> {
  return startSimulator({
    port: await freePort(),
    seed: o.seed,
    mode: 'realtime',
    speed: o.speed,
    holdUntilSubscribed: true,
    durationMs: o.marketMs,
    products: productSpecs(o.products),
    logPath,
    ...extra,
  });
}

/** Runs the chaos run; throws ChaosError when the system never processes the market's end. */
export async function runChaos(o: ChaosOptions): Promise<ChaosReport> {
  const say = o.log ?? (() => {});
  const started = Date.now();
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-chaos-'));
  const simLog = join(dataDir, 'simulator.ndjson');
  const rng = Rng.derive(o.seed, 'chaos');
  const steadyLagMs = o.steadyLagMs ?? Math.max(3000, 2000 * o.speed);
  const sim = await startRunMarket(o, simLog);
  const anchorUs = sim.timeUs(); // held there until the first subscribe
  const kinesisPort = await freePort();
  const proxy = await startFaultProxy({ target: `http://127.0.0.1:${kinesisPort}` });
  const system = await startSystem({
    dataDir,
    freePorts: true,
    ports: { kinesis: kinesisPort },
    components: ['ingestor', 'ingestor2', 'worker'],
    env: {
      FEED_URL: sim.url,
      SYMBOLS: o.products.join(','),
      // Every component reaches Kinesis through the fault proxy (provisioning does not).
      AWS_ENDPOINT_URL_KINESIS: proxy.url,
      LAKE_OBJECT_TICKS: '100', // 10 s windows: objects close while the run lasts
      SNAPSHOT_INTERVAL_MS: '10000',
      FEED_SILENCE_MS: '2000',
      METRICS_FLUSH_MS: '3600000',
    },
    // The components' output stays in system.logs(); the supervisor's restarts are part of the story.
    log: (line) => {
      if (line.startsWith('[supervisor]')) say(line);
    },
    backoff: { initialMs: 200, maxMs: 2000, stableMs: 5000 },
  });
  const env = { ...system.env, SYMBOLS: o.products.join(',') };
  const latestClient = dynamoClient(env);
  const { latestTable } = readResourceNames(env);
  /** The oldest of the products' latest ticks (−∞ until every product has one). */
  const latestUs = async (): Promise<number> => {
    const items = await listLatest(o.products, { client: latestClient, table: latestTable }).catch(() => []);
    if (items.length < o.products.length) return Number.NEGATIVE_INFINITY;
    return Math.min(...items.map((i) => i.tsUs));
  };
  const behindMs = async () => (sim.timeUs() - (await latestUs())) / 1000;

  const faults: InjectedFault[] = [];
  const apply: Record<FaultName, () => unknown> = {
    'kill -9 ingestor': () => system.crash('ingestor'),
    'kill -9 ingestor2': () => system.crash('ingestor2'),
    'kill -9 worker': () => system.crash('worker'),
    'drop connections': () => sim.faults.dropConnections(),
    'sequence gap': () => sim.faults.skipSequence(3),
    'frames lost on one connection': () => sim.faults.on(Math.max(...sim.connections())).loseFrames(5),
    'malformed frame': () => sim.faults.sendMalformed('garbage'),
    'hostile frame': () => sim.faults.sendHostile('nan'),
    'restart kinesis': () => system.emulators.restart('kinesis'),
    'restart dynamodb': () => system.emulators.restart('dynamodb'),
    'restart s3': () => system.emulators.restart('s3'),
    'throttle PutRecords': () =>
      void proxy.add({
        operation: 'PutRecords',
        times: 30,
        action: { kind: 'error', status: 400, errorType: 'ProvisionedThroughputExceededException' },
      }),
  };
  const order = Array.from({ length: o.rounds ?? 1 }, () => o.faults ?? FAULT_NAMES).flat();
  for (let i = order.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }

  try {
    // The market starts at the first subscribe (holdUntilSubscribed); faults wait for the system to serve.
    await until(() => behindMs().then((ms) => ms < steadyLagMs), 120_000, 'the first latest items');
    let next = o.warmupEvents;
    let lastFaultAt = 0;
    let lastFaultUs = 0;
    for (const name of order) {
      await until(() => sim.marketEvents() >= next, o.marketMs * 2, `market event ${next}`);
      say(`[chaos] ${name} at market event ${sim.marketEvents()}`);
      faults.push({
        name,
        atEvent: sim.marketEvents(),
        atS: Math.round((sim.timeUs() - anchorUs) / 1000) / 1000,
      });
      lastFaultAt = Date.now();
      lastFaultUs = sim.timeUs();
      await apply[name]();
      next += Math.round(o.everyEvents * (0.75 + 0.5 * rng.uniform()));
    }
    // Back in step: every product's latest tick is 1 s of market past the last fault and close to the market
    // (less the wall time the market itself needs to get 1 s further).
    let recoveryS: number | undefined;
    try {
      await until(
        async () => (await latestUs()) >= lastFaultUs + 1_000_000 && (await behindMs()) < steadyLagMs,
        60_000,
        'steady state',
      );
      recoveryS = Math.max(0, (Date.now() - lastFaultAt) / 1000 - 1 / o.speed);
    } catch {
      recoveryS = undefined;
    }
    say(`[chaos] back in step ${recoveryS ?? '?'} s after the last fault`);
    // The end: every product's latest at the market's last second, then no more input, and the worker drains.
    await until(() => sim.ended(), o.marketMs * 2, 'the end of the market');
    const endUs = anchorUs + o.marketMs * 1000;
    await until(async () => (await latestUs()) >= endUs - 2_000_000, 60_000, 'the market end processed');
    await system.kill('ingestor', 'SIGTERM');
    await system.kill('ingestor2', 'SIGTERM');
    await sleep(3000); // the worker polls every 10 ms: what the ingestors flushed is applied by then
    await system.kill('worker', 'SIGTERM');
    for (const c of ['worker', 'ingestor'] as const)
      for (const line of system
        .logs(c)
        .filter((l) => /"level":"(ERROR|WARN)"/.test(l))
        .slice(-8))
        say(`[${c}] ${line}`);
    const report = await audit({ simLog, env, targets: TARGETS, products: o.products });
    const sum = (f: (p: AuditReport['products'][number]) => number) =>
      report.products.reduce((s, p) => s + f(p), 0);
    return {
      seed: o.seed,
      marketStartUs: anchorUs,
      faults,
      recoveryS,
      audit: report,
      lost: sum((p) => p.trades.lostAccepted + p.levelChanges.lostAccepted),
      duplicated: sum((p) => p.trades.duplicated + p.levelChanges.duplicated),
      unexplainedGaps: sum((p) => p.trades.unexplained + p.levelChanges.unexplained),
      explainedGapEvents: sum(
        (p) =>
          p.trades.lost -
          p.trades.lostAccepted -
          p.trades.unexplained +
          (p.levelChanges.lost - p.levelChanges.lostAccepted - p.levelChanges.unexplained),
      ),
      superseded: sum((p) => p.levelChanges.superseded),
      wallS: (Date.now() - started) / 1000,
    };
  } finally {
    await system.stop();
    await proxy.close();
    await sim.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function until(
  probe: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new ChaosError(`chaos run: no ${what} within ${timeoutMs} ms`);
    await sleep(50);
  }
}
