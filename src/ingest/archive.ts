/**
 * Raw frame archive: every frame exactly as received, with its receive time, one NDJSON line each:
 *   {"recvUs":<epoch µs>,"conn":"<session.connection>","frame":"<the raw frame as a JSON string>"}
 * The frame stays a string (not parsed JSON) so a replay feeds back the very bytes the exchange sent, even
 * malformed ones. src/replay/readers.ts reads this format back.
 *
 * - file: appends to one file (gzip when the name ends in .gz), for local runs;
 * - s3: collects frames into objects `archive/date=YYYY-MM-DD/hour=HH/<session>-<n>.ndjson.gz` (hour of the
 *   object's first frame, UTC), written when an object reaches a size, a frame count or an age, or the hour
 *   changes. close() writes what is left, so stopping loses nothing.
 */

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { createGzip, type Gzip, gzip } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { sleep } from '../clock.js';
import type { ArchiveConfig } from '../config.js';
import { QuoteWatchError } from '../errors.js';

const gzipAsync = promisify(gzip);

export class ArchiveError extends QuoteWatchError {}

/** One archived frame (also what the replay readers yield). */
export interface ArchivedFrame {
  recvUs: number;
  conn: string;
  frame: string;
}

/** What the ingestor needs of an archive: a non-blocking write per frame and a flushing close. */
export interface FrameArchive {
  write(conn: string, frame: string, recvUs: number): void;
  /** Writes everything pending; rejects with ArchiveError if some frames could not be stored. */
  close(): Promise<void>;
  readonly frames: number;
}

export function archiveLine(conn: string, frame: string, recvUs: number): string {
  return `${JSON.stringify({ recvUs, conn, frame })}\n`;
}

/** NDJSON (or .ndjson.gz) file, appended to. */
export class FileArchive implements FrameArchive {
  frames = 0;
  private readonly out: WriteStream;
  private readonly gz: Gzip | undefined;
  private error: Error | undefined;

  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
    this.out = createWriteStream(path, { flags: 'a' });
    this.out.on('error', (err) => {
      this.error ??= err;
    });
    if (path.endsWith('.gz')) {
      this.gz = createGzip();
      this.gz.on('error', (err) => {
        this.error ??= err;
      });
      this.gz.pipe(this.out);
    }
  }

  write(conn: string, frame: string, recvUs: number): void {
    this.frames++;
    (this.gz ?? this.out).write(archiveLine(conn, frame, recvUs));
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.out.once('close', resolve);
      (this.gz ?? this.out).end();
    });
    if (this.error) throw new ArchiveError(`could not write the archive ${this.path}`, { cause: this.error });
  }
}

export interface S3ArchiveOptions {
  s3: Pick<S3Client, 'send'>;
  bucket: string;
  session: string;
  rollBytes: number;
  rollFrames: number;
  rollMs: number;
  /** Attempts per object before close() reports it lost. Default 5. */
  attempts?: number;
  onError?: (err: ArchiveError) => void;
}

interface Chunk {
  key: string;
  lines: string[];
}

/** `archive/date=YYYY-MM-DD/hour=HH/<session>-<n>.ndjson.gz`, n zero-padded so keys sort in write order. */
export function archiveKey(session: string, firstRecvUs: number, n: number): string {
  const iso = new Date(Math.floor(firstRecvUs / 1000)).toISOString();
  return `archive/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/${session}-${String(n).padStart(6, '0')}.ndjson.gz`;
}

export class S3Archive implements FrameArchive {
  frames = 0;
  /** Objects written. */
  objects = 0;
  private current: (Chunk & { hour: number; bytes: number }) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  // Uploads run one at a time, in order; a failed chunk is kept and tried again by the next upload or close.
  private uploads: Promise<void> = Promise.resolve();
  private readonly failed: Chunk[] = [];
  private lastError: unknown;

  constructor(private readonly o: S3ArchiveOptions) {}

  write(conn: string, frame: string, recvUs: number): void {
    this.frames++;
    const hour = Math.floor(recvUs / 3_600_000_000);
    if (this.current && this.current.hour !== hour) this.roll();
    if (!this.current) {
      this.current = { key: archiveKey(this.o.session, recvUs, this.next++), lines: [], hour, bytes: 0 };
      this.timer = setTimeout(() => this.roll(), this.o.rollMs);
    }
    const line = archiveLine(conn, frame, recvUs);
    this.current.lines.push(line);
    this.current.bytes += line.length;
    if (this.current.bytes >= this.o.rollBytes || this.current.lines.length >= this.o.rollFrames) this.roll();
  }

  async close(): Promise<void> {
    this.roll();
    await this.uploads;
    if (this.failed.length > 0) {
      const lost = this.failed.reduce((n, c) => n + c.lines.length, 0);
      throw new ArchiveError(
        `${lost} frames in ${this.failed.length} archive objects could not be written to s3://${this.o.bucket}`,
        { cause: this.lastError },
      );
    }
  }

  private roll(): void {
    clearTimeout(this.timer);
    const chunk = this.current;
    this.current = undefined;
    if (chunk) this.failed.push({ key: chunk.key, lines: chunk.lines });
    const todo = this.failed.splice(0);
    if (todo.length > 0) this.uploads = this.uploads.then(() => this.upload(todo));
  }

  private async upload(chunks: Chunk[]): Promise<void> {
    for (const chunk of chunks) {
      const body = await gzipAsync(chunk.lines.join(''));
      let stored = false;
      for (let attempt = 0; attempt < (this.o.attempts ?? 5) && !stored; attempt++) {
        if (attempt > 0) await sleep(100 * 2 ** attempt);
        try {
          await this.o.s3.send(
            new PutObjectCommand({
              Bucket: this.o.bucket,
              Key: chunk.key,
              Body: body,
              // Not Content-Encoding: readers get the gzip bytes as stored, whatever their HTTP client.
              ContentType: 'application/gzip',
            }),
          );
          stored = true;
          this.objects++;
        } catch (err) {
          this.lastError = err;
        }
      }
      if (!stored) {
        this.failed.push(chunk);
        this.o.onError?.(
          new ArchiveError(`could not write s3://${this.o.bucket}/${chunk.key}`, { cause: this.lastError }),
        );
      }
    }
  }
}

/** The archive ARCHIVE asks for, or undefined when off. */
export function createArchive(
  config: ArchiveConfig,
  deps: {
    session: string;
    dataDir: string;
    s3: Pick<S3Client, 'send'>;
    bucket: string;
    onError?: (err: ArchiveError) => void;
  },
): FrameArchive | undefined {
  switch (config.mode) {
    case 'off':
      return undefined;
    case 'file':
      return new FileArchive(config.path ?? join(deps.dataDir, 'archive', `${deps.session}.ndjson.gz`));
    case 's3':
      return new S3Archive({ ...deps, ...config });
  }
}
