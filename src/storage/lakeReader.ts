/**
 * Reading the Parquet lake back (the training job; any tool that needs the lake's rows): the objects of a zone
 * and their bytes. The writer and the key layout are lake.ts's; the Parquet codecs are parquet.ts's.
 */
import {
  GetObjectCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type S3Client,
} from '@aws-sdk/client-s3';
import { mapLimited } from '../concurrency.js';
import { QuoteWatchError } from '../errors.js';
import type { LakeKind } from './lake.js';

export class LakeReadError extends QuoteWatchError {}

/** Parallel GETs while reading a zone: enough to hide S3's latency, few enough to keep memory flat. */
export const LAKE_READ_CONCURRENCY = 8;

/**
 * Keys of every Parquet object in a zone (`features/`, `labels/`, ...), sorted: by product, date, hour, then
 * object name (lakeKey). `pageSize` is the ListObjectsV2 page (S3's default and maximum: 1000).
 */
export async function listLakeObjects(
  s3: S3Client,
  bucket: string,
  kind: LakeKind | 'corrections',
  { pageSize }: { pageSize?: number } = {},
): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    // No delimiter: s3rver leaves sub-folder prefixes out of delimited listings.
    let page: ListObjectsV2CommandOutput;
    try {
      page = await s3.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: `${kind}/`,
          ContinuationToken: token,
          MaxKeys: pageSize,
        }),
      );
    } catch (err) {
      throw new LakeReadError(`cannot list s3://${bucket}/${kind}/`, { cause: err });
    }
    for (const o of page.Contents ?? []) if (o.Key?.endsWith('.parquet')) keys.push(o.Key);
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys.sort();
}

/** One object's bytes; a LakeReadError naming it when S3 cannot give them. */
export async function readLakeObject(s3: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  try {
    const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await res.Body!.transformToByteArray();
  } catch (err) {
    throw new LakeReadError(`cannot read s3://${bucket}/${key}`, { cause: err });
  }
}

/**
 * Reads and decodes `keys`, at most LAKE_READ_CONCURRENCY GETs in flight; the results are in key order. Each
 * object is decoded as soon as it arrives, so only the in-flight objects' bytes are held at once. A read
 * failure is a LakeReadError; what `decode` throws passes through unchanged.
 */
export function readLakeObjects<T>(
  s3: S3Client,
  bucket: string,
  keys: readonly string[],
  decode: (bytes: Uint8Array, key: string) => Promise<T> | T,
  concurrency = LAKE_READ_CONCURRENCY,
): Promise<T[]> {
  return mapLimited(keys, concurrency, async (key) => decode(await readLakeObject(s3, bucket, key), key));
}

/** Every row of a zone: its objects listed, read and decoded (as readLakeObjects), in key order. */
export async function readLakeZone<T>(
  s3: S3Client,
  bucket: string,
  kind: LakeKind | 'corrections',
  decode: (bytes: Uint8Array, key: string) => Promise<T[]> | T[],
): Promise<T[]> {
  return (await readLakeObjects(s3, bucket, await listLakeObjects(s3, bucket, kind), decode)).flat();
}
