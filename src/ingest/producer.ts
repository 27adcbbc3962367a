/**
 * Kinesis producer for the market stream.
 *
 * - Partition key = product, so Kinesis keeps each product's events in order on one shard.
 * - Aggregation: the events of one product waiting in the buffer become ONE record (format v1 of
 *   src/stream/record.ts, at most maxRecordBytes), records become one PutRecords batch (<= 500 records,
 *   <= 5 MiB). The first event into an empty buffer waits `lingerMs` so a batch can fill; while data keeps
 *   coming, batches go back to back.
 * - Order: one batch in flight at a time and at most ONE record per product in a batch, so retrying only the
 *   failed entries of a partial failure can never move a product's record past a later one.
 * - Retries: failed entries (and whole requests that failed for a retryable reason) are sent again with capped
 *   exponential backoff and jitter, indefinitely: data is never dropped. A non-retryable error (missing
 *   stream, access denied...) puts the producer in a failed state: put/flush reject with ProducerError.
 * - Backpressure: the buffer (including the batch in flight) holds at most maxBufferBytes. `await put()`
 *   resolves once the event is buffered; when the buffer is full it waits, first come first served, until a
 *   batch is acknowledged. A caller that awaits each put therefore slows down to the stream's pace.
 * - Rate limit: a shard takes 1,000 records/s and 1 MiB/s. The producer does not know the shard map, only that
 *   a partition key (product) lives on one shard, so it keeps two budgets, each "at most N in any 1 s window":
 *   per partition key (maxRecordsPerS, maxBytesPerS: one shard's worth, 90% by default) and for the producer as
 *   a whole (the same times shardCount; default 1 shard, i.e. conservative: all products share one shard's
 *   budget). A record over budget stays in the buffer and keeps aggregating events (fewer, bigger records);
 *   nothing is dropped, and the buffer bound above turns a long wait into backpressure. Retries are charged too.
 *   A record is never bigger than maxBytesPerS, or it could never be sent.
 */

import {
  PutRecordsCommand,
  type PutRecordsCommandOutput,
  type PutRecordsRequestEntry,
  type PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis';
import { isRetryable } from '../aws/errors.js';
import { type Clock, systemClock } from '../clock.js';
import { QuoteWatchError } from '../errors.js';
import { encodeRecord, recordEnvelopeBytes, type StreamEvent } from '../stream/record.js';
import { RateBudgets } from './rateLimit.js';

const MiB = 1024 * 1024;

/** 90% of a shard's write limits (1,000 records/s, 1 MiB/s): room for clock skew and other writers' bursts. */
export const DEFAULT_MAX_RECORDS_PER_S = 900;
export const DEFAULT_MAX_BYTES_PER_S = Math.floor(0.9 * MiB);

export class ProducerError extends QuoteWatchError {}

/** A single event too large for a Kinesis record: a caller bug (snapshots go to S3), rejected at put(). */
export class RecordTooLargeError extends QuoteWatchError {
  constructor(event: StreamEvent, bytes: number, limit: number) {
    super(
      `event ${event.id} (${event.type}, ${event.product}) is ${bytes} bytes, over the ${limit}-byte record limit`,
    );
  }
}

/** What the producer needs of a KinesisClient (src/aws/clients.ts). */
export interface PutRecordsClient {
  send(command: PutRecordsCommand): Promise<PutRecordsCommandOutput>;
}

export interface ProducerOptions {
  client: PutRecordsClient;
  streamName: string;
  /** How long the first event of a batch waits for company. Default 10 ms (PRODUCER_LINGER_MS in src/config.ts). */
  lingerMs?: number;
  /** Buffer bound (events waiting + in flight), in encoded bytes. Default 16 MiB. */
  maxBufferBytes?: number;
  /** Kinesis limits; lower them only in tests. */
  maxRecordBytes?: number;
  maxBatchRecords?: number;
  maxBatchBytes?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Per partition key (= one shard's budget): records and bytes (data + key) in any 1 s window. */
  maxRecordsPerS?: number;
  maxBytesPerS?: number;
  /** Shards of the stream, when known: the whole producer may use shardCount x the per-key budget. Default 1. */
  shardCount?: number;
  clock?: Clock;
  /** The publishing ingestor, written into every record (src/stream/record.ts); an Ingestor binds its session. */
  line?: string;
  /** Called for each retry round (for logs). */
  onRetry?: (info: { attempt: number; failedEntries: number; delayMs: number; error?: unknown }) => void;
}

export interface ProducerStats {
  /** Records and events acknowledged by Kinesis. */
  records: number;
  events: number;
  /** Record payload bytes acknowledged. */
  bytes: number;
  batches: number;
  /** Entries sent again after a failure (a whole failed request counts all its entries). */
  retries: number;
  /** Events buffered or in flight. */
  bufferDepth: number;
  bufferBytes: number;
  /** Times the producer had data but no budget and slept until some was free, and the time slept (ms). */
  throttledWaits: number;
  throttledMs: number;
  /** Batches in which a product's next record stayed in the buffer because its key or the producer was out of budget. */
  heldBack: number;
}

interface Pending {
  event: StreamEvent;
  bytes: number;
}

interface Entry {
  product: string;
  data: Uint8Array;
  events: number;
}

interface Waiter {
  item: Pending;
  resolve: () => void;
  reject: (err: unknown) => void;
}

// JSON overhead of the v1 envelope around the events: {"v":1,"product":"…","events":[…]} plus commas.

export class KinesisProducer {
  private readonly client: PutRecordsClient;
  private readonly streamName: string;
  private readonly lingerMs: number;
  private readonly maxBufferBytes: number;
  private readonly maxRecordBytes: number;
  private readonly maxBatchRecords: number;
  private readonly maxBatchBytes: number;
  private readonly backoffBaseMs: number;
  private readonly backoffCapMs: number;
  private readonly onRetry: NonNullable<ProducerOptions['onRetry']>;
  private readonly clock: Clock;
  private readonly maxRecordsPerS: number;
  private readonly maxBytesPerS: number;
  private readonly budgets: RateBudgets;

  /** Per product, in arrival order. A product with nothing pending has no key. */
  private readonly pending = new Map<string, Pending[]>();
  private readonly waiters: Waiter[] = [];
  private idleWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  /** The linger in progress, if any: a number so that a linger overtaken by a send cannot fire later. */
  private linger: number | undefined;
  private lingers = 0;
  private sending = false;
  private closed = false;
  private failure: ProducerError | undefined;
  private readonly counters = {
    records: 0,
    events: 0,
    bytes: 0,
    batches: 0,
    retries: 0,
    throttledWaits: 0,
    throttledMs: 0,
    heldBack: 0,
  };
  private bufferedBytes = 0;
  private bufferedEvents = 0;

  /** The line written into every record (see ProducerOptions.line). */
  get line(): string | undefined {
    return this.lineName;
  }

  /** Names the line once (the Ingestor binds its session); a producer never serves two lines. */
  bindLine(line: string): void {
    if (this.lineName !== undefined && this.lineName !== line) {
      throw new ProducerError(`producer already publishes line ${this.lineName}, not ${line}`);
    }
    this.lineName = line;
  }

  private lineName: string | undefined;

  private envelopeBytes(product: string): number {
    return recordEnvelopeBytes(product, this.lineName);
  }

  constructor(options: ProducerOptions) {
    this.lineName = options.line;
    this.client = options.client;
    this.streamName = options.streamName;
    this.lingerMs = options.lingerMs ?? 10;
    this.maxBufferBytes = options.maxBufferBytes ?? 16 * MiB;
    this.maxBatchBytes = options.maxBatchBytes ?? 5 * MiB;
    this.maxRecordsPerS = options.maxRecordsPerS ?? DEFAULT_MAX_RECORDS_PER_S;
    this.maxBytesPerS = options.maxBytesPerS ?? DEFAULT_MAX_BYTES_PER_S;
    this.maxRecordBytes = Math.min(options.maxRecordBytes ?? MiB, this.maxBatchBytes, this.maxBytesPerS);
    this.maxBatchRecords = options.maxBatchRecords ?? 500;
    this.backoffBaseMs = options.backoffBaseMs ?? 100;
    this.backoffCapMs = options.backoffCapMs ?? 5000;
    this.onRetry = options.onRetry ?? (() => {});
    this.clock = options.clock ?? systemClock;
    const shards = options.shardCount ?? 1;
    if (!(this.maxRecordsPerS >= 1 && this.maxBytesPerS >= 1 && Number.isInteger(shards) && shards >= 1)) {
      throw new ProducerError(
        `invalid rate limit: maxRecordsPerS ${this.maxRecordsPerS}, maxBytesPerS ${this.maxBytesPerS}, shardCount ${shards}`,
      );
    }
    this.budgets = new RateBudgets(this.maxRecordsPerS, this.maxBytesPerS, shards);
  }

  stats(): ProducerStats {
    return { ...this.counters, bufferDepth: this.bufferedEvents, bufferBytes: this.bufferedBytes };
  }

  /** Buffers one event (partition key = event.product). Resolves once buffered; waits while the buffer is full. */
  put(event: StreamEvent): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closed) return Promise.reject(new ProducerError('producer is closed'));
    const bytes = Buffer.byteLength(JSON.stringify(event));
    // Partition key bytes count toward the record limit too.
    const limit = this.maxRecordBytes - this.envelopeBytes(event.product) - Buffer.byteLength(event.product);
    if (bytes > limit) return Promise.reject(new RecordTooLargeError(event, bytes, limit));
    const item = { event, bytes };
    if (this.waiters.length === 0 && this.hasRoom(bytes)) {
      this.append(item);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ item, resolve, reject }));
  }

  /** Sends everything buffered now (no linger) and resolves when Kinesis has acknowledged it all. */
  flush(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.isIdle()) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.idleWaiters.push({ resolve, reject }));
    this.startSending();
    return done;
  }

  /** Refuses new events, then flushes. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private isIdle(): boolean {
    return this.pending.size === 0 && this.waiters.length === 0 && !this.sending;
  }

  private hasRoom(bytes: number): boolean {
    // An empty buffer always takes one event, so a large event cannot wait forever.
    return this.bufferedBytes === 0 || this.bufferedBytes + bytes <= this.maxBufferBytes;
  }

  private append(item: Pending): void {
    const queue = this.pending.get(item.event.product);
    if (queue) queue.push(item);
    else this.pending.set(item.event.product, [item]);
    this.bufferedBytes += item.bytes;
    this.bufferedEvents += 1;
    if (this.sending) return;
    if (this.bufferedBytes >= this.maxBatchBytes) this.startSending();
    else if (this.linger === undefined) {
      const linger = ++this.lingers;
      this.linger = linger;
      void this.clock.sleep(this.lingerMs).then(() => {
        if (this.linger === linger) this.startSending();
      });
    }
  }

  /** Admits waiting puts in order while there is room. */
  private admit(): void {
    while (this.waiters.length > 0 && this.hasRoom(this.waiters[0]!.item.bytes)) {
      const w = this.waiters.shift()!;
      this.append(w.item);
      w.resolve();
    }
  }

  private startSending(): void {
    this.linger = undefined;
    if (this.sending || this.failure) return;
    this.sending = true;
    void this.sendLoop();
  }

  private async sendLoop(): Promise<void> {
    try {
      while (this.pending.size > 0) {
        const { entries, items, waitMs } = this.takeBatch();
        if (entries.length === 0) {
          // Everything pending is over budget: sleep until some frees up; events keep aggregating meanwhile.
          this.counters.throttledWaits += 1;
          this.counters.throttledMs += waitMs;
          await this.clock.sleep(waitMs);
          continue;
        }
        await this.sendBatch(entries);
        this.counters.batches += 1;
        this.bufferedBytes -= items.bytes;
        this.bufferedEvents -= items.events;
        this.admit();
      }
    } catch (err) {
      this.fail(err);
      return;
    } finally {
      this.sending = false;
    }
    const idle = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of idle) w.resolve();
  }

  private fail(err: unknown): void {
    this.failure = err instanceof ProducerError ? err : new ProducerError('producer failed', { cause: err });
    for (const w of this.waiters.splice(0)) w.reject(this.failure);
    for (const w of this.idleWaiters.splice(0)) w.reject(this.failure);
  }

  /**
   * One record per product (as much of its queue as fits), within the batch limits and the rate budgets, which
   * are charged here. With nothing to send, `waitMs` says when a record will fit the budgets.
   */
  private takeBatch(): { entries: Entry[]; items: { bytes: number; events: number }; waitMs: number } {
    const entries: Entry[] = [];
    const now = this.clock.now();
    let batchBytes = 0;
    let takenBytes = 0;
    let takenEvents = 0;
    let waitMs = Number.POSITIVE_INFINITY;
    // A copy of the keys: products re-inserted below must not be visited twice (one record per product).
    for (const product of [...this.pending.keys()]) {
      if (entries.length >= this.maxBatchRecords) break;
      const queue = this.pending.get(product)!;
      const keyBytes = Buffer.byteLength(product);
      // The smallest record this product can send: its first event alone.
      const smallest = this.envelopeBytes(product) + queue[0]!.bytes + keyBytes;
      const key = this.budgets.of(product);
      const keyWait = this.budgets.waitFor([key], 1, smallest, now);
      const totalWait = this.budgets.waitFor([this.budgets.total], 1, smallest, now);
      if (keyWait > 0 || totalWait > 0) {
        this.counters.heldBack += 1;
        waitMs = Math.min(waitMs, Math.max(keyWait, totalWait));
        // Products behind this one may not take the shared budget it waits for: a big record would starve
        // behind a stream of small ones. A product short of only its own key's budget blocks nobody.
        if (totalWait > 0) break;
        continue;
      }
      const room =
        Math.min(
          this.maxRecordBytes,
          this.maxBatchBytes - batchBytes,
          key.bytes.free(now),
          this.budgets.total.bytes.free(now),
        ) - keyBytes;
      let size = this.envelopeBytes(product);
      let n = 0;
      while (n < queue.length && size + queue[n]!.bytes + (n > 0 ? 1 : 0) <= room) {
        size += queue[n]!.bytes + (n > 0 ? 1 : 0);
        n++;
      }
      if (n === 0) continue; // does not fit in what is left of this batch: next batch
      const taken = queue.splice(0, n);
      const data = encodeRecord(
        product,
        taken.map((p) => p.event),
        this.line,
      );
      entries.push({ product, data, events: n });
      batchBytes += data.byteLength + keyBytes;
      for (const budget of [key, this.budgets.total]) {
        budget.records.add(now, 1);
        budget.bytes.add(now, data.byteLength + keyBytes);
      }
      for (const p of taken) takenBytes += p.bytes;
      takenEvents += n;
      this.pending.delete(product);
      // Re-inserting moves the product to the end: products take turns when batches are full.
      if (queue.length > 0) this.pending.set(product, queue);
    }
    return { entries, items: { bytes: takenBytes, events: takenEvents }, waitMs };
  }

  /** Sends until every entry is acknowledged; only failed entries are sent again. */
  private async sendBatch(entries: Entry[]): Promise<void> {
    let todo = entries;
    for (let attempt = 0; ; attempt++) {
      let failed: Entry[];
      let error: unknown;
      try {
        const out = await this.client.send(
          new PutRecordsCommand({
            StreamName: this.streamName,
            Records: todo.map((e): PutRecordsRequestEntry => ({ PartitionKey: e.product, Data: e.data })),
          }),
        );
        const results: PutRecordsResultEntry[] = out.Records ?? [];
        failed = todo.filter((_, i) => !results[i] || results[i]!.ErrorCode !== undefined);
        for (const [i, e] of todo.entries()) {
          if (results[i] && results[i]!.ErrorCode === undefined) {
            this.counters.records += 1;
            this.counters.events += e.events;
            this.counters.bytes += e.data.byteLength;
          }
        }
      } catch (err) {
        if (!isRetryable(err)) {
          throw new ProducerError(`PutRecords to ${this.streamName} failed: ${(err as Error).message}`, {
            cause: err,
          });
        }
        failed = todo;
        error = err;
      }
      if (failed.length === 0) return;
      todo = failed;
      this.counters.retries += failed.length;
      const delayMs = this.backoff(attempt);
      this.onRetry({ attempt: attempt + 1, failedEntries: failed.length, delayMs, error });
      await this.clock.sleep(delayMs);
      await this.chargeRetry(todo);
    }
  }

  /** A retry spends budget like a first send (Kinesis may have counted the failed attempt): wait until it fits. */
  private async chargeRetry(entries: Entry[]): Promise<void> {
    for (;;) {
      const now = this.clock.now();
      let waitMs = 0;
      let totalRecords = 0;
      let totalBytes = 0;
      for (const e of entries) {
        const bytes = e.data.byteLength + Buffer.byteLength(e.product);
        waitMs = Math.max(waitMs, this.budgets.waitFor([this.budgets.of(e.product)], 1, bytes, now));
        totalRecords += 1;
        totalBytes += bytes;
      }
      waitMs = Math.max(waitMs, this.budgets.waitFor([this.budgets.total], totalRecords, totalBytes, now));
      if (waitMs === 0) break;
      this.counters.throttledWaits += 1;
      this.counters.throttledMs += waitMs;
      await this.clock.sleep(waitMs);
    }
    const now = this.clock.now();
    for (const e of entries) {
      const bytes = e.data.byteLength + Buffer.byteLength(e.product);
      for (const budget of [this.budgets.of(e.product), this.budgets.total]) {
        budget.records.add(now, 1);
        budget.bytes.add(now, bytes);
      }
    }
  }

  /** Capped exponential backoff with jitter (half fixed, half random) so retries of many producers spread out. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** Math.min(attempt, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}
