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
 */
import {
  PutRecordsCommand,
  type PutRecordsCommandOutput,
  type PutRecordsRequestEntry,
  type PutRecordsResultEntry,
} from '@aws-sdk/client-kinesis';
import { encodeRecord, type StreamEvent } from '../stream/record.js';

const MiB = 1024 * 1024;

export class ProducerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ProducerError';
  }
}

/** A single event too large for a Kinesis record: a caller bug (snapshots go to S3), rejected at put(). */
export class RecordTooLargeError extends Error {
  constructor(event: StreamEvent, bytes: number, limit: number) {
    super(
      `event ${event.id} (${event.type}, ${event.product}) is ${bytes} bytes, over the ${limit}-byte record limit`,
    );
    this.name = 'RecordTooLargeError';
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

// Throttling and server-side failures heal by themselves; client errors (4xx) other than throttling do not.
const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'LimitExceededException',
  'ThrottlingException',
  'KMSThrottlingException',
  'InternalFailure',
  'InternalFailureException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

function isRetryable(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (e?.name && RETRYABLE_NAMES.has(e.name)) return true;
  if (e?.$retryable) return true;
  const status = e?.$metadata?.httpStatusCode;
  // No status: the request never got an answer (connection refused, reset, timeout).
  return status === undefined || status >= 500;
}

// JSON overhead of the v1 envelope around the events: {"v":1,"product":"…","events":[…]} plus commas.
const envelopeBytes = (product: string) => Buffer.byteLength(JSON.stringify({ v: 1, product, events: [] }));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

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

  /** Per product, in arrival order. A product with nothing pending has no key. */
  private readonly pending = new Map<string, Pending[]>();
  private readonly waiters: Waiter[] = [];
  private idleWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private lingerTimer: NodeJS.Timeout | undefined;
  private sending = false;
  private closed = false;
  private failure: ProducerError | undefined;
  private readonly counters = { records: 0, events: 0, bytes: 0, batches: 0, retries: 0 };
  private bufferedBytes = 0;
  private bufferedEvents = 0;

  constructor(options: ProducerOptions) {
    this.client = options.client;
    this.streamName = options.streamName;
    this.lingerMs = options.lingerMs ?? 10;
    this.maxBufferBytes = options.maxBufferBytes ?? 16 * MiB;
    this.maxBatchBytes = options.maxBatchBytes ?? 5 * MiB;
    this.maxRecordBytes = Math.min(options.maxRecordBytes ?? MiB, this.maxBatchBytes);
    this.maxBatchRecords = options.maxBatchRecords ?? 500;
    this.backoffBaseMs = options.backoffBaseMs ?? 100;
    this.backoffCapMs = options.backoffCapMs ?? 5000;
    this.onRetry = options.onRetry ?? (() => {});
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
    const limit = this.maxRecordBytes - envelopeBytes(event.product) - Buffer.byteLength(event.product);
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
    else this.lingerTimer ??= setTimeout(() => this.startSending(), this.lingerMs);
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
    clearTimeout(this.lingerTimer);
    this.lingerTimer = undefined;
    if (this.sending || this.failure) return;
    this.sending = true;
    void this.sendLoop();
  }

  private async sendLoop(): Promise<void> {
    try {
      while (this.pending.size > 0) {
        const { entries, items } = this.takeBatch();
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

  /** One record per product (as much of its queue as fits), within the batch limits. */
  private takeBatch(): { entries: Entry[]; items: { bytes: number; events: number } } {
    const entries: Entry[] = [];
    let batchBytes = 0;
    let takenBytes = 0;
    let takenEvents = 0;
    // A copy of the keys: products re-inserted below must not be visited twice (one record per product).
    for (const product of [...this.pending.keys()]) {
      if (entries.length >= this.maxBatchRecords) break;
      const queue = this.pending.get(product)!;
      const keyBytes = Buffer.byteLength(product);
      const room = Math.min(this.maxRecordBytes, this.maxBatchBytes - batchBytes) - keyBytes;
      let size = envelopeBytes(product);
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
      );
      entries.push({ product, data, events: n });
      batchBytes += data.byteLength + keyBytes;
      for (const p of taken) takenBytes += p.bytes;
      takenEvents += n;
      this.pending.delete(product);
      // Re-inserting moves the product to the end: products take turns when batches are full.
      if (queue.length > 0) this.pending.set(product, queue);
    }
    return { entries, items: { bytes: takenBytes, events: takenEvents } };
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
      await sleep(delayMs);
    }
  }

  /** Capped exponential backoff with jitter (half fixed, half random) so retries of many producers spread out. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.backoffCapMs, this.backoffBaseMs * 2 ** Math.min(attempt, 20));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}
