/**
 * Readers of recorded feeds, all yielding the archive's shape `{ recvUs, conn, frame }` (frame = the raw text
 * the exchange sent) in file order:
 * - archive:    our own raw archive (src/ingest/archive.ts), `{"recvUs","conn","frame"}` per line;
 * - cryptofeed: cryptofeed-style Advanced Trade recordings, `{"t":"recv","conn","ts":<epoch s>,"data"}` lines
 *               (header, http, connect and send lines are skipped);
 * - exchange:   legacy Exchange recordings, `<epoch s>: <json>` per received frame (`... <- ` sent frames and
 *               `... <-> ` connection lines are skipped; each connection line starts a new conn);
 * - volatility: `{"ingest_time","product_id","payload"}` with `payload` a raw Advanced Trade frame (object or
 *               string); ingest_time an ISO time or epoch seconds/ms/µs.
 * Files may be gzip (detected by content, not name).
 */

import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { QuoteWatchError } from '../errors.js';
import type { ArchivedFrame } from '../ingest/archive.js';
import { isoToMicros } from '../marketdata/events.js';

export const RECORDING_FORMATS = ['archive', 'cryptofeed', 'exchange', 'volatility'] as const;
export type RecordingFormat = (typeof RECORDING_FORMATS)[number];

export class RecordingFormatError extends QuoteWatchError {
  constructor(
    readonly path: string,
    readonly line: number,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}${line > 0 ? `:${line}` : ''}: ${message}`, options);
  }
}

async function isGzip(path: string): Promise<boolean> {
  const file = await open(path, 'r');
  try {
    const { buffer, bytesRead } = await file.read(Buffer.alloc(2), 0, 2, 0);
    return bytesRead === 2 && buffer[0] === 0x1f && buffer[1] === 0x8b;
  } finally {
    await file.close();
  }
}

async function* lines(path: string): AsyncGenerator<string> {
  // Checked before the stream opens: a missing file then fails here, not as an unhandled stream error.
  const gzip = await isGzip(path);
  let input: Readable = createReadStream(path);
  if (gzip) input = input.pipe(createGunzip());
  // readline copes with multi-megabyte lines (a BTC-USD snapshot is ~5 MB).
  yield* createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
}

/** "1618677817.061845" -> 1618677817061845, exactly (no float rounding). */
export function secondsToMicros(text: string): number {
  const m = /^(\d+)(?:\.(\d{1,9}))?$/.exec(text.trim());
  if (!m) throw new Error(`not epoch seconds: ${JSON.stringify(text)}`);
  const frac = (m[2] ?? '').padEnd(6, '0');
  return Number(m[1]) * 1e6 + Math.round(Number(`${frac.slice(0, 6)}.${frac.slice(6) || '0'}`));
}

/** Epoch seconds, ms or µs by magnitude (recordings use all three), or an ISO time. */
export function anyTimeToMicros(v: unknown): number {
  if (typeof v === 'string' && /^\d+(\.\d+)?$/.test(v)) return anyTimeToMicros(Number(v));
  if (typeof v === 'string') return isoToMicros(v);
  if (typeof v === 'number' && Number.isFinite(v) && v > 0) {
    if (v < 1e11) return Math.round(v * 1e6);
    if (v < 1e14) return Math.round(v * 1e3);
    return Math.round(v);
  }
  throw new Error(`not a time: ${JSON.stringify(v)}`);
}

/** The format of a recording, from its first line. */
export async function detectFormat(path: string): Promise<RecordingFormat> {
  for await (const line of lines(path)) {
    const text = line.trim();
    if (!text) continue;
    if (/^\d+(\.\d+)?: /.test(text) || /^wss?:\/\//.test(text)) return 'exchange';
    let first: Record<string, unknown>;
    try {
      first = JSON.parse(text) as Record<string, unknown>;
    } catch (cause) {
      throw new RecordingFormatError(path, 1, 'first line is neither JSON nor `<epoch>: <json>`', { cause });
    }
    if ('recvUs' in first && 'frame' in first) return 'archive';
    if ('t' in first) return 'cryptofeed';
    if ('ingest_time' in first && 'payload' in first) return 'volatility';
    throw new RecordingFormatError(
      path,
      1,
      `unknown recording format (keys: ${Object.keys(first).join(', ')})`,
    );
  }
  throw new RecordingFormatError(path, 0, 'the recording is empty');
}

type LineParser = (text: string) => ArchivedFrame | undefined;

function parser(format: RecordingFormat): LineParser {
  switch (format) {
    case 'archive':
      return (text) => {
        const o = JSON.parse(text) as Partial<ArchivedFrame>;
        if (typeof o.recvUs !== 'number' || typeof o.frame !== 'string' || typeof o.conn !== 'string')
          throw new Error('expected {"recvUs": number, "conn": string, "frame": string}');
        return { recvUs: o.recvUs, conn: o.conn, frame: o.frame };
      };
    case 'cryptofeed':
      return (text) => {
        const o = JSON.parse(text) as { t?: unknown; conn?: unknown; ts?: unknown; data?: unknown };
        if (o.t !== 'recv') return undefined;
        if (typeof o.data !== 'string') throw new Error('recv line without string "data"');
        return { recvUs: anyTimeToMicros(o.ts), conn: String(o.conn ?? 'cryptofeed'), frame: o.data };
      };
    case 'exchange': {
      let conn = 0;
      return (text) => {
        if (/^wss?:\/\/\S+ <-> /.test(text)) {
          conn++;
          return undefined;
        }
        if (/^wss?:\/\/\S+ <- /.test(text)) return undefined;
        const colon = text.indexOf(': ');
        if (colon < 0) throw new Error('expected `<epoch seconds>: <json>`');
        return {
          recvUs: secondsToMicros(text.slice(0, colon)),
          conn: `exchange.${conn}`,
          frame: text.slice(colon + 2),
        };
      };
    }
    case 'volatility':
      return (text) => {
        const o = JSON.parse(text) as { ingest_time?: unknown; payload?: unknown };
        if (o.payload === undefined || o.payload === null) throw new Error('line without "payload"');
        const frame = typeof o.payload === 'string' ? o.payload : JSON.stringify(o.payload);
        return { recvUs: anyTimeToMicros(o.ingest_time), conn: 'volatility', frame };
      };
  }
}

/** Every received frame of a recording, in file order. A bad line fails with RecordingFormatError naming it. */
export async function* readRecording(
  path: string,
  format: RecordingFormat | 'auto' = 'auto',
): AsyncGenerator<ArchivedFrame> {
  const parse = parser(format === 'auto' ? await detectFormat(path) : format);
  let n = 0;
  for await (const line of lines(path)) {
    n++;
    const text = line.trim();
    if (!text) continue;
    let frame: ArchivedFrame | undefined;
    try {
      frame = parse(text);
    } catch (cause) {
      throw new RecordingFormatError(path, n, `bad line: ${(cause as Error).message}`, { cause });
    }
    if (frame) yield frame;
  }
}
