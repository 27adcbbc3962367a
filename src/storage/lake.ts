/**
 * The Parquet lake in S3: raw/, features/, labels/ and predictions/, partitioned as
 * `<kind>/product=<p>/date=YYYY-MM-DD/hour=HH/<shardId>-<firstSeq>-<lastSeq>-<windowStartMs>.parquet`.
 * Object boundaries come from the stream only: an object holds one product's rows whose tick falls in one
 * fixed event-time window (objectTicks ticks, dividing the hour), never a wall-clock timer, so reprocessing
 * the same stream rewrites the same object names. The window start is in the name because a quiet window
 * can repeat the previous window's seq range.
 *
 * Windows of one (kind, product) only move forward: the newest window's start is its "frontier", rows before
 * it are already in closed objects and are dropped. After a restart the frontiers are restored (restore()) and
 * the replayed stream refills the open windows, which are then written under the same names as before.
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { QuoteWatchError } from '../errors.js';
import { FEATURE_SPEC } from '../features/spec.js';
import type { FeatureRow, FeatureSpec, LabelRow } from '../features/types.js';
import {
  encodeFeatureRows,
  encodeLabelRows,
  encodePredictionRows,
  encodeRawRows,
  type PredictionRow,
  type RawRow,
} from './parquet.js';

export type LakeKind = 'raw' | 'features' | 'labels' | 'predictions';
export const LAKE_KINDS: readonly LakeKind[] = ['raw', 'features', 'labels', 'predictions'];

export class LakeWriteError extends QuoteWatchError {}

const HOUR_US = 3_600_000_000;

/** "kind|product", plus "|target" for labels (each target's labels are their own object series). */
function bufferId(kind: LakeKind, product: string, target?: string): string {
  return target === undefined ? `${kind}|${product}` : `${kind}|${product}|${target}`;
}

export function lakeKey(
  kind: LakeKind,
  product: string,
  windowStartUs: number,
  shardId: string,
  firstSeq: number,
  lastSeq: number,
  /** Labels of different targets mature at different times: one object series per target. */
  target?: string,
): string {
  const iso = new Date(Math.floor(windowStartUs / 1000)).toISOString(); // YYYY-MM-DDTHH:...
  const date = iso.slice(0, 10);
  const hour = iso.slice(11, 13);
  const suffix = target ? `-${target}` : '';
  const name = `${shardId}-${firstSeq}-${lastSeq}-${Math.floor(windowStartUs / 1000)}${suffix}.parquet`;
  return `${kind}/product=${product}/date=${date}/hour=${hour}/${name}`;
}

export interface LakeWriterOptions {
  s3: S3Client;
  bucket: string;
  /** The Kinesis shard the rows came from (keeps two shards' objects apart). */
  shardId: string;
  tickMs: number;
  /** Ticks per object; tickMs * objectTicks must divide one hour. Default: one minute. */
  objectTicks?: number;
  spec?: FeatureSpec;
}

export type LakeRow = { product: string; tsUs: number; seq?: number; target?: string };

interface Buffer {
  id: string;
  kind: LakeKind;
  product: string;
  target: string | undefined;
  windowStartUs: number;
  rows: LakeRow[];
}

interface PendingObject {
  key: string;
  body: Uint8Array;
}

export class LakeWriter {
  private readonly objectUs: number;
  private readonly open = new Map<string, Buffer>();
  private readonly inFlight: Promise<void>[] = [];
  /** Objects whose put failed: kept and retried by the next settle(), so nothing is lost. */
  private failed: PendingObject[] = [];
  private readonly written: string[] = [];
  /** Newest window start per "kind|product"; see the module comment. */
  private readonly frontier = new Map<string, number>();
  /** Rows dropped because their window was already closed (replayed rows, or late rows). */
  droppedBehindFrontier = 0;

  constructor(private readonly opts: LakeWriterOptions) {
    const ticks = opts.objectTicks ?? Math.round(60_000 / opts.tickMs);
    this.objectUs = ticks * opts.tickMs * 1000;
    if (!Number.isInteger(ticks) || ticks <= 0 || HOUR_US % this.objectUs !== 0) {
      throw new RangeError(
        `objectTicks ${ticks} x tickMs ${opts.tickMs} must be a whole divisor of one hour`,
      );
    }
  }

  addFeatures(rows: readonly FeatureRow[]): void {
    for (const r of rows) this.add('features', r);
  }

  addLabels(rows: readonly LabelRow[]): void {
    for (const r of rows) this.add('labels', r);
  }

  addPredictions(rows: readonly PredictionRow[]): void {
    for (const r of rows) this.add('predictions', r);
  }

  addRaw(rows: readonly RawRow[]): void {
    for (const r of rows) this.add('raw', r);
  }

  windowStartUs(tsUs: number): number {
    return Math.floor(tsUs / this.objectUs) * this.objectUs;
  }

  /** False when a row of (kind, product) at tsUs would be dropped: its window is already closed. */
  accepts(kind: LakeKind, product: string, tsUs: number, target?: string): boolean {
    const f = this.frontier.get(bufferId(kind, product, target));
    return f === undefined || this.windowStartUs(tsUs) >= f;
  }

  /** The frontier per "kind|product" (to persist with the stream position). */
  frontiers(): Record<string, number> {
    return Object.fromEntries(this.frontier);
  }

  /** Sets the frontiers of a previous run (before any row is added). */
  restore(frontiers: Record<string, number>): void {
    for (const [id, start] of Object.entries(frontiers)) this.frontier.set(id, start);
  }

  /** The first row of the open object of (kind, product), if one is collecting rows. */
  openFirst(kind: LakeKind, product: string): LakeRow | undefined {
    return this.open.get(bufferId(kind, product))?.rows[0];
  }

  /** Rows of one (kind, product) come in tick order: a row in a later window closes the open object. */
  private add(kind: LakeKind, row: LakeRow): void {
    const target = kind === 'labels' ? row.target : undefined;
    const id = bufferId(kind, row.product, target);
    const windowStartUs = this.windowStartUs(row.tsUs);
    const frontier = this.frontier.get(id);
    if (frontier !== undefined && windowStartUs < frontier) {
      this.droppedBehindFrontier++;
      return;
    }
    this.frontier.set(id, windowStartUs);
    let buf = this.open.get(id);
    if (buf && buf.windowStartUs !== windowStartUs) {
      this.write(buf);
      buf = undefined;
    }
    if (!buf) {
      buf = { id, kind, product: row.product, target, windowStartUs, rows: [] };
      this.open.set(id, buf);
    }
    buf.rows.push(row);
  }

  private write(buf: Buffer): void {
    this.open.delete(buf.id);
    const first = buf.rows[0]?.seq ?? -1;
    const last = buf.rows[buf.rows.length - 1]?.seq ?? -1;
    const key = lakeKey(buf.kind, buf.product, buf.windowStartUs, this.opts.shardId, first, last, buf.target);
    let body: Uint8Array;
    switch (buf.kind) {
      case 'features':
        body = encodeFeatureRows(buf.rows as FeatureRow[], this.opts.spec ?? FEATURE_SPEC);
        break;
      case 'labels':
        body = encodeLabelRows(buf.rows as LabelRow[]);
        break;
      case 'predictions':
        body = encodePredictionRows(buf.rows as PredictionRow[]);
        break;
      case 'raw':
        body = encodeRawRows(buf.rows as RawRow[]);
        break;
    }
    this.inFlight.push(this.put({ key, body }));
  }

  private async put(obj: PendingObject): Promise<void> {
    try {
      await this.opts.s3.send(
        new PutObjectCommand({
          Bucket: this.opts.bucket,
          Key: obj.key,
          Body: obj.body,
          ContentType: 'application/vnd.apache.parquet',
        }),
      );
      this.written.push(obj.key);
    } catch (cause) {
      this.failed.push(obj);
      throw new LakeWriteError(`put s3://${this.opts.bucket}/${obj.key} failed`, { cause });
    }
  }

  /**
   * Waits for every object closed so far to be stored (retrying earlier failures once); returns the keys
   * written since the last settle. Throws LakeWriteError if any object is still not stored.
   */
  async settle(): Promise<string[]> {
    const retry = this.failed;
    this.failed = [];
    const all = [...this.inFlight.splice(0), ...retry.map((o) => this.put(o))];
    const results = await Promise.allSettled(all);
    const failure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failure) throw failure.reason;
    return this.written.splice(0);
  }

  /**
   * Closes every open object, partial windows included, and settles: for a stream that has ended for good
   * (offline runs, tests). A live worker does not call it on shutdown: a partial object would be named by a
   * shorter seq range than the complete one its restart writes, i.e. the rows would be stored twice.
   */
  async close(): Promise<string[]> {
    for (const buf of [...this.open.values()]) this.write(buf);
    return this.settle();
  }

  /** Number of (kind, product) objects still collecting rows. */
  get openObjects(): number {
    return this.open.size;
  }
}
