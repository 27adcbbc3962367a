/**
 * The ingestor: feed (connection.ts state machine) -> mapper (Advanced Trade or legacy Exchange) -> integrity
 * checks -> producer.
 *
 * Integrity, per connection:
 * - Advanced Trade numbers every frame with ONE counter per connection: a gap or regression publishes a
 *   ResyncEvent per product, drops book changes until fresh snapshots, and resubscribes level2.
 * - The Exchange feed's level2 has no sequence: a product whose heartbeats flow but whose book has not moved
 *   for bookStaleMs is resynced, and so is any product whose book ends up crossed (both feeds), or whose trade ids
 *   skip a number (a trade lost on the way).
 * The ingestor keeps a book per product (src/book), fed by exactly the events it publishes. Full-depth
 * snapshots go to S3 (claim-check) with a snapshot_ref in the stream in their place: the exchange's own, and
 * every snapshotIntervalMs a copy of the ingestor's book (source 'periodic'), published between two frames so
 * a consumer can start at any snapshot_ref and rebuild the book without the exchange.
 * The periodic clock is EXCHANGE time (exchangeClock.ts), so replays put them exactly where the live run did.
 * An Exchange snapshot carries no time of its own: it takes the time of the next frame with a book update or a
 * heartbeat (bookUpdateTime; the frames in between wait with it, in order), never the receive time, which a replay
 * does not share with the frames it plays.
 * Every frame can also go, as received, to a raw archive (archive.ts) that `quotewatch replay` reads back.
 * Heartbeats only feed the watchdog, the staleness check and the stats. Every few seconds a FeedStatsEvent
 * (with the metrics) goes to the "_feed" partition; the metrics themselves go through the telemetry kit.
 *
 * The exchange's REST book (bookCheck.ts) goes into the product's stream through publishBookCheck, where it
 * arrived: after every event published before it. The worker's verdict that its book differs (verdictPoller.ts)
 * comes back through resyncOnVerdict: that product alone is resynced and its level2 resubscribed, on either feed.
 *
 * Event ids (idempotency keys) come from what the exchange sent (src/stream/record.ts eventKey: trade ids, the
 * book changes and their exchange time...), so two ingestors on the same feed, a retry or a restarted ingestor give
 * the same exchange event the same id and the worker keeps one copy. The session is this ingestor's line: its
 * records say so (`line`), and the facts about its own connections (resyncs, stats, the snapshots the exchange
 * answers its subscribes with) carry it in their ids. A replay publishes in a namespace of its own.
 */
import { logRetries, retryTransient } from '../aws/retry.js';
import { BookError, OrderBook } from '../book/book.js';
import { type FeedKind, feedKindOf } from '../config.js';
import { describeError, type Logger } from '../log.js';
import { FeedError, MalformedFrameError, type MappedFrame } from '../marketdata/advancedTrade.js';
import { fromUnits } from '../marketdata/decimal.js';
import {
  type BookSnapshotEvent,
  type Level,
  type MarketEvent,
  type ResyncEvent,
  tellsExchangeNow,
} from '../marketdata/events.js';
import { type SnapshotStore, SnapshotStoreError } from '../stream/claimCheck.js';
import {
  type BookCheckEvent,
  eventKey,
  namespacedId,
  type SnapshotRefEvent,
  type StreamEvent,
} from '../stream/record.js';
import { FEED } from '../telemetry/catalog.js';
import { Telemetry } from '../telemetry/telemetry.js';
import type { FrameArchive } from './archive.js';
import type { Frame } from './connection.js';
import { ExchangeClock } from './exchangeClock.js';
import { type FeedProtocol, protocolFor } from './feedProtocol.js';
import { type FeedLink, FeedStateMachine } from './feedStateMachine.js';
import { FeedStats } from './feedStats.js';
import type { KinesisProducer } from './producer.js';
import { SequenceChecker } from './sequence.js';

export { FEED_PARTITION } from './feedStats.js';

export interface IngestorOptions {
  feedUrl: string;
  /** Default: from the URL's host (see feedKindOf). */
  feedKind?: FeedKind;
  products: string[];
  producer: KinesisProducer;
  snapshots: SnapshotStore;
  log: Logger;
  /**
   * This ingestor's line (the `line` of its records, and the per-connection facts' ids). Default: the producer's
   * line if it has one, else start time + random suffix.
   */
  session?: string;
  /** Id namespace (src/stream/record.ts namespacedId): empty for the live feed, a replay's own otherwise. */
  namespace?: string;
  silenceMs?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  subscribeTimeoutMs?: number;
  pauseAt?: number;
  statsIntervalMs?: number;
  reconnectBaseMs?: number;
  reconnectCapMs?: number;
  /** Backoff jitter source in [0, 1) (seeded in tests). */
  random?: () => number;
  /** Periodic full-depth snapshot period in EXCHANGE time (see the module comment); 0 disables. Default 30000. */
  snapshotIntervalMs?: number;
  /** Exchange feed staleness limit; 0 disables. Default 60000. */
  bookStaleMs?: number;
  /** Advanced Trade: a fresh CDP JWT for each subscribe message (auth.ts), when a key is configured. */
  jwt?: () => string;
  /** Where the ingestor's metrics go (default: a Telemetry of its own, Prometheus only). */
  telemetry?: Telemetry;
  /** Raw frame archive (archive.ts): every frame as received. */
  archive?: FrameArchive;
  /** Called when the producer fails for good (the process should exit non-zero). */
  onFatal?: (err: unknown) => void;
  /**
   * Watermarks for quiet products (see publishWatermarks): the worker's tick grid (TICK_MS) and the lateness allowed
   * (WATERMARK_LATENESS_MS). Absent: none.
   */
  watermarks?: { tickMs: number; latenessMs: number };
}

/**
 * A watermark extrapolates the exchange's clock from the connection's newest book update or heartbeat at most this
 * far: heartbeats come every second, so a connection silent for longer says nothing about the exchange's time.
 */
export const MAX_WATERMARK_EXTRAPOLATION_MS = 1500;

/**
 * No watermark while the last frame handled had waited longer than this since it arrived: the ingestor is behind
 * (backpressure pauses the socket at 1,000 queued frames), and frames may still wait in the socket's buffer.
 */
export const WATERMARK_BACKLOG_MS = 100;

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
  /** The exchange's book snapshots published (by claim-check). */
  exchangeSnapshots: number;
  /** Rounds of periodic snapshots (one ref per usable book each). */
  periodicSnapshots: number;
  lastHeartbeatUs: number;
}

const nowUs = () => Date.now() * 1000;

/** A new ingestor session id (the event-id prefix): start time + random suffix. */
export function newSession(): string {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** What the ingestor knows of one product's book. */
interface ProductBook {
  book: OrderBook;
  /** Last published book event's seq and exchange time: the position a periodic snapshot stands for. */
  seq: number;
  exchUs: number;
  /** Receive time of the last book event or resync (staleness clock). */
  touchedUs: number;
}

export class Ingestor {
  readonly session: string;
  readonly kind: FeedKind;
  readonly telemetry: Telemetry;
  readonly counters: IngestorCounters = {
    connections: 0,
    reconnects: 0,
    resyncs: 0,
    frames: 0,
    malformed: 0,
    feedErrors: 0,
    published: 0,
    droppedChanges: 0,
    exchangeSnapshots: 0,
    periodicSnapshots: 0,
    lastHeartbeatUs: 0,
  };
  private readonly o: IngestorOptions & {
    session: string;
    silenceMs: number;
    statsIntervalMs: number;
    snapshotIntervalMs: number;
    bookStaleMs: number;
  };
  private readonly protocol: FeedProtocol;
  private readonly feed: FeedStateMachine;
  private readonly books = new Map<string, ProductBook>();
  private running = false;
  private statsTimer: NodeJS.Timeout | undefined;
  private watermarkTimer: NodeJS.Timeout | undefined;
  /** The newest connection's state (watermarks are published for it alone). */
  private current: ConnectionState | undefined;
  /** Frames in hand: the connection's pump hands them over one after another, watermarks wait until none is. */
  private handling = 0;
  /** How long the last frame handled had waited since it arrived, handling included (µs): a backlog's sign. */
  private frameWaitUs = 0;
  /** Exchange-time bucket (µs / snapshotIntervalMs) of the latest frame: entering a new one makes a periodic snapshot. */
  private readonly stats: FeedStats;
  /** Exchange time as the frames tell it: the periodic snapshots' clock and the resyncs' time. */
  private readonly clock: ExchangeClock;
  /** Resync rounds published (the per-line counter in their ids). */
  private resyncRounds = 0;
  /** Failed book checks published (the per-line counter in their ids). */
  private bookCheckFailures = 0;
  /** Products the worker's verdict asks to resync (product -> reason), done before the next frame. */
  private readonly verdictResyncs = new Map<string, string>();

  constructor(options: IngestorOptions) {
    this.o = {
      session: options.producer.line ?? newSession(),
      silenceMs: 5000,
      statsIntervalMs: 5000,
      snapshotIntervalMs: 30_000,
      bookStaleMs: 60_000,
      // An option given as undefined keeps its default (a caller passing a config field it did not set).
      ...(Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as IngestorOptions),
    };
    this.session = this.o.session;
    options.producer.bindLine(this.session);
    this.kind = options.feedKind ?? feedKindOf(options.feedUrl);
    this.telemetry = options.telemetry ?? new Telemetry({ service: 'ingestor' });
    for (const def of [
      FEED.frames,
      FEED.malformed,
      FEED.errors,
      FEED.reconnects,
      FEED.droppedChanges,
      FEED.bookVerdicts,
    ]) {
      this.telemetry.declare(def);
    }
    this.protocol = protocolFor(this.kind, options.jwt);
    this.clock = new ExchangeClock(this.o.snapshotIntervalMs);
    this.stats = new FeedStats({
      session: this.session,
      kind: this.kind,
      telemetry: this.telemetry,
      log: this.o.log,
      id: (stats, n) => this.id(stats, n),
    });
    this.feed = new FeedStateMachine({
      url: this.o.feedUrl,
      subscribeMessages: () => this.protocol.subscribe(this.o.products),
      onConnection: (link) => this.onConnection(link),
      silenceMs: this.o.silenceMs,
      pingIntervalMs: this.o.pingIntervalMs,
      pongTimeoutMs: this.o.pongTimeoutMs,
      subscribeTimeoutMs: this.o.subscribeTimeoutMs,
      pauseAt: this.o.pauseAt,
      backoffBaseMs: this.o.reconnectBaseMs ?? 250,
      backoffCapMs: this.o.reconnectCapMs ?? 10_000,
      random: this.o.random,
      log: this.o.log,
      telemetry: this.telemetry,
    });
  }

  /** The connection state machine's current state. */
  get state() {
    return this.feed.state;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.feed.start();
    // A failing put is already logged and reported through onFatal.
    // Stats are about the process's health, so they (alone) run on the wall clock.
    this.statsTimer = setInterval(() => void this.publishStats().catch(() => {}), this.o.statsIntervalMs);
    this.scheduleWatermarks(this.o.watermarks?.tickMs ?? 0);
  }

  /**
   * Closes the connection, waits for the frame in hand, publishes final stats, flushes the producer and then
   * the archive (also when the producer fails: the archive is what is left to replay).
   */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearInterval(this.statsTimer);
    clearTimeout(this.watermarkTimer);
    await this.feed.stop();
    await this.publishStats().catch(() => {});
    try {
      await this.o.producer.close();
    } finally {
      await this.o.archive?.close();
    }
    this.o.log('info', 'ingestor stopped', { ...this.counters, producer: this.o.producer.stats() });
  }

  private bookOf(product: string): ProductBook {
    let b = this.books.get(product);
    if (!b) {
      b = { book: new OrderBook(product), seq: -1, exchUs: 0, touchedUs: nowUs() };
      this.books.set(product, b);
    }
    return b;
  }

  private onConnection(link: FeedLink): (frame: Frame) => Promise<void> {
    this.counters.connections++;
    if (link.number > 0) this.counters.reconnects++;
    const state = new ConnectionState(`${this.session}.${link.number}`, this.o.products, link.number > 0);
    this.current = state;
    // A new connection starts every product from a fresh snapshot: nothing left to do for a verdict.
    this.verdictResyncs.clear();
    return (frame) => this.onFrame(link, state, frame);
  }

  private async onFrame(link: FeedLink, state: ConnectionState, frame: Frame): Promise<void> {
    this.handling++;
    try {
      await this.frame(link, state, frame);
    } finally {
      this.handling--;
      this.frameWaitUs = nowUs() - frame.recvUs;
    }
  }

  private async frame(link: FeedLink, state: ConnectionState, frame: Frame): Promise<void> {
    this.o.archive?.write(state.session, frame.raw, frame.recvUs);
    this.counters.frames++;
    this.telemetry.count(FEED.frames);
    let mapped: MappedFrame;
    try {
      mapped = await this.protocol.map(frame.raw, frame.recvUs);
    } catch (err) {
      if (err instanceof MalformedFrameError) {
        // Skipped; if it carried book data, the next frame's sequence number reveals the gap and we resync.
        this.counters.malformed++;
        this.telemetry.count(FEED.malformed);
        this.o.log('warn', 'malformed frame skipped', { error: err.message });
        return;
      }
      if (err instanceof FeedError) {
        this.counters.feedErrors++;
        this.telemetry.count(FEED.errors);
        this.o.log('error', 'feed error', { error: err.feedMessage });
        link.close('error', err.message);
        return;
      }
      throw err;
    }
    // An Exchange snapshot carries no time: it and the frames after it wait (in order) for the next frame that
    // tells the exchange's time (see bookUpdateTime), and it takes that time.
    const timeUs = bookUpdateTime(mapped);
    if (mapped.untimedSnapshot || (state.held.length > 0 && timeUs === undefined)) {
      state.held.push({ frame, mapped });
      return;
    }
    if (state.held.length > 0) {
      const held = state.held.splice(0);
      const stampUs = Math.max(timeUs!, this.clock.nowUs ?? Number.NEGATIVE_INFINITY);
      for (const h of held) {
        if (h.mapped.untimedSnapshot)
          for (const e of h.mapped.events) if (e.type === 'book_snapshot') e.exchUs = stampUs;
        await this.handleFrame(link, state, h.frame, h.mapped, undefined); // held: it told no time
      }
    }
    await this.handleFrame(link, state, frame, mapped, timeUs);
  }

  /**
   * One mapped frame, in feed order: the periodic snapshots it makes due, the sequence check, its events. `timeUs`:
   * the exchange's time the frame tells (bookUpdateTime), the watermarks' reference.
   */
  private async handleFrame(
    link: FeedLink,
    state: ConnectionState,
    frame: Frame,
    mapped: MappedFrame,
    timeUs: number | undefined,
  ) {
    const snapshotDue = this.clock.advance(mapped);
    if (timeUs !== undefined && timeUs > (state.told?.exchUs ?? Number.NEGATIVE_INFINITY))
      state.told = { exchUs: timeUs, recvUs: frame.recvUs };
    if (!state.announced) {
      // Whatever consumers had of the books is stale until this connection's snapshots arrive. Published from
      // the frame pump so it precedes every event of the connection.
      state.announced = true;
      await this.publishResync(state, this.o.products, -1, state.isReconnect ? 'reconnect' : 'connect');
    }
    // Before this frame's events (and any resync it causes): the books as of the previous frame.
    if (snapshotDue) await this.publishPeriodicSnapshots(state, frame.recvUs);
    if (this.verdictResyncs.size > 0) await this.resyncOnVerdicts(link, state);

    if (this.protocol.sequenced) {
      const decision = state.sequence.check(mapped.seq);
      if (decision.kind !== 'ok') {
        this.o.log('warn', 'sequence break: resync', { ...decision, connection: state.session });
        await this.publishResync(
          state,
          this.o.products,
          mapped.seq,
          `${decision.kind}: expected ${decision.expected}, got ${decision.got}`,
        );
        link.send(this.protocol.resubscribeBook(this.o.products));
      }
    }

    for (const event of mapped.events) await this.publishEvent(link, state, event);
  }

  /** The newest exchange time the frames have told (µs), undefined before any: a failed book check's time. */
  get exchangeTimeUs(): number | undefined {
    return this.clock.nowUs;
  }

  /**
   * Puts the exchange's REST book of a product (or why there is none) into that product's stream, after every
   * event published so far: the point where the worker compares its book with it.
   */
  async publishBookCheck(check: BookCheckEvent): Promise<void> {
    const n = check.unavailable === undefined ? 0 : this.bookCheckFailures++;
    await this.put({ ...check, id: this.id(check, n) });
  }

  /**
   * The worker found its book of `product` different from the exchange's (a lost update no sequence reveals):
   * publishes a resync of that product alone and resubscribes its level2, so the exchange sends a fresh snapshot.
   * Done before the next frame is handled; false when there is no subscribed connection to resubscribe on (the
   * next one starts with snapshots anyway).
   */
  resyncOnVerdict(product: string, reason: string): boolean {
    if (!this.o.products.includes(product) || this.feed.state !== 'subscribed') return false;
    this.verdictResyncs.set(product, reason);
    return true;
  }

  /** The verdicts' resyncs, between two frames: no book change of the frame in hand can follow its resync. */
  private async resyncOnVerdicts(link: FeedLink, state: ConnectionState): Promise<void> {
    const due = [...this.verdictResyncs];
    this.verdictResyncs.clear();
    for (const [product, reason] of due) {
      this.telemetry.count(FEED.bookVerdicts);
      await this.resyncProduct(link, state, product, -1, `book check mismatch: ${reason}`);
    }
  }

  /** The id of an event this ingestor publishes: its exchange key (per-line kinds: the line's `n`th). */
  private id(event: Parameters<typeof eventKey>[0], n = 0): string {
    return namespacedId(eventKey(event, this.session, n), this.o.namespace);
  }

  private async publishEvent(link: FeedLink, state: ConnectionState, event: MarketEvent) {
    if (event.type !== 'heartbeat' && event.type !== 'resync') {
      const last = state.lastUs.get(event.product);
      if (last === undefined || event.exchUs > last) state.lastUs.set(event.product, event.exchUs);
    }
    switch (event.type) {
      case 'heartbeat':
        this.counters.lastHeartbeatUs = event.recvUs;
        if (!this.protocol.sequenced) await this.checkStale(link, state, event.product, event.recvUs);
        return;
      case 'book_snapshot': {
        const b = this.bookOf(event.product);
        try {
          b.book.applySnapshot(event.bids, event.asks);
        } catch (err) {
          if (!(err instanceof BookError)) throw err;
          this.o.log('warn', 'unusable snapshot: resync', {
            product: event.product,
            error: describeError(err),
          });
          await this.resyncProduct(link, state, event.product, event.seq, 'bad snapshot');
          return;
        }
        // S3 first: the ref must never point at a missing object. S3 failing for a moment (restarting, throttled)
        // is waited out (src/aws/retry.ts): the frames queue meanwhile, where giving up would reconnect and resync.
        const ref = await retryTransient(() => this.o.snapshots.put(event, state.session), {
          onRetry: logRetries(this.o.log, 'snapshot not stored; retrying', { product: event.product }),
        });
        state.awaitingSnapshot.delete(event.product);
        Object.assign(b, { seq: event.seq, exchUs: event.exchUs, touchedUs: event.recvUs });
        const exchangeRef = { ...ref, source: 'exchange' as const };
        await this.put({ ...exchangeRef, id: this.id(exchangeRef, this.counters.exchangeSnapshots++) });
        return;
      }
      case 'book_changes': {
        if (state.awaitingSnapshot.has(event.product)) {
          this.counters.droppedChanges++;
          this.telemetry.count(FEED.droppedChanges);
          return;
        }
        const b = this.bookOf(event.product);
        for (const c of event.changes) b.book.applyChange(c.side, c.price, c.size);
        Object.assign(b, { seq: event.seq, exchUs: event.exchUs, touchedUs: event.recvUs });
        await this.put({ ...event, id: this.id(event) });
        if (b.book.isCrossed()) {
          const bid = fromUnits(b.book.bestBid());
          const ask = fromUnits(b.book.bestAsk());
          await this.resyncProduct(
            link,
            state,
            event.product,
            event.seq,
            `crossed: bid ${bid} >= ask ${ask}`,
          );
        }
        return;
      }
      case 'trade': {
        // The Exchange feed numbers each product's trades one by one (trade_id), and its level2 has no sequence:
        // a skipped number is a trade lost on the way, which nothing else would reveal. Its trade windows are wrong
        // until the gap leaves them, so the product resyncs before this trade (its level2 resubscribed, as for a
        // crossed book) and the predictions around it abstain. Advanced Trade's frame counter covers its trades.
        if (!this.protocol.sequenced && /^\d{1,15}$/.test(event.tradeId)) {
          const id = Number(event.tradeId);
          const last = state.tradeIds.get(event.product);
          if (last === undefined || id > last) state.tradeIds.set(event.product, id);
          if (last !== undefined && id > last + 1) {
            const reason = `trade gap: expected ${last + 1}, got ${id}`;
            await this.resyncProduct(link, state, event.product, event.seq, reason);
          }
        }
        await this.put({ ...event, id: this.id(event) });
        return;
      }
      default:
        await this.put({ ...event, id: this.id(event) });
    }
  }

  /** Exchange feed: heartbeats for `product` flow but its book has not moved for too long. */
  private async checkStale(link: FeedLink, state: ConnectionState, product: string, recvUs: number) {
    if (this.o.bookStaleMs <= 0 || !this.o.products.includes(product)) return;
    const b = this.bookOf(product);
    if (recvUs - b.touchedUs <= this.o.bookStaleMs * 1000) return;
    await this.resyncProduct(link, state, product, -1, `stale: no book update for ${this.o.bookStaleMs} ms`);
  }

  private async resyncProduct(
    link: FeedLink,
    state: ConnectionState,
    product: string,
    seq: number,
    reason: string,
  ) {
    // The exchange time says where in the market it happened (a run's report places it among the checks).
    const exchUs = this.clock.nowUs;
    this.o.log('warn', 'book resync', { product, reason, connection: state.session, exchUs });
    await this.publishResync(state, [product], seq, reason);
    link.send(this.protocol.resubscribeBook([product]));
  }

  private async publishResync(state: ConnectionState, products: string[], seq: number, reason: string) {
    this.counters.resyncs++;
    this.telemetry.count(FEED.resyncs, 1);
    this.telemetry.count(FEED.resyncReasons, 1, { Reason: resyncReason(reason) });
    const t = nowUs();
    // A resync happens at a point of the stream, not at a market time: it carries the newest exchange time seen
    // so far (the receive time only before any), never the wall clock, which replays and a lagging feed do not share.
    const exchUs = this.clock.nowUs ?? t;
    const n = this.resyncRounds++;
    for (const product of products) {
      state.awaitingSnapshot.add(product);
      this.bookOf(product).touchedUs = t;
      const event: ResyncEvent = { type: 'resync', product, exchUs, recvUs: t, seq, reason };
      await this.put({ ...event, id: this.id(event, n) });
    }
  }

  /** Full-depth copy of every usable book to S3 and its ref into the stream, at this point of the sequence. */
  private async publishPeriodicSnapshots(state: ConnectionState, recvUs: number): Promise<void> {
    const n = this.counters.periodicSnapshots++;
    for (const product of this.o.products) {
      const b = this.books.get(product);
      if (!b || state.awaitingSnapshot.has(product)) continue;
      const snapshot: BookSnapshotEvent = {
        type: 'book_snapshot',
        product,
        exchUs: b.exchUs,
        recvUs,
        seq: b.seq,
        bids: levels(b.book, 'bid'),
        asks: levels(b.book, 'ask'),
      };
      let ref: SnapshotRefEvent;
      try {
        ref = await this.o.snapshots.put(snapshot, `${state.session}.p${n}`);
      } catch (err) {
        // A periodic snapshot only shortens a consumer's replay: without it the stream is still whole, so the
        // connection goes on (a reconnect would lose the frames in between) and the next period tries again.
        if (!(err instanceof SnapshotStoreError)) throw err;
        this.o.log('warn', 'periodic snapshot not stored; skipped', { product, error: describeError(err) });
        continue;
      }
      this.telemetry.count(FEED.periodicSnapshots);
      const periodic = { ...ref, source: 'periodic' as const };
      await this.put({ ...periodic, id: this.id(periodic) });
    }
  }

  /**
   * Watermarks (src/stream/record.ts WatermarkEvent), on the wall clock, between frames: for each product of the
   * current connection whose book is in sync, the newest tick boundary at or before the exchange time extrapolated
   * from the connection's newest book update or heartbeat less the allowed lateness — when that boundary is past
   * everything the product published. A busy product never needs one (its own events move the worker's clock); a
   * quiet one gets its ticks closed `latenessMs` after their time instead of at its next event.
   * Never while frames are in hand or held (they may be older), while the ingestor is behind (WATERMARK_BACKLOG_MS),
   * nor past MAX_WATERMARK_EXTRAPOLATION_MS of silence. Rechecked before each product's: a frame may come meanwhile.
   * An event the exchange sends more than the lateness behind the connection's clock, or a connection that stalls
   * silently for longer than the lateness, still comes after a watermark it precedes: it is late (WorkerLateEvents).
   */
  private async publishWatermarks(): Promise<void> {
    const w = this.o.watermarks;
    const state = this.current;
    // Between frames only, on the current connection, and not behind (see WATERMARK_BACKLOG_MS).
    const between = () =>
      this.running &&
      state !== undefined &&
      state === this.current &&
      this.handling === 0 &&
      state.held.length === 0 &&
      this.feed.state === 'subscribed' &&
      this.frameWaitUs <= WATERMARK_BACKLOG_MS * 1000;
    if (!w || !state?.told || !between()) return;
    const now = nowUs();
    if (now - state.told.recvUs > MAX_WATERMARK_EXTRAPOLATION_MS * 1000) return;
    const tickUs = w.tickMs * 1000;
    const atUs = Math.floor(watermarkTimeUs(state.told, now, w.latenessMs) / tickUs) * tickUs;
    for (const product of this.o.products) {
      const last = state.lastUs.get(product);
      if (last === undefined || state.awaitingSnapshot.has(product)) continue;
      if (!(atUs > last) || !(atUs > (state.watermarkUs.get(product) ?? Number.NEGATIVE_INFINITY))) continue;
      if (!between()) return; // a frame came while the previous product's watermark was put
      state.watermarkUs.set(product, atUs);
      const mark = { type: 'watermark' as const, product, exchUs: atUs, recvUs: now, seq: -1 };
      await this.put({ ...mark, id: this.id(mark) });
    }
  }

  /** The next watermark round: when the extrapolated exchange time crosses the next tick boundary. */
  private scheduleWatermarks(delayMs: number): void {
    const w = this.o.watermarks;
    if (!w || !this.running) return;
    // setImmediate: after a stall the timer fires before the socket's waiting frames are read; once they are, the
    // pump has them in hand and the round is skipped.
    this.watermarkTimer = setTimeout(
      () =>
        setImmediate(() => {
          void this.publishWatermarks()
            .catch(() => {}) // a failing put is already logged and reported through onFatal
            .finally(() => this.scheduleWatermarks(this.nextWatermarkMs(w)));
        }),
      delayMs,
    );
  }

  private nextWatermarkMs(w: { tickMs: number; latenessMs: number }): number {
    const told = this.current?.told;
    if (!told) return w.tickMs;
    const tickUs = w.tickMs * 1000;
    const estUs = watermarkTimeUs(told, nowUs(), w.latenessMs);
    const nextUs = (Math.floor(estUs / tickUs) + 1) * tickUs;
    return Math.min(w.tickMs, Math.max(1, Math.ceil((nextUs - estUs) / 1000)));
  }

  private async publishStats(): Promise<void> {
    const stats = this.stats.next(nowUs(), this.feed.totals, this.counters, this.o.producer.stats());
    await this.put(stats);
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

/** Every level of one side, best first, as normalized decimal strings. */
function levels(book: OrderBook, side: 'bid' | 'ask'): Level[] {
  return book.top(side, book.depth(side));
}

/** The metric dimension of a resync reason: "gap: expected 5, got 9" -> "gap", "bad snapshot" -> "bad_snapshot". */
export function resyncReason(reason: string): string {
  return reason.split(':')[0]!.trim().replace(/\s+/g, '_');
}

/**
 * The exchange's time at wall time `nowUs`, extrapolated from the newest frame that told it (its time plus the wall
 * time since it arrived), less the lateness allowed: how far a watermark may reach.
 */
function watermarkTimeUs(
  told: { exchUs: number; recvUs: number },
  nowUs: number,
  latenessMs: number,
): number {
  return told.exchUs + (nowUs - told.recvUs) - latenessMs * 1000;
}

/**
 * When a frame tells the exchange's time as it is now, µs: the newest time of its events that do
 * (tellsExchangeNow: book updates and heartbeats); undefined for a frame without any.
 */
export function bookUpdateTime(mapped: MappedFrame): number | undefined {
  let us: number | undefined;
  for (const e of mapped.events)
    if (tellsExchangeNow(e) && (us === undefined || e.exchUs > us)) us = e.exchUs;
  return us;
}

/** What one connection needs to remember. */
class ConnectionState {
  readonly sequence = new SequenceChecker();
  /** Products whose book changes are held back until their next snapshot. */
  readonly awaitingSnapshot: Set<string>;
  announced = false;
  /**
   * Frames from an untimed snapshot on, until one tells the exchange's time: not handled yet (a connection that
   * closes first drops them, as it drops the frames queued in it; the next one starts from snapshots).
   */
  readonly held: { frame: Frame; mapped: MappedFrame }[] = [];
  /** The newest exchange time a frame told (a book update's or a heartbeat's) and when that frame arrived. */
  told: { exchUs: number; recvUs: number } | undefined;
  /** Per product: the newest exchange time of its events published from this connection. */
  readonly lastUs = new Map<string, number>();
  /** Per product: the last watermark published from this connection. */
  readonly watermarkUs = new Map<string, number>();
  /** Exchange feed, per product: the highest trade id seen on this connection. */
  readonly tradeIds = new Map<string, number>();

  constructor(
    readonly session: string,
    products: string[],
    readonly isReconnect: boolean,
  ) {
    this.awaitingSnapshot = new Set(products);
  }
}
