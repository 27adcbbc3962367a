/**
 * Push sink: the latest snapshots go to the dashboards subscribed over the WebSocket API, through its management
 * API (PostToConnection) — off the tick loop: `offer()` only records the newest entry of a product and wakes a
 * fan-out that runs after the batch, on the event loop's next turn.
 *
 * - Subscriptions live in memory, re-read from the connections table every PUSH_REFRESH_MS (one paginated Scan;
 *   never a read per snapshot); expired items are removed there (TTL deletes lazily).
 * - Latest-value semantics: a connection has at most one post in flight and one message every PUSH_MIN_MS; when its
 *   turn comes, the message is built then from the newest entries of its products whose shown values changed since
 *   it was last sent them, so a newer snapshot replaces a pending one and stale data is never retried.
 * - Posts go with ticks: when a connection's interval ends, it is sent at once only if its products' newest entries
 *   are of one tick and fresh (offered within a twentieth of a tick); otherwise it waits until each of its products
 *   has the next tick's entry — a product two ticks behind the others is stalled (resyncing, say) and not waited for,
 *   and after two ticks what there is goes anyway. PUSH_MIN_MS is rarely a whole number of ticks (250 ms of 100 ms ticks)
 *   and products' ticks close at different moments, so the interval would otherwise end mid-tick and ship entries
 *   up to a tick stale when fresh ones were due within the tick.
 * - Posts run with bounded concurrency (PUSH_CONCURRENCY) in the order connections became due, each with a timeout,
 *   so a slow or dead connection holds one slot for at most that long and never delays the others.
 * - 410 Gone removes the connection (from memory and, giving back its counts, from the table); any other failure is
 *   counted (PushFailedPosts, alarmed) and the connection waits for the next snapshot.
 * Memory: per connection its products and what it was last sent (one key per product); per product one entry.
 */
import {
  type ApiGatewayManagementApiClient,
  GoneException,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import { type PushEntry, pushEntry, shownKey } from '../../api/push.js';
import { type Clock, systemClock } from '../../clock.js';
import { describeError, type Logger } from '../../log.js';
import type { Connection, ConnectionsStore } from '../../storage/connections.js';
import { PUSH } from '../../telemetry/catalog.js';
import type { Telemetry } from '../../telemetry/telemetry.js';
import type { LatestSnapshotInput } from './latest.js';

const FAILURE_LOG_MS = 10_000;
/**
 * An entry offered within this part of a tick is fresh (the batch that made it is just done): sent at once when a
 * connection's interval ends; an older one waits for the next tick's (a quarter tick let p99 entries wait ~40 ms).
 */
const FRESH_TICK_PARTS = 20;

export interface PushSinkOptions {
  client: Pick<ApiGatewayManagementApiClient, 'send'>;
  store: Pick<ConnectionsStore, 'list' | 'close'>;
  tickMs: number;
  minIntervalMs: number;
  concurrency: number;
  refreshMs: number;
  telemetry: Telemetry;
  log: Logger;
  clock?: Clock;
  /** Wall clock for the messages' sentAtMs. */
  now?: () => number;
  /** A product not sent for this long is sent again even if it looks the same (the page's age stays honest). */
  keepAliveMs?: number;
}

interface Subscriber {
  id: string;
  products: Set<string>;
  /** Per product: the shown key and tick number last sent. */
  sent: Map<string, { key: string; n: number; atMs: number }>;
  lastPostAt: number;
  /** 'ready': its interval has ended, it waits for the next tick's entries (at most two ticks). */
  state: 'idle' | 'waiting' | 'ready' | 'queued' | 'posting';
  /** Which wait for the next tick is current (a later one makes an earlier one's timer moot). */
  readyRound: number;
  /** While 'ready': the tick number each of its products' entries must reach. */
  readyTick: number;
  /** Set while waiting/posting when a newer entry arrives: check again afterwards. */
  dirty: boolean;
  removed: boolean;
}

export class PushSink {
  private readonly clock: Clock;
  private readonly now: () => number;
  /** Per product: its newest entry, its shown key and when it was offered (clock ms). */
  private readonly latest = new Map<string, { entry: PushEntry; key: string; atMs: number }>();
  private readonly subscribers = new Map<string, Subscriber>();
  private readonly byProduct = new Map<string, Set<Subscriber>>();
  private readonly queue: Subscriber[] = [];
  private readonly changed = new Set<string>();
  private fanOutScheduled = false;
  private active = 0;
  private refreshing: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Posts since start, for tests and the bench. */
  posted = 0;
  /** Failed posts not logged yet (one line per FAILURE_LOG_MS: an unreachable API fails every post). */
  private unlogged = 0;
  private loggedAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly opts: PushSinkOptions) {
    this.clock = opts.clock ?? systemClock;
    this.now = opts.now ?? Date.now;
    opts.telemetry.declare(PUSH.failedPosts);
  }

  /** Starts the periodic refresh of the subscriptions (the first one at once). */
  start(): this {
    const loop = async () => {
      if (this.stopped) return;
      await this.refresh();
      if (!this.stopped) this.timer = setTimeout(() => void loop(), this.opts.refreshMs);
    };
    void loop();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.refreshing;
  }

  /** A product's newest snapshot (called by the worker per latest snapshot; O(1), no I/O). */
  offer(snapshot: LatestSnapshotInput): void {
    const entry = pushEntry(snapshot, this.opts.tickMs);
    const previous = this.latest.get(entry.product);
    if (previous && previous.entry.n > entry.n) return; // a replay's older tick
    this.latest.set(entry.product, { entry, key: shownKey(entry), atMs: this.clock.now() });
    this.changed.add(entry.product);
    if (!this.fanOutScheduled) {
      this.fanOutScheduled = true;
      setImmediate(() => this.fanOut());
    }
  }

  /** Subscribed connections held. */
  get connections(): number {
    return this.subscribers.size;
  }

  /** Re-reads the connections table: new subscribers get the current entries, gone ones are dropped. */
  async refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    this.refreshing = (async () => {
      try {
        const { live, expired } = await this.opts.store.list();
        this.reconcile(live);
        for (const id of expired) await this.opts.store.close(id);
      } catch (err) {
        this.opts.log('warn', 'push: cannot read the connections table', { error: describeError(err) });
      } finally {
        this.refreshing = undefined;
      }
    })();
    return this.refreshing;
  }

  private reconcile(live: readonly Connection[]): void {
    const seen = new Set<string>();
    for (const c of live) {
      if (c.products.length === 0) continue;
      seen.add(c.id);
      let sub = this.subscribers.get(c.id);
      if (!sub) {
        sub = {
          id: c.id,
          products: new Set(),
          sent: new Map(),
          lastPostAt: -Infinity,
          state: 'idle',
          readyRound: 0,
          readyTick: 0,
          dirty: false,
          removed: false,
        };
        this.subscribers.set(c.id, sub);
      }
      const wanted = new Set(c.products);
      for (const p of sub.products) if (!wanted.has(p)) this.unindex(sub, p);
      let added = false;
      for (const p of wanted) {
        if (sub.products.has(p)) continue;
        sub.products.add(p);
        let set = this.byProduct.get(p);
        if (!set) {
          set = new Set();
          this.byProduct.set(p, set);
        }
        set.add(sub);
        added = true;
      }
      if (added) this.wake(sub);
    }
    for (const sub of [...this.subscribers.values()]) if (!seen.has(sub.id)) this.remove(sub);
    this.opts.telemetry.gauge(PUSH.connections, this.subscribers.size);
  }

  private unindex(sub: Subscriber, product: string): void {
    sub.products.delete(product);
    sub.sent.delete(product);
    this.byProduct.get(product)?.delete(sub);
  }

  private remove(sub: Subscriber): void {
    sub.removed = true;
    for (const p of [...sub.products]) this.unindex(sub, p);
    this.subscribers.delete(sub.id);
  }

  private fanOut(): void {
    this.fanOutScheduled = false;
    for (const product of this.changed) {
      for (const sub of this.byProduct.get(product) ?? []) this.wake(sub);
    }
    this.changed.clear();
  }

  /** The connection has something new: post now, or when its minimum interval has passed. */
  private wake(sub: Subscriber): void {
    if (sub.removed || this.stopped) return;
    if (sub.state === 'ready') {
      if (!this.reached(sub, sub.readyTick)) return;
      sub.state = 'idle'; // the tick it waited for
    }
    if (sub.state !== 'idle') {
      sub.dirty = true;
      return;
    }
    const wait = sub.lastPostAt + this.opts.minIntervalMs - this.clock.now();
    if (wait > 0) {
      sub.state = 'waiting';
      void this.clock.sleep(wait).then(() => {
        sub.state = 'idle';
        sub.dirty = false;
        this.slotOpened(sub);
      });
      return;
    }
    sub.state = 'queued';
    this.queue.push(sub);
    this.pump();
  }

  /** The interval has ended: post now if the newest entry is fresh, else with the next tick's (see the header). */
  private slotOpened(sub: Subscriber): void {
    if (sub.removed || this.stopped) return;
    let newestAt = Number.NEGATIVE_INFINITY;
    let tick = Number.NEGATIVE_INFINITY;
    for (const p of sub.products) {
      const l = this.latest.get(p);
      if (!l) continue;
      newestAt = Math.max(newestAt, l.atMs);
      tick = Math.max(tick, l.entry.n);
    }
    const level = this.reached(sub, tick);
    if (level && this.clock.now() - newestAt <= this.opts.tickMs / FRESH_TICK_PARTS) {
      this.wake(sub);
      return;
    }
    sub.state = 'ready';
    sub.readyTick = level ? tick + 1 : tick;
    const round = ++sub.readyRound;
    void this.clock.sleep(2 * this.opts.tickMs).then(() => {
      if (sub.state !== 'ready' || sub.readyRound !== round) return;
      sub.state = 'idle';
      this.wake(sub);
    });
  }

  /** Every product of the connection that keeps up (not two ticks behind the newest) has an entry of tick `n`. */
  private reached(sub: Subscriber, n: number): boolean {
    let newest = Number.NEGATIVE_INFINITY;
    for (const p of sub.products) newest = Math.max(newest, this.latest.get(p)?.entry.n ?? newest);
    for (const p of sub.products) {
      const l = this.latest.get(p);
      if (l && l.entry.n < n && l.entry.n >= newest - 1) return false;
    }
    return true;
  }

  private pump(): void {
    while (this.active < this.opts.concurrency && this.queue.length > 0) {
      const sub = this.queue.shift()!;
      if (sub.removed) continue;
      void this.post(sub);
    }
  }

  /** The message of the connection's changed products, built now from the newest entries; undefined if none. */
  private message(
    sub: Subscriber,
  ): { body: string; sent: [string, { key: string; n: number }][] } | undefined {
    const nowMs = this.clock.now();
    const keepAlive = this.opts.keepAliveMs ?? 5000;
    const snapshots: PushEntry[] = [];
    const sent: [string, { key: string; n: number }][] = [];
    for (const product of sub.products) {
      const latest = this.latest.get(product);
      if (!latest) continue;
      const last = sub.sent.get(product);
      const same = last !== undefined && (last.key === latest.key || last.n >= latest.entry.n);
      if (same && (last.n >= latest.entry.n || nowMs - last.atMs < keepAlive)) continue;
      snapshots.push(latest.entry);
      sent.push([product, { key: latest.key, n: latest.entry.n }]);
    }
    if (snapshots.length === 0) return undefined;
    return { body: JSON.stringify({ type: 'snapshot', sentAtMs: this.now(), snapshots }), sent };
  }

  /** The first failure at once, then one line per FAILURE_LOG_MS with how many failed since. */
  private failureLog(connectionId: string, err: unknown): void {
    this.unlogged++;
    const now = this.clock.now();
    if (now - this.loggedAt < FAILURE_LOG_MS) return;
    this.opts.log('warn', 'push: post failed', {
      connectionId,
      failedSinceLastLine: this.unlogged,
      error: describeError(err),
    });
    this.unlogged = 0;
    this.loggedAt = now;
  }

  private async post(sub: Subscriber): Promise<void> {
    const message = this.message(sub);
    if (!message) {
      sub.state = 'idle';
      return;
    }
    sub.state = 'posting';
    sub.dirty = false;
    this.active++;
    const started = this.clock.now();
    sub.lastPostAt = started;
    for (const [product, s] of message.sent) sub.sent.set(product, { ...s, atMs: started });
    const t = this.opts.telemetry;
    try {
      await this.opts.client.send(
        new PostToConnectionCommand({ ConnectionId: sub.id, Data: Buffer.from(message.body) }),
      );
      this.posted++;
      t.count(PUSH.posts);
      t.timing(PUSH.postMs, this.clock.now() - started);
    } catch (err) {
      if (err instanceof GoneException || (err as { name?: string }).name === 'GoneException') {
        t.count(PUSH.gone);
        this.remove(sub);
        await this.opts.store.close(sub.id).catch((cause: unknown) =>
          this.opts.log('warn', 'push: cannot remove a gone connection', {
            connectionId: sub.id,
            error: describeError(cause),
          }),
        );
      } else {
        t.count(PUSH.failedPosts);
        this.failureLog(sub.id, err);
      }
    } finally {
      this.active--;
      sub.state = 'idle';
      if (sub.dirty && !sub.removed) this.wake(sub);
      this.pump();
    }
  }
}
