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
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import { exportLogisticOnnx } from '../models/export/onnx.js';
import { featureSpec } from '../src/features/spec.js';
import type { FeatureRow } from '../src/features/types.js';
import { freePort } from '../src/local/ports.js';
import { startSystem } from '../src/local/supervisor.js';
import { loadModel } from '../src/model/runtime.js';
import { type LoadedModel, TARGETS } from '../src/model/types.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { startSimulator } from '../src/simulator/server.js';
import { encodeFeatureRows } from '../src/storage/parquet.js';
import { decodeRecord, encodeRecord } from '../src/stream/record.js';
import type { ShardBatch } from '../src/worker/consumer.js';
import { simStream } from '../src/worker/simStream.js';
import { Worker } from '../src/worker/worker.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';

const PRODUCTS = ['BTC-USD', 'ETH-USD'];

/** One logistic model per target over the code's feature spec (what the trainer exports). */
async function models(): Promise<LoadedModel[]> {
  const spec = featureSpec(100);
  const F = spec.features.length;
  return Promise.all(
    TARGETS.map((target) =>
      loadModel(
        exportLogisticOnnx(
          {
            weights: Array.from({ length: F }, (_, i) => ((i % 7) - 3) / 10),
            bias: -1,
            mean: Array(F).fill(0),
            std: Array(F).fill(1),
          },
          spec,
        ),
        spec,
        { target, version: `bench-${target}` },
      ),
    ),
  );
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
    models: () => loaded.map((model) => ({ model })),
    writeLatest: async () => {},
    now: () => 0,
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
  const F = featureSpec(100).features.length;
  const perTick = async (ticks: number, iterations: number) => {
    const n = ticks * PRODUCTS.length;
    const rows = Float32Array.from({ length: n * F }, (_, i) => Math.sin(i));
    const sample = new Float64Array(iterations);
    for (let i = 0; i < 200; i++) for (const m of loaded) await m.predict(rows, n); // warm-up
    for (let i = 0; i < iterations; i++) {
      const t = performance.now();
      for (const m of loaded) await m.predict(rows, n);
      sample[i] = ((performance.now() - t) * 1000) / ticks;
    }
    return sample;
  };
  const single = await perTick(1, 5000);
  const batched = await perTick(100, 300);
  const context = {
    ...machineContext(),
    models: loaded.map((m) => m.target),
    products: PRODUCTS.length,
    features: F,
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

/** Simulator (realtime) -> ingestor -> kinesalite -> worker -> dynalite, from the worker's 'latency' log lines. */
async function endToEnd(): Promise<BenchResult[]> {
  const simPort = await freePort();
  const sim = await startSimulator({
    port: simPort,
    seed: 5,
    products: productSpecs(PRODUCTS),
    mode: 'realtime',
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-'));
  const system = await startSystem({
    dataDir,
    freePorts: true,
    quiet: true,
    components: ['ingestor', 'worker'],
    env: { FEED_URL: `ws://127.0.0.1:${simPort}`, SYMBOLS: PRODUCTS.join(',') },
  });
  try {
    const reports: { n: number; p50Ms: number; p99Ms: number }[] = [];
    // The first 10 s report includes start-up (catching up from TRIM_HORIZON): keep the next two.
    for (let i = 0; i < 3; i++) {
      const line = await system.waitForLog('worker', (l) => l.includes('"msg":"latency"'), 60_000);
      reports.push(JSON.parse(line.slice(line.indexOf('{'))));
    }
    const steady = reports.slice(1);
    const context = {
      ...machineContext(),
      windows: steady,
      note: 'exchange time of the newest event -> DynamoDB put ack',
    };
    return [
      {
        name: 'latency.exchange_to_ddb_p50_ms',
        value: Math.max(...steady.map((r) => r.p50Ms)),
        unit: 'ms',
        context,
      },
      {
        name: 'latency.exchange_to_ddb_p99_ms',
        value: Math.max(...steady.map((r) => r.p99Ms)),
        unit: 'ms',
        context,
      },
    ];
  } finally {
    await system.stop();
    await sim.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
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
