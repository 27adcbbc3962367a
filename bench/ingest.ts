/**
 * ingest.*: the ingestor's hot path, measured on the real Advanced Trade capture (skipped with a note when
 * ../shared/data/coinbase is absent) and on a long simulator stream.
 * - parse_ratio_vs_json_parse / frames_per_s: parse -> map -> normalize (mapAdvancedTradeFrame) against bare
 *   JSON.parse of the same frames, interleaved repetitions, medians.
 * - snapshot_block_ms: longest event-loop block while the capture's 5 MB BTC-USD snapshot arrives over a real
 *   WebSocket (server in a child process, so its sending does not count) and goes through
 *   mapAdvancedTradeFrameAsync, as the ingestor does.
 * - producer_records_per_s / producer_bytes_per_s: KinesisProducer into kinesalite (fresh temp dir, free ports).
 * - rss_mb: peak resident memory of this process over the group.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateStreamCommand, waitUntilStreamExists } from '@aws-sdk/client-kinesis';
import WebSocket from 'ws';
import { kinesisClient } from '../src/aws/clients.js';
import { KinesisProducer } from '../src/ingest/producer.js';
import { startEmulators } from '../src/local/emulators.js';
import {
  FEED_PRODUCT,
  type MappedFrame,
  mapAdvancedTradeFrame,
  mapAdvancedTradeFrameAsync,
} from '../src/marketdata/advancedTrade.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { eventKey, type StreamEvent } from '../src/stream/record.js';
import { absentNote, capture, receivedFrames } from '../test/support/captureFiles.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const CAPTURE = capture('advancedTrade');
const SIM_SEED = 20_240_601;
const SIM_MINUTES = 10;
const REPS = 7;
const SNAPSHOT_REPS = 5;
const PRODUCER_REPS = 3;
const PRODUCER_EVENTS = 20_000;
const SMALL_RECORD_BYTES = 16 * 1024;

interface Frame {
  raw: string;
  recvUs: number;
}

const median = (xs: number[]) => quantile([...xs], 0.5);
const round = (x: number, digits = 3) => Number(x.toPrecision(digits));

async function loadCapture(): Promise<Frame[]> {
  return (await receivedFrames(CAPTURE)).map((f) => ({ raw: f.frame, recvUs: f.recvUs }));
}

/** The simulator's frames for SIM_MINUTES of all channels, rendered without a socket (fast mode). */
function simulatorFrames(): Frame[] {
  const startUs = seedEpochUs(SIM_SEED);
  const session = new Session(DEFAULT_PRODUCTS, SIM_SEED, startUs);
  const ids = DEFAULT_PRODUCTS.map((p) => p.productId);
  const frames: Frame[] = [];
  for (const channel of ['level2', 'market_trades', 'ticker', 'heartbeats']) {
    const subscribe = JSON.stringify({ type: 'subscribe', channel, product_ids: ids });
    for (const f of session.handleMessage(subscribe)) frames.push({ raw: f.text, recvUs: session.timeUs });
  }
  const endUs = startUs + SIM_MINUTES * 60_000_000;
  for (let t = startUs; t < endUs; t += 1_000_000) {
    for (const f of session.advanceTo(Math.min(t + 1_000_000, endUs))) {
      frames.push({ raw: f.text, recvUs: session.timeUs });
    }
  }
  return frames;
}

/** Milliseconds for fn over every frame. */
function timeAll(frames: Frame[], fn: (f: Frame) => unknown): number {
  const t0 = performance.now();
  let sink = 0;
  for (const f of frames) sink += fn(f) === undefined ? 0 : 1;
  const ms = performance.now() - t0;
  if (sink !== frames.length) throw new Error('a frame produced nothing'); // keeps the work observable
  return ms;
}

interface Throughput {
  ratio: number;
  framesPerS: number;
  jsonFramesPerS: number;
  mbPerS: number;
}

/** Interleaved JSON.parse and full-map passes after a warm-up; medians of REPS. */
function throughput(frames: Frame[]): Throughput {
  const bytes = frames.reduce((n, f) => n + f.raw.length, 0);
  const parse = (f: Frame) => JSON.parse(f.raw) as unknown;
  const map = (f: Frame) => mapAdvancedTradeFrame(f.raw, f.recvUs);
  timeAll(frames, parse);
  timeAll(frames, map);
  const ratios: number[] = [];
  const mapMs: number[] = [];
  const parseMs: number[] = [];
  for (let i = 0; i < REPS; i++) {
    const p = timeAll(frames, parse);
    const m = timeAll(frames, map);
    parseMs.push(p);
    mapMs.push(m);
    ratios.push(p / m);
  }
  const m = median(mapMs);
  return {
    ratio: median(ratios),
    framesPerS: frames.length / (m / 1000),
    jsonFramesPerS: frames.length / (median(parseMs) / 1000),
    mbPerS: bytes / 1e6 / (m / 1000),
  };
}

/** Serves the capture's largest frame to every "go" message; runs in a child so sending costs us nothing. */
const SERVER_SCRIPT = `
const { WebSocketServer } = require('ws');
const { readFileSync } = require('node:fs');
const { gunzipSync } = require('node:zlib');
let big = '';
for (const line of gunzipSync(readFileSync(process.argv[1])).toString('utf8').split('\\n')) {
  if (!line) continue;
  const rec = JSON.parse(line);
  if (rec.t === 'recv' && rec.data.length > big.length) big = rec.data;
}
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
wss.on('listening', () => console.log(JSON.stringify({ port: wss.address().port, bytes: big.length })));
wss.on('connection', (ws) => ws.on('message', () => ws.send(big)));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

interface BlockFigures {
  asyncMs: number[];
  syncMs: number[];
  histogramMaxMs: number[];
  frameBytes: number;
}

/** Longest gap between 1 ms interval ticks while a snapshot is received and mapped, per repetition. */
async function snapshotBlocks(): Promise<BlockFigures> {
  const server = spawn(process.execPath, ['-e', SERVER_SCRIPT, CAPTURE.path], {
    cwd: REPO,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  try {
    const first = await new Promise<string>((resolve, reject) => {
      server.once('error', reject);
      server.once('exit', (code) => reject(new Error(`snapshot server exited with ${code}`)));
      createInterface({ input: server.stdout! }).once('line', resolve);
    });
    const { port, bytes } = JSON.parse(first) as { port: number; bytes: number };
    const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });

    const once = async (mapper: (raw: string, recvUs: number) => Promise<MappedFrame> | MappedFrame) => {
      const histogram = monitorEventLoopDelay({ resolution: 1 });
      let last = performance.now();
      let maxGap = 0;
      const probe = setInterval(() => {
        const now = performance.now();
        maxGap = Math.max(maxGap, now - last);
        last = now;
      }, 1);
      await new Promise((r) => setTimeout(r, 50)); // let the probe settle
      maxGap = 0;
      histogram.enable();
      const mapped = new Promise<MappedFrame>((resolve, reject) => {
        // Exactly what the feed connection does with a text frame, then the mapper.
        ws.once('message', (data: WebSocket.RawData) => {
          const raw = Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString();
          Promise.resolve(mapper(raw, Date.now() * 1000)).then(resolve, reject);
        });
      });
      ws.send('go');
      const m = await mapped;
      await new Promise((r) => setTimeout(r, 20)); // the tick after the last slice
      clearInterval(probe);
      histogram.disable();
      if (m.events[0]?.type !== 'book_snapshot') throw new Error('expected the snapshot frame');
      return { gap: maxGap, histogramMax: histogram.max / 1e6 };
    };

    const figures: BlockFigures = { asyncMs: [], syncMs: [], histogramMaxMs: [], frameBytes: bytes };
    await once((raw, us) => mapAdvancedTradeFrameAsync(raw, us)); // warm-up
    await once(mapAdvancedTradeFrame);
    for (let i = 0; i < SNAPSHOT_REPS; i++) {
      const a = await once((raw, us) => mapAdvancedTradeFrameAsync(raw, us));
      figures.asyncMs.push(a.gap);
      figures.histogramMaxMs.push(a.histogramMax);
      figures.syncMs.push((await once(mapAdvancedTradeFrame)).gap);
    }
    ws.close();
    return figures;
  } finally {
    server.stdin?.end();
    server.kill();
  }
}

/** The stream events the ingestor would publish for these frames (snapshots go to S3, heartbeats nowhere). */
function streamEvents(frames: Frame[], limit: number): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const f of frames) {
    const m = mapAdvancedTradeFrame(f.raw, f.recvUs);
    for (const e of m.events) {
      if (e.type === 'book_snapshot' || e.type === 'heartbeat' || e.product === FEED_PRODUCT) continue;
      out.push({ ...e, id: eventKey(e, 'bench') });
      if (out.length === limit) return out;
    }
  }
  return out;
}

interface ProducerFigures {
  recordsPerS: number;
  bytesPerS: number;
  eventsPerS: number;
  events: number;
  records: number;
}

/**
 * Events pushed as fast as put() accepts them. With default options a burst aggregates into ~1 MiB records, so
 * records/s is low and bytes/s high; a second series caps records at SMALL_RECORD_BYTES (about what a live
 * feed's 50 ms linger produces) to show the records/s the producer and the emulator sustain.
 */
async function producerThroughput(
  events: StreamEvent[],
): Promise<{ burst: ProducerFigures[]; small: ProducerFigures[] }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-ingest-'));
  const emulators = await startEmulators({ dataDir });
  try {
    const client = kinesisClient(emulators.env);
    const burst: ProducerFigures[] = [];
    const small: ProducerFigures[] = [];
    // One warm-up run, then the measured ones alternating between the two series, each into a fresh stream.
    for (let run = 0; run <= 2 * PRODUCER_REPS; run++) {
      const streamName = `bench-ingest-${run}`;
      await client.send(new CreateStreamCommand({ StreamName: streamName, ShardCount: 2 }));
      await waitUntilStreamExists({ client, maxWaitTime: 30, minDelay: 1 }, { StreamName: streamName });
      const runs = run % 2 === 1 ? burst : small;
      const producer = new KinesisProducer({
        client,
        streamName,
        // What the producer and the emulator sustain, not the per-shard rate limit (that one is a set figure,
        // 90% of a shard's quota, and tested in test/ingest.producer.rate.test.ts).
        maxRecordsPerS: Number.MAX_SAFE_INTEGER,
        maxBytesPerS: Number.MAX_SAFE_INTEGER,
        ...(runs === small ? { maxRecordBytes: SMALL_RECORD_BYTES } : {}),
      });
      const t0 = performance.now();
      for (const e of events) await producer.put(e);
      await producer.close();
      const s = (performance.now() - t0) / 1000;
      const stats = producer.stats();
      if (stats.events !== events.length)
        throw new Error(`producer acknowledged ${stats.events} of ${events.length}`);
      if (run > 0) {
        runs.push({
          recordsPerS: stats.records / s,
          bytesPerS: stats.bytes / s,
          eventsPerS: stats.events / s,
          events: stats.events,
          records: stats.records,
        });
      }
    }
    client.destroy();
    return { burst, small };
  } finally {
    await emulators.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

export const ingestGroup: BenchGroup = {
  name: 'ingest',
  description:
    'parse -> map -> normalize vs JSON.parse, snapshot event-loop block over a real WebSocket, producer into kinesalite',
  async run() {
    const machine = machineContext();
    const results: BenchResult[] = [];
    const sim = simulatorFrames();
    const simT = throughput(sim);
    const simContext = {
      frames: sim.length,
      simulatedMinutes: SIM_MINUTES,
      frames_per_s: Math.round(simT.framesPerS),
      json_parse_frames_per_s: Math.round(simT.jsonFramesPerS),
      ratio: round(simT.ratio),
    };

    if (CAPTURE.present) {
      const frames = await loadCapture();
      const cap = throughput(frames);
      const small = throughput(frames.filter((f) => f.raw.length < 1_000_000));
      const context = {
        ...machine,
        input: 'advanced-trade-btc-eth-2026-08-09 capture',
        frames: frames.length,
        reps: REPS,
        json_parse_frames_per_s: Math.round(cap.jsonFramesPerS),
        mb_per_s: round(cap.mbPerS),
        capture_without_snapshots_ratio: round(small.ratio),
        simulator: simContext,
      };
      results.push(
        { name: 'ingest.parse_ratio_vs_json_parse', value: round(cap.ratio), unit: 'ratio', context },
        { name: 'ingest.frames_per_s', value: Math.round(cap.framesPerS), unit: 'frames/s', context },
      );
      const blocks = await snapshotBlocks();
      // The floor of any block: one JSON.parse of the whole frame (it cannot be sliced).
      const biggest = frames.reduce((a, b) => (b.raw.length > a.raw.length ? b : a));
      const parseMs = Array.from({ length: SNAPSHOT_REPS + 1 }, () =>
        timeAll([biggest], (f) => JSON.parse(f.raw)),
      );
      results.push({
        name: 'ingest.snapshot_block_ms',
        value: round(median(blocks.asyncMs)),
        unit: 'ms',
        context: {
          ...machine,
          how: 'BTC-USD snapshot frame over loopback ws (server in a child process) -> mapAdvancedTradeFrameAsync; longest gap between 1 ms interval ticks, median of reps',
          frameBytes: blocks.frameBytes,
          reps: SNAPSHOT_REPS,
          async_max_ms: round(Math.max(...blocks.asyncMs)),
          event_loop_delay_histogram_max_ms: round(median(blocks.histogramMaxMs)),
          json_parse_of_frame_median_ms: round(median(parseMs.slice(1))),
          sync_mapper_median_ms: round(median(blocks.syncMs)),
          sync_mapper_max_ms: round(Math.max(...blocks.syncMs)),
        },
      });
    } else {
      console.log(
        absentNote(CAPTURE, 'the ingest capture figures (parse ratio from the simulator stream instead)'),
      );
      const context = { ...machine, input: 'simulator stream (capture absent)', ...simContext };
      results.push(
        { name: 'ingest.parse_ratio_vs_json_parse', value: round(simT.ratio), unit: 'ratio', context },
        { name: 'ingest.frames_per_s', value: Math.round(simT.framesPerS), unit: 'frames/s', context },
      );
    }

    const events = streamEvents(sim, PRODUCER_EVENTS);
    const { burst: runs, small } = await producerThroughput(events);
    const producerContext = {
      ...machine,
      input: `${events.length} simulator stream events per run as fast as put() accepts them, 2-shard stream in kinesalite, default producer options (records aggregate to ~1 MiB)`,
      reps: PRODUCER_REPS,
      events_per_s: Math.round(median(runs.map((r) => r.eventsPerS))),
      records_per_run: runs.map((r) => r.records),
      records_per_s_with_16KiB_records: Math.round(median(small.map((r) => r.recordsPerS))),
      bytes_per_s_with_16KiB_records: Math.round(median(small.map((r) => r.bytesPerS))),
      events_per_s_with_16KiB_records: Math.round(median(small.map((r) => r.eventsPerS))),
    };
    results.push(
      {
        name: 'ingest.producer_records_per_s',
        value: Math.round(median(runs.map((r) => r.recordsPerS))),
        unit: 'records/s',
        context: producerContext,
      },
      {
        name: 'ingest.producer_bytes_per_s',
        value: Math.round(median(runs.map((r) => r.bytesPerS))),
        unit: 'bytes/s',
        context: producerContext,
      },
      {
        name: 'ingest.rss_mb',
        value: Math.round(process.resourceUsage().maxRSS / 1024),
        unit: 'MB',
        context: {
          ...machine,
          how: 'peak resident set size of the bench process (process.resourceUsage().maxRSS)',
        },
      },
    );
    return results;
  },
};
