/**
 * The lake's `corrections/` zone (#17): append-only marks on spans of predictions already written, one object per
 * mark, `corrections/product=<p>/date=YYYY-MM-DD/hour=HH/<toMs>-<hash of the check id>.parquet` (the hour of the
 * span's end). A lost update is unknown until a check finds it, so the predictions made on that book since its last
 * matching check are marked `suspect` then, beside them rather than by rewriting them. The name comes from the check
 * and its span's end (both from the stream, so a replay names it the same), and a mark is written once: a replay
 * after a restart finds it and leaves it (a restarted worker no longer holds the history of which levels matched
 * before its replay point, so its mark would be narrower).
 */
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { QuoteWatchError } from '../errors.js';
import { LAKE_PREFIXES } from '../resources.js';
import { fnv1a } from '../stream/record.js';
import { type CorrectionRow, encodeCorrectionRows } from './parquet.js';

export class CorrectionWriteError extends QuoteWatchError {}

export function correctionKey(c: CorrectionRow): string {
  const iso = new Date(Math.floor(c.toUs / 1000)).toISOString();
  return `${LAKE_PREFIXES.corrections}product=${c.product}/date=${iso.slice(0, 10)}/hour=${iso.slice(11, 13)}/${Math.floor(c.toUs / 1000)}-${fnv1a(c.checkId)}.parquet`;
}

const status = (err: unknown) =>
  (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;

/**
 * Stores one mark unless its check's mark is there already (`written: false`: S3's conditional write, which the
 * local s3rver is taught in src/local/launch-s3rver.cjs); an S3 failure is a CorrectionWriteError (the caller
 * retries).
 */
export async function putCorrection(
  s3: Pick<S3Client, 'send'>,
  bucket: string,
  c: CorrectionRow,
): Promise<{ key: string; written: boolean }> {
  const key = correctionKey(c);
  try {
    await s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: encodeCorrectionRows([c]), IfNoneMatch: '*' }),
    );
    return { key, written: true };
  } catch (cause) {
    if (status(cause) === 412) return { key, written: false };
    throw new CorrectionWriteError(`writing s3://${bucket}/${key} failed`, { cause });
  }
}
