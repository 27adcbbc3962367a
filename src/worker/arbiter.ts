/**
 * Line arbitration: ONE book per product from any number of ingestors ("lines") on the same feed — a hot-standby
 * pair, or the old and new task of a rolling deploy. Every line delivers the same exchange events under the same
 * ids (src/stream/record.ts eventKey), in the exchange's order, each with its own drops and frame batching.
 *
 * Per product (and id namespace: a replay is a feed of its own), one line is the PRIMARY: its events are passed on
 * at once, in its order, so steady state costs no latency. The others are STANDBYS: each keeps, from its last
 * snapshot on (then it is "continuous"), the trades and book changes the primary has not delivered yet. The result
 * is the stream one clean connection would have given:
 * - a standby's copy of what the primary already passed is dropped (de-duplication by id, dedup.ts);
 * - when the primary loses data (its ingestor publishes a resync: a sequence gap, a reconnect, a crossed book)
 *   and a standby is continuous and alive (it delivered within `failoverMs` of the feed's time: a killed ingestor
 *   publishes no resync, and a dead line made primary would hold back the live ones), the standby takes over: what
 *   it holds that was not passed yet is passed now, in its order, and the resync is absorbed — the book is never
 *   cleared for a gap the other line covered;
 * - when the primary falls silent (its ingestor was killed) or behind, a continuous standby whose oldest held
 *   event is `failoverMs` of exchange time older than its newest takes over the same way — at once if it
 *   continues what was passed, but if its snapshot is newer than that (a takeover would leave a hole: a resync)
 *   only once the primary has delivered nothing for `failoverMs` of the feed's time: a primary that is merely
 *   behind (a slow connection, a backlog) still has those events, and delivers them; and never while another
 *   standby holds events that continue what was passed (that one takes over first); of the standbys that would
 *   leave a hole, the one whose snapshot is oldest takes over (the smallest hole);
 * - a standby that loses data while the primary is silent takes over first with what it holds (nobody else will
 *   deliver it), then its resync is the primary's;
 * - only when no line is continuous does the resync reach the book (which then waits for the next snapshot, from
 *   whichever line brings it first: that line becomes the primary — if no book change passed is newer than it,
 *   else a lagging line's older snapshot would miss the changes already passed, which are not passed twice).
 *   Before it, whatever a standby holds that continues what was passed is passed (a killed standby's last events
 *   narrow the hole), and the resync is placed where the passed stream breaks: its time becomes the newest time
 *   passed, tickers and heartbeats included (the line's own time is its last sighting, or the wall clock for a
 *   connect, which can lie anywhere before the hole);
 * - a snapshot passed from one line makes what the others hold from before its time obsolete: those book changes
 *   are dropped (applied after the snapshot they would take levels back in time), their trades are not;
 * - a book change is applied to a level only if it is newer than what the level holds (two lines may batch the
 *   same changes into different events, so after a switch an event can be partly known): the level's exchange time,
 *   and at equal times the sizes already applied (a level changed twice to the same size within one microsecond is
 *   indistinguishable from a copy).
 * Events of a line that is not continuous (between its resync and its next snapshot) are not needed while another
 * line is primary; with no primary at all, every line's trades and tickers pass, first copy wins. A trade needs no
 * book, so none is ever dropped for coming from the wrong line: a standby's trade the passed stream still lacks
 * once it has moved `failoverMs` past it (its line lost it, and the primary changed in between) is passed late.
 */
import type { LevelChange } from '../marketdata/events.js';
import { eventKey, namespacedId, namespaceOf, type StreamEvent } from '../stream/record.js';
import { Deduplicator } from './dedup.js';

export interface ArbiterOptions {
  /** De-duplication window in exchange time (DEDUP_WINDOW_MS; see dedup.ts). */
  windowMs: number;
  /** A standby this far ahead of the primary in exchange time takes over (LINE_FAILOVER_MS). */
  failoverMs: number;
}

export const DEFAULT_ARBITER: ArbiterOptions = { windowMs: 120_000, failoverMs: 2_000 };

/** An event as it came: its record's Kinesis sequence number and its position there (the raw zone keeps both). */
export interface Delivered {
  event: StreamEvent;
  record: string;
  index: number;
}

export interface ArbiterCounters {
  /** Copies dropped: the same id already passed (another line, a retry, a replay after a restart). */
  duplicates: number;
  /** Trades and book changes older than the window. */
  stale: number;
  /** Book changes dropped from an event because their level already held them or something newer. */
  levelRepeats: number;
  /** Switches of a product's primary line. */
  failovers: number;
  /** Resyncs of one line covered by another (not passed on). */
  absorbedResyncs: number;
  /** Resyncs passed on: no line had the product's book, or a takeover found events none of them had. */
  resyncs: number;
  /** A standby's events not needed because the primary delivers them (a standby between resync and snapshot). */
  covered: number;
}

interface LineState {
  /** The line has had a snapshot of the product since its last resync. */
  continuous: boolean;
  /** Its snapshot since then (a takeover needs it when the line starts after what was passed). */
  snapshot: Delivered | undefined;
  /** Its last resync, absorbed while another line was primary (passed if a takeover finds a hole). */
  resync: Delivered | undefined;
  /** As standby: its trades and book changes not yet passed, in its order. */
  held: Delivered[];
  /** Newest exchange time of its trades and book changes. */
  newestUs: number;
  /** The feed's time when it last delivered a trade, a book change or a snapshot (a silent line is not a standby). */
  pulseUs: number;
  /** Its newest watermark (src/stream/record.ts): it has delivered everything before that, it says. */
  watermarkUs: number;
}

/** What one product (of one namespace) knows of its lines. */
class ProductArbiter {
  readonly lines = new Map<string, LineState>();
  primary: string | undefined;
  /** The passed stream holds the product's book: a snapshot came after the last resync passed on. */
  bookOk = false;
  /** A resync was passed on: the stream has started (its first resync is its start). */
  private started = false;
  /** Ids of lines' first resyncs absorbed as their start (one per line: a copy of one must not pass later). */
  private readonly absorbed = new Set<string>();
  readonly ids: Deduplicator;
  /** Per level (`side|price`): exchange time of the change it holds, and the sizes applied at that time. */
  private readonly levels = new Map<string, { us: number; sizes: string[] }>();
  private passedSinceSweep = 0;
  /** The feed's time: the newest trade or book change of any line. */
  private feedUs = Number.NEGATIVE_INFINITY;
  /** The last snapshot passed: its exchange time and its line (the book holds every change before it). */
  private snapshotUs = Number.NEGATIVE_INFINITY;
  private snapshotLine: string | undefined;
  /** The newest exchange time of a book change passed. */
  private changesUs = Number.NEGATIVE_INFINITY;
  /** The newest time of anything passed that moves the feature pipeline's clock (its watermark): tickers too. */
  private streamUs = Number.NEGATIVE_INFINITY;
  /** The feed's time when the primary last delivered a trade or book change. */
  private primaryPulseUs = Number.NEGATIVE_INFINITY;
  /** Standbys' trades not passed yet, by id (see the header: passed late if the passed stream never brings them). */
  private readonly pendingTrades = new Map<string, Delivered>();

  constructor(
    private readonly o: ArbiterOptions,
    private readonly c: ArbiterCounters,
  ) {
    this.ids = new Deduplicator(o.windowMs);
  }

  handle(line: string, d: Delivered, out: Delivered[]): void {
    const e = d.event;
    let ls = this.lines.get(line);
    const fresh = ls === undefined;
    if (!ls) {
      ls = {
        continuous: false,
        snapshot: undefined,
        resync: undefined,
        held: [],
        newestUs: Number.NEGATIVE_INFINITY,
        pulseUs: Number.NEGATIVE_INFINITY,
        watermarkUs: Number.NEGATIVE_INFINITY,
      };
      this.lines.set(line, ls);
    }
    if (e.type === 'trade' || e.type === 'book_changes') {
      ls.newestUs = Math.max(ls.newestUs, e.exchUs);
      this.feedUs = Math.max(this.feedUs, e.exchUs);
      if (line === this.primary) this.primaryPulseUs = this.feedUs;
    }
    if (
      e.type === 'trade' ||
      e.type === 'book_changes' ||
      e.type === 'snapshot_ref' ||
      e.type === 'book_snapshot'
    )
      ls.pulseUs = this.feedUs;
    switch (e.type) {
      case 'resync':
        this.onResync(line, ls, d, out, fresh);
        return;
      case 'snapshot_ref':
      case 'book_snapshot':
        this.onSnapshot(line, ls, d, out);
        return;
      case 'book_check':
        // The exchange's REST book is judged by its own time, not its place in one line's stream (only one
        // ingestor fetches it, and it may be a standby): passed from any line, once.
        this.pass(d, out);
        return;
      case 'watermark':
        this.onWatermark(ls, d, out);
        return;
    }
    if (this.primary === line || this.primary === undefined) {
      this.pass(d, out);
      return;
    }
    if (e.type === 'trade' && this.ids.check(e.id, e.exchUs, true) === 'new') this.pendingTrades.set(e.id, d);
    // A standby: keep what only exchange-identified events can tell (tickers and heartbeats carry the frame's
    // time, which is one connection's), and only while it is continuous.
    if (!ls.continuous || (e.type !== 'trade' && e.type !== 'book_changes')) {
      this.c.covered++;
      return;
    }
    const verdict = this.ids.check(e.id, e.exchUs, true);
    if (verdict !== 'new') {
      this.count(verdict);
      return;
    }
    ls.held.push(d);
    this.maybeTakeOver(line, ls, out);
  }

  /**
   * A line's watermark is its own word; the passed stream's is the newest time every line that could still add to
   * it agrees on (as for any operator with several inputs): the primary's, held back by every standby that could take
   * over (canTakeOver), however far behind (its progress is its watermark, or its newest event if that is newer), and
   * never past an event a standby holds or a trade pending, which may still be passed and must not arrive late. A dead
   * standby holds it back until the feed has moved `failoverMs` past its last delivery: in a quiet market, until
   * then, ticks wait for events. Passed (under its own key) only when it moves the passed stream's clock.
   */
  private onWatermark(ls: LineState, d: Delivered, out: Delivered[]): void {
    ls.watermarkUs = Math.max(ls.watermarkUs, d.event.exchUs);
    const primary = this.primary === undefined ? undefined : this.lines.get(this.primary);
    if (!primary || !this.bookOk) return;
    let us = primary.watermarkUs;
    for (const [line, other] of this.lines) {
      if (line === this.primary) continue;
      for (const h of other.held) us = Math.min(us, h.event.exchUs);
      // Any line that could take over, however far behind: what it brings then must not be late.
      // How far it has come: its watermark, or its newest event (a line without watermarks, or before its first).
      if (this.canTakeOver(other)) us = Math.min(us, Math.max(other.watermarkUs, other.newestUs));
    }
    for (const t of this.pendingTrades.values()) us = Math.min(us, t.event.exchUs);
    if (!(us > this.streamUs)) return;
    this.streamUs = us;
    const mark = {
      type: 'watermark' as const,
      product: d.event.product,
      exchUs: us,
      recvUs: d.event.recvUs,
      seq: -1,
    };
    out.push({ ...d, event: { ...mark, id: namespacedId(eventKey(mark, ''), namespaceOf(d.event.id)) } });
  }

  private onResync(line: string, ls: LineState, d: Delivered, out: Delivered[], fresh: boolean): void {
    if (this.absorbed.has(d.event.id)) {
      this.c.duplicates++; // a second copy of a line's start (Kinesis delivers at least once)
      return;
    }
    if (fresh && this.primary === undefined && this.started) {
      this.absorbed.add(d.event.id);
      // A line whose first word is its resync is starting (a new connection, a new ingestor): with no line holding
      // the book, the stream has already said it is broken, and a second break would only make this line's start
      // a point of the stream (it clears the pipeline's ticker quote) that one connection would not have had.
      ls.resync = d;
      this.c.absorbedResyncs++;
      return;
    }
    const isStandby = this.primary !== line && this.primary !== undefined;
    if (
      isStandby &&
      ls.continuous &&
      this.trim(line, ls) &&
      this.feedUs - this.primaryPulseUs > this.o.failoverMs * 1000
    ) {
      // The primary is silent and this line holds what it never delivered: that goes first, then its gap.
      this.takeOver(line, out);
    }
    ls.continuous = false;
    ls.snapshot = undefined;
    ls.held = [];
    ls.resync = d;
    if (this.primary !== line && this.primary !== undefined) {
      this.c.absorbedResyncs++;
      return;
    }
    this.primary = undefined;
    const standby = this.bestStandby();
    if (standby) {
      this.c.absorbedResyncs++;
      this.takeOver(standby, out, d);
      return;
    }
    // No line has the book: it must be rebuilt from the next snapshot.
    this.passResync(d, out, line);
  }

  /**
   * The book breaks here. What standbys hold that continues the passed stream goes first (a line killed before it
   * could take over), then the resync, at the passed stream's newest time (the pipeline's clock, which tickers and
   * heartbeats move too): where the hole in the ticks begins.
   * `except`: the line taking over (its events come after its snapshot, after the resync).
   */
  private passResync(d: Delivered, out: Delivered[], except: string): void {
    if (this.ids.check(d.event.id, d.event.exchUs, false) !== 'new') return;
    if (this.bookOk) {
      for (const [line, ls] of this.lines) {
        if (line === except || !ls.continuous || ls.held.length === 0 || !this.gapless(ls)) continue;
        const held = ls.held;
        ls.held = [];
        for (const h of held) this.passHeld(line, h, out);
      }
    }
    this.ids.pass(d.event.id, d.event.exchUs, false);
    this.bookOk = false;
    this.started = true;
    this.c.resyncs++;
    const at = Math.max(this.passedUs(), this.streamUs);
    out.push(Number.isFinite(at) && at !== d.event.exchUs ? { ...d, event: { ...d.event, exchUs: at } } : d);
  }

  /** How far the passed stream reaches in exchange time: its newest trade or book change, or its snapshot. */
  private passedUs(): number {
    return Math.max(this.ids.newestUs, this.snapshotUs);
  }

  /** A line that starts at or before what was passed continues it: taking over with it leaves no hole. */
  private gapless(ls: LineState): boolean {
    return !ls.snapshot || ls.snapshot.event.exchUs <= this.passedUs();
  }

  /** A book change of `line` from before the snapshot another line gave the passed stream: obsolete. */
  private superseded(line: string, d: Delivered): boolean {
    return d.event.type === 'book_changes' && line !== this.snapshotLine && d.event.exchUs < this.snapshotUs;
  }

  /** Passes one of a standby's held events, unless a snapshot passed since made it obsolete. */
  private passHeld(line: string, d: Delivered, out: Delivered[]): void {
    if (this.superseded(line, d)) {
      this.c.covered++;
      return;
    }
    this.pass(d, out);
  }

  private count(verdict: 'duplicate' | 'stale'): void {
    if (verdict === 'stale') this.c.stale++;
    else this.c.duplicates++;
  }

  private onSnapshot(line: string, ls: LineState, d: Delivered, out: Delivered[]): void {
    if (
      this.primary === undefined &&
      this.ids.check(d.event.id, d.event.exchUs, false) === 'new' &&
      this.rebuilds(d)
    )
      this.primary = line;
    if (this.primary !== line) {
      // A standby's starting point (passed only if it takes over); a continuous one needs no new start.
      if (!ls.continuous) Object.assign(ls, { continuous: true, held: [], snapshot: d });
      this.c.covered++;
      return;
    }
    Object.assign(ls, { continuous: true, held: [], snapshot: d, resync: undefined });
    const verdict = this.ids.check(d.event.id, d.event.exchUs, false);
    if (verdict !== 'new') {
      this.count(verdict);
      return;
    }
    if (!this.rebuilds(d)) {
      this.c.covered++;
      return;
    }
    this.passSnapshot(line, d, out);
  }

  /**
   * A snapshot is passed only if no book change passed is newer: those would not be applied again on top of it (a
   * copy is dropped), so a lagging line's older snapshot would give a wrong book until the next. That holds with the
   * book whole too: a line that took over behind the other brings its own periodic snapshot, older than the changes
   * the other passed; its book is the passed one already, and the snapshot is not needed.
   */
  private rebuilds(d: Delivered): boolean {
    return d.event.exchUs >= this.changesUs;
  }

  private passSnapshot(line: string, d: Delivered, out: Delivered[]): void {
    this.ids.pass(d.event.id, d.event.exchUs, false);
    this.bookOk = true;
    this.levels.clear(); // the snapshot holds every level now
    this.snapshotUs = d.event.exchUs;
    this.snapshotLine = line;
    this.streamUs = Math.max(this.streamUs, d.event.exchUs);
    out.push(d);
  }

  /**
   * The continuous standby to take over with: among those that delivered within `failoverMs` of the feed's time (a
   * killed ingestor publishes no resync, so its line stays "continuous"; one merely behind still delivers), one
   * that continues what was passed (no hole) before one that does not, then the one furthest ahead.
   */
  private bestStandby(): string | undefined {
    let best: string | undefined;
    let bestRank = Number.NEGATIVE_INFINITY;
    let bestUs = Number.NEGATIVE_INFINITY;
    for (const [line, ls] of this.lines) {
      if (line === this.primary || !this.canTakeOver(ls)) continue;
      const rank = this.gapless(ls) ? 1 : 0;
      if (rank > bestRank || (rank === bestRank && ls.newestUs > bestUs)) {
        best = line;
        bestRank = rank;
        bestUs = ls.newestUs;
      }
    }
    return best;
  }

  /** A standby that could take over: continuous, and it delivered within `failoverMs` of the feed's time. */
  private canTakeOver(ls: LineState): boolean {
    return ls.continuous && ls.pulseUs >= this.feedUs - this.o.failoverMs * 1000;
  }

  /**
   * A standby whose oldest held event is failoverMs older than its newest: the primary is gone or behind. One that
   * would leave a hole waits for the primary's silence (or for the window, which bounds what it holds).
   */
  private maybeTakeOver(line: string, ls: LineState, out: Delivered[]): void {
    const oldest = this.trim(line, ls);
    const failoverUs = this.o.failoverMs * 1000;
    if (!oldest || ls.newestUs - oldest.event.exchUs <= failoverUs) return;
    if (this.gapless(ls)) {
      this.takeOver(line, out);
      return;
    }
    const primarySilent = this.feedUs - this.primaryPulseUs > failoverUs;
    if (!primarySilent && ls.newestUs - oldest.event.exchUs <= this.o.windowMs * 1000) return;
    // A takeover here leaves a hole. A standby holding what continues the passed stream goes first; else the one
    // whose snapshot is oldest (the smallest hole).
    let best = line;
    for (const [other, ols] of this.lines) {
      if (other === line || other === this.primary || !ols.continuous || !this.trim(other, ols)) continue;
      if (this.gapless(ols)) {
        this.takeOver(other, out);
        return;
      }
      const snapUs = (l: LineState) => l.snapshot?.event.exchUs ?? Number.NEGATIVE_INFINITY;
      if (snapUs(ols) < snapUs(this.lines.get(best)!)) best = other;
    }
    this.takeOver(best, out);
  }

  /** Drops the head of a line's held events the passed stream has (or made obsolete); returns the new head. */
  private trim(line: string, ls: LineState): Delivered | undefined {
    while (ls.held.length > 0) {
      const d = ls.held[0]!;
      if (this.ids.check(d.event.id, d.event.exchUs, true) === 'new' && !this.superseded(line, d)) return d;
      ls.held.shift();
    }
    return undefined;
  }

  /** `cause`: the primary's resync that made the switch, if any. */
  private takeOver(line: string, out: Delivered[], cause?: Delivered): void {
    const ls = this.lines.get(line)!;
    this.primary = line;
    this.c.failovers++;
    // Its snapshot matters only if the book is gone or the line starts after what was passed; otherwise the book is
    // already right and the held events continue it. Starting after what was passed means no line has the events
    // in between (the old primary lost them, the new one was not continuous yet): that is a resync after all.
    const snap = ls.snapshot;
    if (snap && (!this.bookOk || !this.gapless(ls))) {
      // Its own resync, or (its resync was before what this worker has seen: a replay after a restart) one made
      // here, named after the snapshot so that a replay makes the same.
      if (this.bookOk) this.passResync(cause ?? ls.resync ?? holeBefore(snap), out, line);
      if (this.ids.check(snap.event.id, snap.event.exchUs, false) === 'new' && this.rebuilds(snap))
        this.passSnapshot(line, snap, out);
    }
    ls.resync = undefined;
    const held = ls.held;
    ls.held = [];
    for (const d of held) this.passHeld(line, d, out);
  }

  /** Passes a trade, book change, ticker or heartbeat unless it is a copy or stale. */
  private pass(d: Delivered, out: Delivered[]): void {
    const e = d.event;
    const timed = e.type === 'trade' || e.type === 'book_changes';
    const verdict = this.ids.check(e.id, e.exchUs, timed);
    if (verdict !== 'new') {
      this.count(verdict);
      return;
    }
    let passed = d;
    if (e.type === 'book_changes') {
      const changes = this.newChanges(e.changes, e.exchUs);
      if (changes.length === 0) {
        this.c.duplicates++;
        return;
      }
      if (changes.length < e.changes.length) passed = { ...d, event: { ...e, changes } };
    }
    this.ids.pass(e.id, e.exchUs, timed);
    if (e.type === 'book_changes') this.changesUs = Math.max(this.changesUs, e.exchUs);
    if (e.type !== 'book_check' && e.type !== 'stats') this.streamUs = Math.max(this.streamUs, e.exchUs);
    out.push(passed);
    if (this.pendingTrades.size > 0) this.passOrphans(e.id, out);
    if (++this.passedSinceSweep >= 50_000) this.sweepLevels();
  }

  /** Forgets a standby's trade the passed stream now has; passes those it went `failoverMs` past without them. */
  private passOrphans(passedId: string, out: Delivered[]): void {
    this.pendingTrades.delete(passedId);
    const horizon = this.ids.newestUs - this.o.failoverMs * 1000;
    for (const [id, d] of this.pendingTrades) {
      if (d.event.exchUs >= horizon) continue;
      this.pendingTrades.delete(id);
      if (this.ids.check(id, d.event.exchUs, true) !== 'new') continue;
      this.ids.pass(id, d.event.exchUs, true);
      out.push(d);
    }
  }

  /** The changes newer than what their level holds; records them. */
  private newChanges(changes: readonly LevelChange[], us: number): LevelChange[] {
    const kept: LevelChange[] = [];
    for (const c of changes) {
      const key = `${c.side}|${c.price}`;
      const held = this.levels.get(key);
      if (held && (us < held.us || (us === held.us && held.sizes.includes(c.size)))) {
        this.c.levelRepeats++;
        continue;
      }
      if (held && us === held.us) held.sizes.push(c.size);
      else this.levels.set(key, { us, sizes: [c.size] });
      kept.push(c);
    }
    return kept;
  }

  /** Levels older than the window can be forgotten: anything that old is stale anyway. */
  private sweepLevels(): void {
    this.passedSinceSweep = 0;
    const horizon = this.ids.newestUs - this.o.windowMs * 1000;
    for (const [key, held] of this.levels) if (held.us < horizon) this.levels.delete(key);
    // Lines silent for longer than the window are gone (a killed ingestor's session).
    for (const [line, ls] of this.lines) {
      if (line !== this.primary && ls.newestUs < horizon && ls.held.length === 0) this.lines.delete(line);
    }
  }
}

/** The resync of a hole no line published one for, just before `snap` (same record and namespace). */
function holeBefore(snap: Delivered): Delivered {
  const { product, exchUs, recvUs, id } = snap.event;
  const event: StreamEvent = {
    type: 'resync',
    product,
    exchUs,
    recvUs,
    seq: -1,
    reason: 'no line has the events before this snapshot',
    id: `${id}:hole`,
  };
  return { ...snap, event };
}

/** The arbitration stage: per (namespace, product), its lines' events in, the one clean stream out. */
export class LineArbiter {
  readonly counters: ArbiterCounters = {
    duplicates: 0,
    stale: 0,
    levelRepeats: 0,
    failovers: 0,
    absorbedResyncs: 0,
    resyncs: 0,
    covered: 0,
  };
  private readonly products = new Map<string, ProductArbiter>();

  constructor(private readonly o: ArbiterOptions = DEFAULT_ARBITER) {}

  /**
   * Takes one delivered event of `line` (a record's line; '' when the record names none) and returns the events
   * to apply now, in order: none (a copy, a standby's), itself, or a standby's held events after a takeover.
   */
  accept(line: string, d: Delivered): Delivered[] {
    const key = `${namespaceOf(d.event.id)}\u0000${d.event.product}`;
    let p = this.products.get(key);
    if (!p) {
      p = new ProductArbiter(this.o, this.counters);
      this.products.set(key, p);
    }
    const out: Delivered[] = [];
    p.handle(line, d, out);
    return out;
  }

  /** The primary line of a product (for tests and stats). */
  primaryOf(product: string, namespace = ''): string | undefined {
    return this.products.get(`${namespace}\u0000${product}`)?.primary;
  }
}
