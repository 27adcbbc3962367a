/**
 * Worker benchmarks: throughput without I/O as a multiple of real time, onnxruntime latency per tick for all
 * targets' models together, exchange time -> DynamoDB ack through the local emulators, Parquet encoding rate.
 *
 * worker.realtime_multiple = simulated seconds / wall seconds for the worker's whole per-batch work on a long
 * simulator stream (two products): decode each Kinesis record from its JSON bytes (what the consumer does per
 * record; the worker process turns the consumer's own dedup off, the Worker drops duplicate ids), then
 * Worker.handleBatch: dedup, books,
 * features, labels, one onnxruntime run per model per batch, live quality, latest snapshots (built, then
 * handed to a no-op writer) and Parquet encoding of all four lake zones (raw, features, labels, predictions),
 * with S3 and DynamoDB stubbed out. Generating the stream and encoding its records to bytes happen before the
 * clock starts. A short stream of another seed runs through a separate worker first, so the figure is the
 * steady state of a long-running worker, not JIT warm-up. Wall time on a shared machine is noisy: the
 * context also gives the process CPU time over the same span.
 *
 * latency.exchange_to_ddb_p50_ms / _p99_ms: the real processes (realtime simulator with four products ->
 * ingestor -> kinesalite -> worker -> dynalite, local tuning as `npm start`), every snapshot's exchange time ->
 * DynamoDB ack over 70 s after start-up (about 2,300 samples), p50/p99 over all of them; the worker's own 10 s
 * window reports over the same span go in the context (their spread, and the slowest samples with their time,
 * show whether one stall decides the p99). See endToEnd() for how the samples are taken.
 */

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { featureSpec } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { freePort } from '../src/local/ports.js';
import { DEFAULT_BASELINE_DIR } from '../src/local/provision.js';
import { LOCAL_TUNING, startSystem } from '../src/local/supervisor.js';
import { loadActive } from '../src/model/source.js';
import { type LoadedModel, MODEL_SETS, slotKey, TARGETS } from '../src/model/types.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { encodeFeatureRows } from '../src/storage/parquet.js';
import { decodeRecord, encodeRecord } from '../src/stream/record.js';
import type { ShardBatch } from '../src/worker/consumer.js';
import { simStream } from '../src/worker/simStream.js';
import { Worker } from '../src/worker/worker.js';
import { dynamoTap } from './dynamoTap.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';
import { cpuByLabel } from './procs.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];

/**
 * The shipped models (models/baseline, every slot: each target's l2 and ticker models), loaded as the worker
 * loads a file:// registry: the figures are those of the models `npm start` serves (gradient-boosted trees).
 */
async function models(): Promise<LoadedModel[]> {
  const env = { MODEL_URI: `file://${DEFAULT_BASELINE_DIR}` };
  const loaded: LoadedModel[] = [];
  for (const target of TARGETS) {
    for (const set of MODEL_SETS) {
      if (!existsSync(join(DEFAULT_BASELINE_DIR, slotKey(target, set), 'model.onnx'))) continue;
      loaded.push(await loadActive(target, env, { tickMs: 100, set }));
    }
  }
  if (loaded.length === 0)
    throw new Error(`no shipped models in ${DEFAULT_BASELINE_DIR}: run npm run baseline`);
  return loaded;
}

/** An S3 client that accepts every put: the throughput figure is the worker's CPU work, not the emulator's. */
const nullS3 = { send: async () => ({}) } as unknown as S3Client;

/** A consumed batch as Kinesis hands it over: each record's JSON bytes. */
interface EncodedBatch {
  shardId: string;
  records: { sequenceNumber: string; data: Uint8Array }[];
}

function encodeBatches(batches: ShardBatch[]): EncodedBatch[] {
  return batches.map((b) => ({
    shardId: b.shardId,
    records: b.records.map((r) => ({
      sequenceNumber: r.sequenceNumber,
      data: encodeRecord(r.product, r.events),
    })),
  }));
}

/** Consumer-side decode, then the worker's batch: the timed unit of work. */
async function runStream(batches: EncodedBatch[], loaded: LoadedModel[]): Promise<void> {
  const worker = new Worker({
    tickMs: 100,
    deltaMs: 500,
    s3: nullS3,
    lakeBucket: 'bench',
    models: () => loaded,
    writeLatest: async () => {},
    // The market's time is not the wall clock's: no latency figure (a 0 clock printed minus the epoch).
    now: () => Number.NaN,
    log: () => {},
  });
  for (const b of batches) {
    const records = b.records.map((r) => {
      const decoded = decodeRecord(r.data);
      return { sequenceNumber: r.sequenceNumber, product: decoded.product, events: decoded.events };
    });
    await worker.handleBatch({ shardId: b.shardId, records });
  }
  await worker.close();
}

async function throughput(loaded: LoadedModel[]): Promise<BenchResult> {
  const seconds = 1800;
  const warmUp = encodeBatches(
    simStream({ seed: 4, products: PRODUCTS, seconds: 120, snapshotEveryMs: 60_000 }),
  );
  const batches = encodeBatches(simStream({ seed: 3, products: PRODUCTS, seconds, snapshotEveryMs: 60_000 }));
  const records = batches.reduce((n, b) => n + b.records.length, 0);
  const bytes = batches.reduce((n, b) => n + b.records.reduce((m, r) => m + r.data.length, 0), 0);
  await runStream(warmUp, loaded);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await runStream(batches, loaded);
  const wallS = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  return {
    name: 'worker.realtime_multiple',
    value: Math.round(seconds / wallS),
    unit: 'x',
    context: {
      ...machineContext(),
      simulatedSeconds: seconds,
      products: PRODUCTS,
      records,
      recordBytes: bytes,
      wallS,
      cpuS,
      cpuRealtimeMultiple: Math.round(seconds / cpuS),
      models: loaded.length,
      note: 'record decode + dedup (once, in the worker) + book + features + labels + onnxruntime + quality + Parquet encoding of all zones; S3/DynamoDB stubbed; after a warm-up stream',
    },
  };
}

async function inference(loaded: LoadedModel[]): Promise<BenchResult[]> {
  // A tick of L2 products runs each target's l2 model once (the ticker models score only ticker-only products).
  const scoring = loaded.filter((m) => m.featureSet === 'l2');
  const perTick = async (ticks: number, iterations: number) => {
    const n = ticks * PRODUCTS.length;
    const inputs = scoring.map((m) =>
      Float32Array.from({ length: n * m.spec.features.length }, (_, i) => Math.sin(i)),
    );
    const sample = new Float64Array(iterations);
    for (let i = 0; i < 200; i++) for (const [k, m] of scoring.entries()) await m.predict(inputs[k]!, n); // warm-up
    for (let i = 0; i < iterations; i++) {
      const t = performance.now();
      for (const [k, m] of scoring.entries()) await m.predict(inputs[k]!, n);
      sample[i] = ((performance.now() - t) * 1000) / ticks;
    }
    return sample;
  };
  const single = await perTick(1, 5000);
  const batched = await perTick(100, 300);
  const context = {
    ...machineContext(),
    models: scoring.map((m) => `${m.target}@${m.version}`),
    products: PRODUCTS.length,
    features: scoring.map((m) => m.spec.features.length),
  };
  return [
    {
      name: 'inference.tick_p99_us',
      value: quantile(single, 0.99),
      unit: 'µs',
      context: {
        ...context,
        median: quantile(single, 0.5),
        mode: 'one run per model per tick (rows = products)',
      },
    },
    {
      name: 'inference.batched_tick_p99_us',
      value: quantile(batched, 0.99),
      unit: 'µs',
      context: {
        ...context,
        median: quantile(batched, 0.5),
        mode: 'one run per model per 100 ticks, per tick',
      },
    },
  ];
}

function parquet(): BenchResult {
  const spec = featureSpec(100);
  const n = 100_000;
  const rows: FeatureRow[] = Array.from({ length: n }, (_, i) => ({
    product: PRODUCTS[i % 2]!,
    tsUs: 1_700_000_000_000_000 + i * 100_000,
    seq: i,
    bestBid: '65000.01',
    bestAsk: '65000.02',
    mid: 65000.015,
    spread: 0.01,
    values: Float64Array.from(spec.features, (_, f) => Math.sin(i + f)),
  }));
  const t = performance.now();
  let bytes = 0;
  for (let i = 0; i < n; i += 600) bytes += encodeFeatureRows(rows.slice(i, i + 600), spec).byteLength;
  const s = (performance.now() - t) / 1000;
  return {
    name: 'lake.parquet_mb_per_s',
    value: bytes / 1e6 / s,
    unit: 'MB/s',
    context: {
      ...machineContext(),
      rows: n,
      rowsPerObject: 600,
      columns: 7 + spec.features.length,
      bytes,
      codec: 'SNAPPY',
    },
  };
}

/**
 * Exchange time -> DynamoDB ack, observed from outside the worker process. The worker only logs p50/p99 per
 * 10 s window (about 16 samples/s for two products, so a window's p99 is its second-highest sample), and window
 * quantiles cannot be pooled. So the worker's DynamoDB endpoint is a pass-through HTTP tap in this process: for
 * every latest item (PutItem with sk "latest"; history rows and status items follow their own cadences) it records
 * the time dynalite's response is in minus the snapshot's watermark (updatedAtMs - latencyMs, the exchange time of the newest event the worker
 * had). It differs from the worker's own onLatestAck figure by the loopback hop through the tap (which every
 * DynamoDB call of the run pays) and, the other way, by the worker's own delay in taking the response; the
 * worker's window reports over the same span are kept in the context as a cross-check and per-window spread.
 * Method: LATENCY_PRODUCTS realtime simulator products -> ingestor -> kinesalite -> worker -> tap -> dynalite;
 * samples start after the worker's first 10 s report (start-up catch-up from TRIM_HORIZON) and run for
 * LATENCY_WINDOWS worker reports (70 s); p50/p99 are over ALL samples of the span, nothing dropped or chosen.
 */
const LATENCY_PRODUCTS = ['BTC-USD', 'ETH-USD', 'SOL-USD', 'AVAX-USD'];
/** Worker reports are 10 s apart: 70 s, about 2,300 samples with four products. */
const LATENCY_WINDOWS = 7;

/** Simulator (realtime) -> ingestor -> kinesalite -> worker -> dynalite, every snapshot's ack through the tap. */
async function endToEnd(): Promise<BenchResult[]> {
  const simPort = await freePort();
  const sim = await startSimulator({
    port: simPort,
    seed: 5,
    products: productSpecs(LATENCY_PRODUCTS),
    mode: 'realtime',
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-'));
  const dynamoPort = await freePort();
  const tap = await dynamoTap(dynamoPort);
  const system = await startSystem({
    dataDir,
    freePorts: true,
    ports: { dynamodb: dynamoPort },
    quiet: true,
    components: ['ingestor', 'worker'],
    env: {
      FEED_URL: `ws://127.0.0.1:${simPort}`,
      SYMBOLS: LATENCY_PRODUCTS.join(','),
      AWS_ENDPOINT_URL_DYNAMODB: tap.url,
    },
  });
  try {
    const isReport = (l: string) => l.includes('"message":"latency"');
    // The first 10 s report includes start-up (catching up from TRIM_HORIZON): record from just after it.
    await system.waitForLog('worker', isReport, 90_000);
    const firstLog = system.logs('worker').length;
    tap.recording = true;
    const t0 = Date.now();
    const cpu0 = cpuSeconds();
    // Until the worker's LATENCY_WINDOWS-th report from here: the tap's span and the worker's windows coincide.
    for (let i = 0; i < LATENCY_WINDOWS; i++) await system.waitForLog('worker', isReport, 30_000);
    tap.recording = false;
    const spanS = (Date.now() - t0) / 1000;
    const cpu1 = cpuSeconds();
    const windows = system
      .logs('worker')
      .slice(firstLog)
      .filter(isReport)
      .map((l) => {
        const { n, p50Ms, p99Ms, maxMs } = JSON.parse(l.slice(l.indexOf('{')));
        return { n, p50Ms, p99Ms, maxMs };
      });
    const s = Float64Array.from(tap.samples);
    const context = {
      ...machineContext(),
      products: LATENCY_PRODUCTS,
      spanS,
      samples: s.length,
      maxMs: Math.max(...s),
      slowest: tap.samples
        .map((ms, i) => ({ atS: Math.round((tap.times[i]! - t0) / 100) / 10, ms: Math.round(ms) }))
        .sort((a, b) => b.ms - a.ms)
        .slice(0, 8),
      windowP99sMs: windows.map((w) => w.p99Ms),
      workerWindows: windows,
      cpuPercent: Object.fromEntries(
        Object.keys(cpu1).map((k) => [k, Math.round(((cpu1[k]! - (cpu0[k] ?? 0)) / spanS) * 1000) / 10]),
      ),
      consumer: startConfig(system.logs('worker')),
      // The supervisor's local settings, where the caller's environment does not override them.
      localTuning: Object.fromEntries(Object.entries(LOCAL_TUNING).map(([k, v]) => [k, process.env[k] ?? v])),
      note: "exchange time of the newest event -> the latest item's put acked, every latest item of the span (HTTP tap in front of dynalite, one extra loopback hop); workerWindows: the worker's own 10 s reports over the span",
    };
    return [
      { name: 'latency.exchange_to_ddb_p50_ms', value: quantile(s, 0.5), unit: 'ms', context },
      { name: 'latency.exchange_to_ddb_p99_ms', value: quantile(s, 0.99), unit: 'ms', context },
    ];
  } finally {
    await system.stop();
    await sim.close();
    await tap.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The worker's read mode and idle pause as it logged them at start. */
function startConfig(lines: string[]): Record<string, unknown> {
  const start = lines.find((l) => l.includes('"message":"worker starting"'));
  const c = start ? JSON.parse(start.slice(start.indexOf('{'))) : {};
  return { mode: c.mode, pollIdleMs: c.pollIdleMs };
}

const CHILD_LABELS: [RegExp, string][] = [
  [/kinesalite/, 'kinesalite'],
  [/dynalite/, 'dynalite'],
  [/s3rver/, 's3rver'],
  [/containers\/worker\//, 'worker'],
  [/containers\/ingestor\//, 'ingestor'],
];

/** CPU seconds so far of this process (simulator + tap) and of its emulator and component children. */
function cpuSeconds(): Record<string, number> {
  const own = process.cpuUsage();
  return { bench: (own.user + own.system) / 1e6, ...cpuByLabel(CHILD_LABELS) };
}

export const workerGroup: BenchGroup = {
  name: 'worker',
  description: 'worker throughput, inference per tick, exchange -> DynamoDB latency, Parquet rate',
  async run() {
    const loaded = await models();
    try {
      return [await throughput(loaded), ...(await inference(loaded)), parquet(), ...(await endToEnd())];
    } finally {
      for (const m of loaded) await m.release();
    }
  },
};
