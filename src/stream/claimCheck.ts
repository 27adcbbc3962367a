/**
 * Claim-check for full-depth book snapshots, both directions in one codec: a Coinbase snapshot is megabytes
 * (BTC-USD ~46k levels), far over a Kinesis record, so the ingestor puts the book in S3 (gzip JSON
 * `{ bids, asks }`) and the stream carries a small SnapshotRefEvent in its place; the worker resolves the ref
 * back into the snapshot event it stands for.
 * The object is written BEFORE the ref is enqueued, so a consumer never sees a ref to a missing object.
 * Compression runs on libuv's thread pool (zlib.gzip), not the event loop: gzipSync of a BTC-USD book held
 * the loop for 37-111 ms, on top of the frame's JSON.parse.
 */

import { promisify } from 'node:util';
import { gunzipSync, gzip } from 'node:zlib';
import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { QuoteWatchError } from '../errors.js';
import type { BookSnapshotEvent, Level } from '../marketdata/events.js';
import type { SnapshotRefEvent } from './record.js';

const gzipAsync = promisify(gzip);

export class SnapshotFetchError extends QuoteWatchError {}

export class SnapshotStoreError extends QuoteWatchError {}

/** `snapshots/<product>/<exchUs>-<session>-<seq>.json.gz`: sortable by time per product, unique per session. */
export function snapshotKey(product: string, exchUs: number, session: string, seq: number): string {
  return `snapshots/${product}/${exchUs}-${session}-${seq}.json.gz`;
}

export class SnapshotStore {
  constructor(
    private readonly s3: Pick<S3Client, 'send'>,
    readonly bucket: string,
  ) {}

  /** Stores the book as gzip JSON `{ bids, asks }` and returns the ref to publish (without its id). */
  async put(snapshot: BookSnapshotEvent, session: string): Promise<SnapshotRefEvent> {
    const key = snapshotKey(snapshot.product, snapshot.exchUs, session, snapshot.seq);
    const body = await gzipAsync(JSON.stringify({ bids: snapshot.bids, asks: snapshot.asks }));
    try {
      await this.s3.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: key, Body: body, ContentType: 'application/gzip' }),
      );
    } catch (cause) {
      throw new SnapshotStoreError(`could not store snapshot s3://${this.bucket}/${key}`, { cause });
    }
    return {
      type: 'snapshot_ref',
      product: snapshot.product,
      exchUs: snapshot.exchUs,
      recvUs: snapshot.recvUs,
      seq: snapshot.seq,
      bucket: this.bucket,
      key,
      levels: snapshot.bids.length + snapshot.asks.length,
    };
  }
}

/** Fetches a claim-checked snapshot (gzip or plain JSON `{ bids, asks }`) as the event it stands for. */
export async function resolveSnapshotRef(
  s3: Pick<S3Client, 'send'>,
  ref: SnapshotRefEvent,
): Promise<BookSnapshotEvent> {
  let bytes: Uint8Array;
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }));
    bytes = await out.Body!.transformToByteArray();
  } catch (cause) {
    throw new SnapshotFetchError(`cannot fetch snapshot s3://${ref.bucket}/${ref.key}`, { cause });
  }
  let book: { bids?: unknown; asks?: unknown };
  try {
    const json = bytes[0] === 0x1f && bytes[1] === 0x8b ? gunzipSync(bytes) : bytes;
    book = JSON.parse(new TextDecoder().decode(json));
  } catch (cause) {
    throw new SnapshotFetchError(`snapshot s3://${ref.bucket}/${ref.key} is not (gzip) JSON`, { cause });
  }
  if (!Array.isArray(book.bids) || !Array.isArray(book.asks)) {
    throw new SnapshotFetchError(`snapshot s3://${ref.bucket}/${ref.key} lacks bids/asks`);
  }
  return {
    type: 'book_snapshot',
    product: ref.product,
    exchUs: ref.exchUs,
    recvUs: ref.recvUs,
    seq: ref.seq,
    bids: book.bids as Level[],
    asks: book.asks as Level[],
  };
}
