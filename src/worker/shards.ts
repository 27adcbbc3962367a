/**
 * Reading one Kinesis shard: ONE loop (readShard) for every reader of the stream — the consumer's polling and
 * enhanced fan-out readers and the worker's recovery replay. What differs is only where pages of records come
 * from (a ShardSource: GetRecords here, SubscribeToShard in fanout.ts); the loop owns the position (after the last
 * record delivered), delivery, the end of a closed shard and an optional upper bound.
 */

import {
  ExpiredIteratorException,
  GetRecordsCommand,
  type GetRecordsCommandOutput,
  GetShardIteratorCommand,
  type GetShardIteratorCommandInput,
  type KinesisClient,
  ProvisionedThroughputExceededException,
  type StartingPosition,
} from '@aws-sdk/client-kinesis';
import { isTransient, retryTransient, TRANSIENT_RETRY, transientDelayMs } from '../aws/retry.js';
import { sleep } from '../clock.js';
import { QuoteWatchError } from '../errors.js';

export class ConsumerError extends QuoteWatchError {}

/** A record as Kinesis hands it over (GetRecords or a SubscribeToShard event). */
export interface RawRecord {
  SequenceNumber?: string;
  Data?: Uint8Array;
  ApproximateArrivalTimestamp?: Date;
}

/** Where reading a shard (re)starts. */
export type ShardPosition = { after: string } | { at: string } | { since: Date } | { trimHorizon: true };

export const TRIM_HORIZON: ShardPosition = { trimHorizon: true };

/** For logs: the sequence number, "AT <seq>", "AT_TIMESTAMP <iso>" or "TRIM_HORIZON". */
export function describePosition(p: ShardPosition): string {
  if ('after' in p) return p.after;
  if ('at' in p) return `AT ${p.at}`;
  if ('since' in p) return `AT_TIMESTAMP ${p.since.toISOString()}`;
  return 'TRIM_HORIZON';
}

/** GetShardIterator's arguments for a position. */
export function iteratorArgs(
  p: ShardPosition,
): Pick<GetShardIteratorCommandInput, 'ShardIteratorType' | 'StartingSequenceNumber' | 'Timestamp'> {
  if ('after' in p) return { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', StartingSequenceNumber: p.after };
  if ('at' in p) return { ShardIteratorType: 'AT_SEQUENCE_NUMBER', StartingSequenceNumber: p.at };
  if ('since' in p) return { ShardIteratorType: 'AT_TIMESTAMP', Timestamp: p.since };
  return { ShardIteratorType: 'TRIM_HORIZON' };
}

/** SubscribeToShard's starting position for a position. */
export function startingPosition(p: ShardPosition): StartingPosition {
  if ('after' in p) return { Type: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: p.after };
  if ('at' in p) return { Type: 'AT_SEQUENCE_NUMBER', SequenceNumber: p.at };
  if ('since' in p) return { Type: 'AT_TIMESTAMP', Timestamp: p.since };
  return { Type: 'TRIM_HORIZON' };
}

export const seqLess = (a: string, b: string) => BigInt(a) < BigInt(b);

/** One page of a shard. `end`: the shard is closed and every record of it was handed over. */
export interface ShardPage {
  records: RawRecord[];
  millisBehindLatest?: number;
  end?: boolean;
}

/** Where pages come from: GetRecords (pollingSource) or a SubscribeToShard event stream (fanout.ts). */
export interface ShardSource {
  /**
   * Pages of `shardId` from `position()`, which the source asks again whenever it must reposition (an expired
   * iterator, a renewed subscription). Runs until the shard ended or `signal` aborted; `closed` says the shard
   * listing showed it closed when reading started.
   */
  pages(
    shardId: string,
    position: () => ShardPosition,
    signal: AbortSignal,
    closed: boolean,
  ): AsyncIterable<ShardPage>;
}

/** Where readShard delivers; `records` resolves once the batch is handled. */
export interface ShardSink {
  records(records: RawRecord[], millisBehindLatest: number | undefined): Promise<void>;
  /** The shard had nothing new (caught up). */
  empty(): void;
}

export interface ReadShardOptions {
  /** The listing showed the shard closed. */
  closed?: boolean;
  /** Stop before this sequence number (exclusive), or once caught up short of it: 'reached'. */
  until?: string;
}

/**
 * Reads a shard from `start` and delivers every record in order until the shard is closed and read to its end
 * ('ended'), `options.until` is reached ('reached') or `signal` aborts ('stopped'). Aborting never interrupts a
 * delivery in progress; a sink that throws ends the read with its error.
 */
export async function readShard(
  source: ShardSource,
  shardId: string,
  start: ShardPosition,
  signal: AbortSignal,
  sink: ShardSink,
  options: ReadShardOptions = {},
): Promise<'ended' | 'stopped' | 'reached'> {
  let position = start;
  const { until } = options;
  for await (const page of source.pages(shardId, () => position, signal, options.closed ?? false)) {
    let records = page.records;
    let reached = false;
    if (until !== undefined) {
      const stop = records.findIndex((r) => !seqLess(r.SequenceNumber!, until));
      if (stop >= 0) {
        records = records.slice(0, stop);
        reached = true;
      } else if (records.length === 0 && (page.millisBehindLatest ?? 0) === 0) {
        reached = true; // caught up short of the bound: nothing more to replay
      }
    }
    if (records.length > 0) {
      await sink.records(records, page.millisBehindLatest);
      position = { after: records[records.length - 1]!.SequenceNumber! };
    } else if (!reached && !page.end) {
      sink.empty();
    }
    if (reached) return 'reached';
    if (page.end) return 'ended';
  }
  return 'stopped';
}

export interface PollingOptions {
  /** Records per GetRecords call (at most 10,000). */
  limit?: number;
  /** Pause after an empty GetRecords (Kinesis allows 5 reads/s per shard). */
  idleMs?: number;
}

/** Pages by GetRecords in a loop, with a short pause when the shard came back empty. */
export function pollingSource(
  kinesis: KinesisClient,
  streamName: string,
  options: PollingOptions = {},
): ShardSource {
  const limit = options.limit ?? 1000;
  const idleMs = options.idleMs ?? 200;
  // Kinesis restarting fails this call too (a replay after a worker restart starts with it): waited out alike.
  const iterator = async (shardId: string, position: ShardPosition, signal: AbortSignal) =>
    (
      await retryTransient(
        () =>
          kinesis.send(
            new GetShardIteratorCommand({
              StreamName: streamName,
              ShardId: shardId,
              ...iteratorArgs(position),
            }),
          ),
        { signal },
      )
    ).ShardIterator;
  return {
    async *pages(shardId, position, signal) {
      let it = await iterator(shardId, position(), signal);
      let failures = 0;
      while (!signal.aborted) {
        // Kinesis ends a closed shard's iterator chain once every record was returned.
        if (!it) {
          yield { records: [], end: true };
          return;
        }
        let out: GetRecordsCommandOutput;
        try {
          out = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: limit }));
        } catch (err) {
          if (err instanceof ExpiredIteratorException) {
            it = await iterator(shardId, position(), signal); // from the last record delivered (or the same start)
            continue;
          }
          if (err instanceof ProvisionedThroughputExceededException) {
            await sleep(idleMs * 5, signal);
            continue;
          }
          // A server-side failure or no answer (Kinesis restarting, a proxy's bad gateway) heals by itself: the
          // shard keeps its lease and reads on from the same iterator, instead of the worker exiting (found by the
          // chaos run, where every such exit meant a restart and a replay). Client errors still end the read.
          // Transient failures in a row back off as every AWS call's do (src/aws/retry.ts), ~1 min in all.
          if (isTransient(err) && failures < TRANSIENT_RETRY.maxFailures) {
            await sleep(transientDelayMs(failures++), signal);
            continue;
          }
          throw new ConsumerError(`GetRecords on ${shardId} failed`, { cause: err });
        }
        failures = 0;
        const records = out.Records ?? [];
        yield { records, millisBehindLatest: out.MillisBehindLatest };
        it = out.NextShardIterator;
        if (records.length === 0 && it) await sleep(idleMs, signal);
      }
    },
  };
}
