/**
 * Claim-check for full-depth book snapshots: a Coinbase snapshot is megabytes (BTC-USD ~46k levels), far over
 * a Kinesis record, so the book goes to S3 and the stream carries a small SnapshotRefEvent in its place.
 * The object is written BEFORE the ref is enqueued, so a consumer never sees a ref to a missing object.
 * Compression runs on libuv's thread pool (zlib.gzip), not the event loop: gzipSync of a BTC-USD book held
 * the loop for 37-111 ms, on top of the frame's JSON.parse.
 */
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { BookSnapshotEvent } from '../marketdata/events.js';
import type { SnapshotRefEvent } from '../stream/record.js';

const gzipAsync = promisify(gzip);

export class SnapshotStoreError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SnapshotStoreError';
  }
}

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
