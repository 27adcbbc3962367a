/**
 * `quotewatch replay`: a recording through the live ingest path. A replay server (server.ts) plays the
 * recording over a loopback WebSocket and an in-process Ingestor (src/ingest/ingestor.ts, the class the
 * ingestor container runs) connects to it and publishes into Kinesis (snapshots to S3) as it would live.
 * Deterministic: the ingestor's periodic snapshots follow the recording's exchange time, not the wall clock,
 * so a replay at any speed puts them at the same places of the stream as the live run did.
 */

import { kinesisClient, s3Client } from '../aws/clients.js';
import { sleep } from '../clock.js';
import { readFeedConfig, readResourceNames } from '../config.js';
import { Ingestor, newSession } from '../ingest/ingestor.js';
import { KinesisProducer } from '../ingest/producer.js';
import { describeError, type Logger } from '../log.js';
import { SnapshotStore } from '../stream/claimCheck.js';
import { replayNamespace } from '../stream/record.js';
import { detectFormat, type RecordingFormat, readRecording } from './readers.js';
import { ReplayError, type ReplaySpeed, startReplayServer } from './server.js';

type Env = Record<string, string | undefined>;

export interface ReplayOptions {
  path: string;
  speed: ReplaySpeed;
  format?: RecordingFormat | 'auto';
  /** AWS endpoints, credentials and resource names (STREAM_NAME, LAKE_BUCKET). */
  env: Env;
  /** Products to subscribe to; default: every product_id in the recording. */
  products?: string[];
  log: Logger;
  /** Ingestor session (the records' line); default derived from the time. */
  session?: string;
  /**
   * Id namespace of the replayed events (default: one of its own per run, replay-<session>), so a worker that saw
   * the live run applies them instead of dropping them as repeats; give the same one to make a re-run idempotent.
   */
  namespace?: string;
  /** Producer linger, ms (default 50 like the ingestor). */
  lingerMs?: number;
  /** Periodic snapshot period in exchange time; 0 disables. Default SNAPSHOT_INTERVAL_MS (30000) like live. */
  snapshotIntervalMs?: number;
}

export interface ReplaySummary {
  format: RecordingFormat;
  products: string[];
  /** Frames the server sent and the ingestor handled. */
  sent: number;
  handled: number;
  published: number;
  malformed: number;
  resyncs: number;
  session: string;
  namespace: string;
}

/** Every product_id in the recording's frames, sorted. */
export async function recordingProducts(path: string, format: RecordingFormat): Promise<string[]> {
  const products = new Set<string>();
  for await (const f of readRecording(path, format)) {
    for (const m of f.frame.matchAll(/"product_id":\s*"([A-Za-z0-9]+-[A-Za-z0-9]+)"/g)) products.add(m[1]!);
  }
  return [...products].sort();
}

export async function runReplay(o: ReplayOptions): Promise<ReplaySummary> {
  const format = !o.format || o.format === 'auto' ? await detectFormat(o.path) : o.format;
  const products = o.products ?? (await recordingProducts(o.path, format));
  if (products.length === 0) throw new ReplayError(`${o.path}: no product_id in the recording`);
  const { streamName, lakeBucket } = readResourceNames(o.env);
  const snapshotIntervalMs = o.snapshotIntervalMs ?? readFeedConfig(o.env).snapshotIntervalMs;
  const session = o.session ?? newSession();
  const server = await startReplayServer({
    frames: readRecording(o.path, format),
    speed: o.speed,
    // A volatility file is an extract (often ticker only): its sequence gaps are not the feed's.
    renumber: format === 'volatility',
  });
  const producer = new KinesisProducer({
    client: kinesisClient(o.env),
    streamName,
    lingerMs: o.lingerMs ?? 50,
    onRetry: (info) =>
      o.log('warn', 'PutRecords retry', { ...info, error: info.error && describeError(info.error) }),
  });
  let fatal: unknown;
  const ingestor = new Ingestor({
    feedUrl: server.url,
    // The legacy Exchange feed has its own mapper; every other format carries Advanced Trade frames.
    feedKind: format === 'exchange' ? 'exchange' : 'advanced',
    products,
    producer,
    snapshots: new SnapshotStore(s3Client(o.env), lakeBucket),
    log: o.log,
    session,
    namespace: o.namespace ?? replayNamespace(session),
    // A recording may be quiet for longer than a live feed ever is (an extract, a slow replay).
    silenceMs: 600_000,
    statsIntervalMs: 5000,
    snapshotIntervalMs,
    onFatal: (err) => {
      fatal = err;
    },
  });
  ingestor.start();
  let sent = 0;
  try {
    sent = await server.done;
    // Wait for the ingestor to handle what it received; give up if it makes no progress for 5 s.
    let last = -1;
    let idleSince = Date.now();
    while (ingestor.counters.frames < sent && fatal === undefined) {
      if (ingestor.counters.frames !== last) {
        last = ingestor.counters.frames;
        idleSince = Date.now();
      } else if (Date.now() - idleSince > 5000) break;
      await sleep(20);
    }
  } finally {
    await ingestor.stop().catch((err) => {
      fatal ??= err;
    });
    await server.close();
  }
  if (fatal !== undefined) throw fatal;
  const c = ingestor.counters;
  return {
    format,
    products,
    sent,
    handled: c.frames,
    published: c.published,
    malformed: c.malformed,
    resyncs: c.resyncs,
    session: ingestor.session,
    namespace: o.namespace ?? replayNamespace(session),
  };
}
