/**
 * The ingestor: feed (connection.ts) -> mapper (marketdata/advancedTrade.ts) -> sequence check -> producer.
 *
 * Per connection: subscribe, map each frame, check the ONE per-connection sequence counter; on a gap or
 * regression publish a ResyncEvent per product, drop that product's book changes until a fresh snapshot
 * and ask for one (level2 resubscribe). Snapshots go to S3 (claim-check) and a snapshot_ref goes into the
 * stream in their place. Heartbeats only feed the watchdog and the stats. Reconnects with capped
 * exponential backoff and jitter. Every few seconds a FeedStatsEvent goes to the "_feed" partition.
 *
 * Event ids (idempotency keys): `eventId(<session>.<connection>, frame seq, index in frame)`; the sequence
 * restarts at 0 on every connection, hence the connection number in the session part.
 */
import { FeedError, MalformedFrameError, mapAdvancedTradeFrame } from '../marketdata/advancedTrade.js';
import type { MarketEvent, ResyncEvent } from '../marketdata/events.js';
import { eventId, type FeedStatsEvent, type StreamEvent } from '../stream/record.js';
import { type CloseInfo, FeedConnection, type Frame } from './connection.js';
import { describeError, type Logger } from './log.js';
import type { KinesisProducer } from './producer.js';
import { SequenceChecker } from './sequence.js';
import type { SnapshotStore } from './snapshots.js';

export const FEED_PARTITION = '_feed';

export interface IngestorOptions {
  feedUrl: string;
  products: string[];
  producer: KinesisProducer;
  snapshots: SnapshotStore;
  log: Logger;
  /** Distinguishes this process's event ids from other runs'. Default: start time + random suffix. */
  session?: string;
  silenceMs?: number;
  statsIntervalMs?: number;
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  /** Called when the producer fails for good (the process should exit non-zero). */
  onFatal?: (err: unknown) => void;
}

export interface IngestorCounters {
  connections: number;
  reconnects: number;
  resyncs: number;
  frames: number;
  malformed: number;
  feedErrors: number;
  published: number;
  /** Book changes dropped while waiting for a fresh snapshot after a resync. */
  droppedChanges: number;
  lastHeartbeatUs: number;
}

const nowUs = () => Date.now() * 1000;

/** Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function reconnectDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20)));
}

export class Ingestor {
  readonly session: string;
  readonly counters: IngestorCounters = {
    connections: 0,
    reconnects: 0,
    resyncs: 0,
    frames: 0,
    malformed: 0,
    feedErrors: 0,
    published: 0,
    droppedChanges: 0,
    lastHeartbeatUs: 0,
  };
  private readonly o: Required<Omit<IngestorOptions, 'onFatal'>> & Pick<IngestorOptions, 'onFatal'>;
  private running = false;
  private connection: FeedConnection | undefined;
  private loop: Promise<void> | undefined;
  private statsTimer: NodeJS.Timeout | undefined;
  private statsCount = 0;
  private lastStats = { atUs: nowUs(), messages: 0, bytes: 0 };
  private totals = { messages: 0, bytes: 0 };
  private wakeUp: (() => void) | undefined;

  constructor(options: IngestorOptions) {
    this.o = {
      session: `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`,
      silenceMs: 5000,
      statsIntervalMs: 5000,
      reconnectBaseMs: 250,
      reconnectCapMs: 10_000,
      ...options,
    };
    this.session = this.o.session;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
    // A failing put is already logged and reported through onFatal.
    this.statsTimer = setInterval(() => void this.publishStats().catch(() => {}), this.o.statsIntervalMs);
  }

  /** Closes the connection, waits for the frame in hand, publishes final stats and flushes the producer. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.statsTimer);
    this.connection?.close('requested', 'stopping');
    this.wakeUp?.();
    await this.loop;
    await this.publishStats().catch(() => {});
    await this.o.producer.close();
    this.o.log('info', 'ingestor stopped', { ...this.counters, producer: this.o.producer.stats() });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      const connNo = this.counters.connections++;
      if (connNo > 0) this.counters.reconnects++;
      const state = new ConnectionState(`${this.session}.${connNo}`, this.o.products, connNo > 0);
      const conn: FeedConnection = new FeedConnection({
        url: this.o.feedUrl,
        products: this.o.products,
        silenceMs: this.o.silenceMs,
        onFrame: (frame) => this.onFrame(conn, state, frame),
      });
      this.connection = conn;
      let info: CloseInfo;
      try {
        await conn.open();
        this.o.log('info', 'feed connected', {
          url: this.o.feedUrl,
          connection: connNo,
          products: this.o.products,
        });
        info = await conn.closed;
        // A connection that delivered frames was healthy: start the backoff over.
        if (conn.messages > 0) failures = 0;
      } catch (err) {
        conn.close('error', describeError(err));
        info = await conn.closed;
      }
      this.totals.messages += conn.messages;
      this.totals.bytes += conn.bytes;
      if (!this.running) break;
      const delayMs = reconnectDelay(failures++, this.o.reconnectBaseMs, this.o.reconnectCapMs);
      this.o.log('warn', 'feed disconnected', { ...info, connection: connNo, reconnectInMs: delayMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delayMs);
        // stop() cuts the wait short.
        this.wakeUp = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  private async onFrame(conn: FeedConnection, state: ConnectionState, frame: Frame): Promise<void> {
    this.counters.frames++;
    if (!state.announced) {
      // Whatever consumers had of the books is stale until this connection's snapshots arrive. Published from
      // the frame pump so it precedes every event of the connection.
      state.announced = true;
      await this.publishResync(state, -1, state.isReconnect ? 'reconnect' : 'connect');
    }
    let mapped: ReturnType<typeof mapAdvancedTradeFrame>;
    try {
      mapped = mapAdvancedTradeFrame(frame.raw, frame.recvUs);
    } catch (err) {
      if (err instanceof MalformedFrameError) {
        // Skipped; if it carried book data, the next frame's sequence number reveals the gap and we resync.
        this.counters.malformed++;
        this.o.log('warn', 'malformed frame skipped', { error: err.message });
        return;
      }
      if (err instanceof FeedError) {
        this.counters.feedErrors++;
        this.o.log('error', 'feed error', { error: err.feedMessage });
        conn.close('error', err.message);
        return;
      }
      throw err;
    }

    const decision = state.sequence.check(mapped.seq);
    if (decision.kind !== 'ok') {
      this.o.log('warn', 'sequence break: resync', { ...decision, connection: state.session });
      await this.publishResync(
        state,
        mapped.seq,
        `${decision.kind}: expected ${decision.expected}, got ${decision.got}`,
      );
      conn.resubscribeBook();
    }

    for (const [index, event] of mapped.events.entries()) {
      const id = eventId(state.session, mapped.seq, index);
      await this.publishEvent(state, event, id);
    }
  }

  private async publishEvent(state: ConnectionState, event: MarketEvent, id: string): Promise<void> {
    switch (event.type) {
      case 'heartbeat':
        this.counters.lastHeartbeatUs = event.recvUs;
        return;
      case 'book_snapshot': {
        // S3 first: the ref must never point at a missing object.
        const ref = await this.o.snapshots.put(event, state.session);
        state.awaitingSnapshot.delete(event.product);
        await this.put({ ...ref, id });
        return;
      }
      case 'book_changes':
        if (state.awaitingSnapshot.has(event.product)) {
          this.counters.droppedChanges++;
          return;
        }
        await this.put({ ...event, id });
        return;
      default:
        await this.put({ ...event, id });
    }
  }

  private async publishResync(state: ConnectionState, seq: number, reason: string): Promise<void> {
    this.counters.resyncs++;
    const t = nowUs();
    for (const [i, product] of this.o.products.entries()) {
      state.awaitingSnapshot.add(product);
      const event: ResyncEvent = { type: 'resync', product, exchUs: t, recvUs: t, seq, reason };
      await this.put({ ...event, id: eventId(`${state.session}.resync`, seq, i) });
    }
  }

  private async publishStats(): Promise<void> {
    const t = nowUs();
    const conn = this.connection;
    const messages = this.totals.messages + (conn?.messages ?? 0);
    const bytes = this.totals.bytes + (conn?.bytes ?? 0);
    const seconds = Math.max((t - this.lastStats.atUs) / 1e6, 1e-3);
    const producer = this.o.producer.stats();
    const stats: FeedStatsEvent = {
      type: 'stats',
      product: FEED_PARTITION,
      exchUs: t,
      recvUs: t,
      seq: -1,
      messagesPerS: (messages - this.lastStats.messages) / seconds,
      bytesPerS: (bytes - this.lastStats.bytes) / seconds,
      lastHeartbeatUs: this.counters.lastHeartbeatUs,
      reconnects: this.counters.reconnects,
      resyncs: this.counters.resyncs,
      producerRetries: producer.retries,
      bufferDepth: producer.bufferDepth,
    };
    this.lastStats = { atUs: t, messages, bytes };
    this.o.log('info', 'feed stats', {
      ...stats,
      frames: this.counters.frames,
      malformed: this.counters.malformed,
    });
    await this.put({ ...stats, id: eventId(`${this.session}.stats`, this.statsCount++, 0) });
  }

  private async put(event: StreamEvent): Promise<void> {
    try {
      await this.o.producer.put(event);
      this.counters.published++;
    } catch (err) {
      this.o.log('error', 'producer failed', { error: describeError(err) });
      this.o.onFatal?.(err);
      throw err;
    }
  }
}

/** What one connection needs to remember. */
class ConnectionState {
  readonly sequence = new SequenceChecker();
  /** Products whose book changes are held back until their next snapshot. */
  readonly awaitingSnapshot: Set<string>;

  announced = false;

  constructor(
    readonly session: string,
    products: string[],
    readonly isReconnect: boolean,
  ) {
    this.awaitingSnapshot = new Set(products);
  }
}
