/**
 * The feed connection's life across reconnects (the WebSocket itself is connection.ts's FeedConnection), as
 * explicit states Init -> Connecting -> Subscribing -> Subscribed -> Backoff -> Connecting ... -> Stopped
 * (TRANSITIONS lists every legal move). Each transition is logged and counted (FEED.transitions). Backoff is capped
 * exponential with full jitter, on the injected clock; it starts over after a connection that got subscribed.
 */

import { systemClock } from '../clock.js';
import { QuoteWatchError } from '../errors.js';
import type { Logger } from '../log.js';
import { FEED } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import {
  type CloseInfo,
  type CloseReason,
  type ConnectionLimits,
  FeedConnection,
  type Frame,
} from './connection.js';

/** A transition not in TRANSITIONS: a bug in the state machine, never a feed condition. */
export class FeedStateError extends QuoteWatchError {
  constructor(message: string) {
    super(message);
  }
}

/** Capped exponential backoff with full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
export function reconnectDelay(attempt: number, baseMs: number, capMs: number, random = Math.random): number {
  return Math.round(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 20)));
}

export type FeedState = 'init' | 'connecting' | 'subscribing' | 'subscribed' | 'backoff' | 'stopped';

/** Every legal move. Anything else throws FeedStateError. */
export const TRANSITIONS: Readonly<Record<FeedState, readonly FeedState[]>> = {
  init: ['connecting', 'stopped'],
  connecting: ['subscribing', 'backoff', 'stopped'],
  subscribing: ['subscribed', 'backoff', 'stopped'],
  subscribed: ['backoff', 'stopped'],
  backoff: ['connecting', 'stopped'],
  stopped: [],
};

/** What a connection's frame handler can do to its own connection. */
export interface FeedLink {
  /** 0 for the first connection, then 1, 2, ... */
  readonly number: number;
  send(messages: string[]): void;
  close(reason: CloseReason, detail: string): void;
}

export interface FeedStateMachineOptions extends ConnectionLimits {
  url: string;
  /** Subscribe messages for a new connection (called per connection: a JWT must be fresh). */
  subscribeMessages: () => string[];
  /** Called when a connection opens; returns that connection's frame handler. */
  onConnection: (link: FeedLink) => (frame: Frame) => Promise<void>;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Jitter source in [0, 1); inject a seeded one for tests. */
  random?: () => number;
  log: Logger;
  telemetry: Telemetry;
}

export class FeedStateMachine {
  private current: FeedState = 'init';
  private stopping = false;
  private connection: FeedConnection | undefined;
  private loop: Promise<void> | undefined;
  private readonly stopped = new AbortController();
  private connections = 0;
  private closedTotals = { messages: 0, bytes: 0, pongs: 0 };

  constructor(private readonly o: FeedStateMachineOptions) {
    o.telemetry.gauge(FEED.connected, 0);
  }

  get state(): FeedState {
    return this.current;
  }

  /** Frames, bytes and pongs received over every connection so far. */
  get totals(): { messages: number; bytes: number; pongs: number } {
    return {
      messages: this.closedTotals.messages + (this.connection?.messages ?? 0),
      bytes: this.closedTotals.bytes + (this.connection?.bytes ?? 0),
      pongs: this.closedTotals.pongs + (this.connection?.pongs ?? 0),
    };
  }

  /** The current connection's socket is paused for backpressure. */
  get socketPaused(): boolean {
    return this.connection?.paused ?? false;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** Closes the connection cleanly, waits for the frame in hand, ends in Stopped. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.connection?.close('requested', 'stopping');
    this.stopped.abort();
    if (this.loop) await this.loop;
    else if (this.current !== 'stopped') this.transition('stopped', {});
  }

  private transition(to: FeedState, fields: Record<string, unknown>): void {
    const from = this.current;
    if (!TRANSITIONS[from].includes(to)) throw new FeedStateError(`illegal feed transition ${from} -> ${to}`);
    this.current = to;
    this.o.telemetry.count(FEED.transitions, 1, { From: from, To: to });
    this.o.telemetry.gauge(FEED.connected, to === 'subscribed' ? 1 : 0);
    const level = to === 'backoff' ? 'warn' : 'info';
    this.o.log(level, 'feed state', { from, to, url: this.o.url, ...fields });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      const number = this.connections++;
      if (number > 0) this.o.telemetry.count(FEED.reconnects);
      this.transition('connecting', { connection: number });
      let handler: ((frame: Frame) => Promise<void>) | undefined;
      const conn: FeedConnection = new FeedConnection({
        url: this.o.url,
        subscribe: this.o.subscribeMessages(),
        silenceMs: this.o.silenceMs,
        pingIntervalMs: this.o.pingIntervalMs,
        pongTimeoutMs: this.o.pongTimeoutMs,
        subscribeTimeoutMs: this.o.subscribeTimeoutMs,
        openTimeoutMs: this.o.openTimeoutMs,
        pauseAt: this.o.pauseAt,
        clock: this.o.clock,
        onFrame: (frame) => (handler ? handler(frame) : Promise.resolve()),
        onSubscribed: () => this.transition('subscribed', { connection: number }),
      });
      this.connection = conn;
      handler = this.o.onConnection({
        number,
        send: (messages) => conn.send(messages),
        close: (reason, detail) => conn.close(reason, detail),
      });
      let info: CloseInfo;
      try {
        await conn.open();
        if (this.stopping) conn.close('requested', 'stopping');
        else this.transition('subscribing', { connection: number });
        info = await conn.closed;
      } catch (err) {
        conn.close('error', err instanceof Error ? err.message : String(err));
        info = await conn.closed;
      }
      this.closedTotals.messages += conn.messages;
      this.closedTotals.bytes += conn.bytes;
      this.closedTotals.pongs += conn.pongs;
      if (conn.watchdogSuspensions > 0)
        this.o.telemetry.count(FEED.watchdogSuspensions, conn.watchdogSuspensions);
      if (this.stopping) break;
      this.o.telemetry.count(FEED.closes, 1, { Reason: info.reason });
      // A connection that got subscribed was healthy: start the backoff over.
      if (conn.isSubscribed) failures = 0;
      const delayMs = reconnectDelay(
        failures++,
        this.o.backoffBaseMs ?? 250,
        this.o.backoffCapMs ?? 10_000,
        this.o.random,
      );
      this.transition('backoff', { connection: number, ...info, reconnectInMs: delayMs });
      await (this.o.clock ?? systemClock).sleep(delayMs, this.stopped.signal); // stop() cuts it short
    }
    this.connection = undefined;
    this.transition('stopped', {});
  }
}
