/**
 * Decode stage: Kinesis records -> market records (src/stream/record.ts, the one codec). A record that does not
 * decode is set aside with its bytes (the consumer hands it to onBadRecord, which keeps it in the lake's
 * dead-letter prefix) instead of stopping the shard.
 */
import { decodeRecord, RecordFormatError, type StreamEvent } from '../stream/record.js';
import type { RawRecord } from './shards.js';

export interface ConsumedRecord {
  sequenceNumber: string;
  product: string;
  /** The ingestor that published it (src/stream/record.ts); absent from single-source producers. */
  line?: string;
  /** When Kinesis took it (epoch ms, ApproximateArrivalTimestamp): how old the reader's position is. */
  arrivalMs?: number;
  events: StreamEvent[];
}

export interface BadRecord {
  shardId: string;
  sequenceNumber: string;
  data: Uint8Array;
  error: RecordFormatError;
}

export function decodeRecords(
  shardId: string,
  raw: readonly RawRecord[],
): { records: ConsumedRecord[]; bad: BadRecord[] } {
  const records: ConsumedRecord[] = [];
  const bad: BadRecord[] = [];
  for (const r of raw) {
    const sequenceNumber = r.SequenceNumber ?? '';
    const data = r.Data ?? new Uint8Array();
    try {
      const rec = decodeRecord(data);
      records.push({
        sequenceNumber,
        product: rec.product,
        ...(rec.line ? { line: rec.line } : {}),
        ...(r.ApproximateArrivalTimestamp ? { arrivalMs: r.ApproximateArrivalTimestamp.getTime() } : {}),
        events: rec.events,
      });
    } catch (error) {
      if (!(error instanceof RecordFormatError)) throw error;
      bad.push({ shardId, sequenceNumber, data, error });
    }
  }
  return { records, bad };
}
