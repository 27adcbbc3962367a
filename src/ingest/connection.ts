/**
 * The feed connection, in two layers (the second in feedStateMachine.ts):
 *
 * - FeedConnection: ONE WebSocket's lifetime. It opens, sends the subscribe messages at once (Coinbase drops a
 *   connection that has not subscribed within 5 s), hands frames to an async handler strictly one at a time and
 *   in arrival order, and closes on silence, on a missing pong, on a subscription that is never confirmed, on
 *   error or on request.
 * - FeedStateMachine: the connection's life across reconnects, as explicit states
 *   Init -> Connecting -> Subscribing -> Subscribed -> Backoff -> Connecting ... -> Stopped
 *   (TRANSITIONS lists every legal move). Each transition is logged and counted.
 *   Backoff is capped exponential with full jitter; it starts over after a connection that got subscribed.
 *
 * Backpressure: while the handler is slow (e.g. the producer's buffer is full) frames queue here; past
 * `pauseAt` queued frames the socket is paused, so TCP pushes back on the exchange instead of memory growing.
 * Silence and pong deadlines only run while we are actually reading: a socket we paused, or an event loop
 * blocked on a huge frame, is our own doing, not a dead exchange.
 */

import WebSocket from 'ws';
import { type Clock, systemClock } from '../clock.js';
import { QuoteWatchError } from '../errors.js';

/** Advanced Trade market-data channels. */
export const CHANNELS = ['level2', 'market_trades', 'ticker', 'heartbeats'] as const;
export type Channel = (typeof CHANNELS)[number];

export class FeedConnectionError extends QuoteWatchError {}

export interface Frame {
  raw: string;
  /** Receive time, epoch µs. */
  recvUs: number;
}

export type CloseReason =
  | 'requested'
  | 'silence'
  | 'pong'
  | 'subscribe_timeout'
  | 'remote'
  | 'error'
  | 'handler';

export interface CloseInfo {
  reason: CloseReason;
  detail: string;
}

/** Advanced Trade subscribe/unsubscribe message for one channel (optionally with a CDP JWT). */
export function subscribeMessage(
  channel: Channel,
  products: string[],
  type: 'subscribe' | 'unsubscribe' = 'subscribe',
  jwt?: string,
): string {
  return JSON.stringify({ type, product_ids: products, channel, ...(jwt ? { jwt } : {}) });
}

/** A connection's watchdog and flow limits; the state machine hands its own to every connection. */
export interface ConnectionLimits {
  /** Close when no frame arrived for this long while reading (heartbeats come every second). */
  silenceMs: number;
  /** Ping period; 0 disables ping/pong. Default: silenceMs / 2. */
  pingIntervalMs?: number;
  /** A ping unanswered for this long while reading closes the connection. Default: silenceMs. */
  pongTimeoutMs?: number;
  /** The first frame (normally the subscriptions confirmation) must arrive within this. Default 5000. */
  subscribeTimeoutMs?: number;
  openTimeoutMs?: number;
  pauseAt?: number;
  /** Time of the watchdog and the backoff (default: the system clock); tests run it on virtual time. */
  clock?: Clock;
}

export interface FeedConnectionOptions extends ConnectionLimits {
  url: string;
  /** Messages sent as soon as the socket opens. */
  subscribe: string[];
  onFrame: (frame: Frame) => Promise<void>;
  /** Called once, on the first frame after subscribing. */
  onSubscribed?: () => void;
  nowUs?: () => number;
}

const wallUs = () => Date.now() * 1000;

export class FeedConnection {
  private ws: WebSocket | undefined;
  private readonly queue: Frame[] = [];
  private pumping = false;
  /** Aborted when the connection closes: ends the watchdog loop. */
  private readonly closing = new AbortController();
  private readonly clock: Clock;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (info: CloseInfo) => void;
  /** Resolves once the socket is closed AND the frame being handled (if any) is done. */
  readonly closed: Promise<CloseInfo>;
  private socketClosed = false;
  private subscribed = false;
  // Deadlines, in this.clock ms.
  private openedAt = 0;
  private lastFrameAt = 0;
  private lastCheckAt = 0;
  private lastPingAt = 0;
  private pingOutstandingSince: number | undefined;
  messages = 0;
  bytes = 0;
  pongs = 0;
  /** Times a watchdog check found the loop blocked or the socket paused and did not count the time. */
  watchdogSuspensions = 0;

  constructor(private readonly options: FeedConnectionOptions) {
    this.clock = options.clock ?? systemClock;
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  get isSubscribed(): boolean {
    return this.subscribed;
  }

  /** True while the socket is paused for backpressure (see the module comment). */
  get paused(): boolean {
    return this.ws?.isPaused ?? false;
  }

  /** Connects and subscribes; rejects with FeedConnectionError if the socket does not open. */
  async open(): Promise<void> {
    const { url, openTimeoutMs = 10_000 } = this.options;
    const ws = new WebSocket(url, { handshakeTimeout: openTimeoutMs, perMessageDeflate: false });
    this.ws = ws;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        ws.removeAllListeners();
        ws.terminate();
        reject(new FeedConnectionError(`cannot connect to ${url}: ${err.message}`, { cause: err }));
      };
      ws.once('error', onError);
      ws.once('open', () => {
        ws.off('error', onError);
        resolve();
      });
    });
    if (this.closeInfo) {
      // stop() arrived while the handshake was in flight.
      ws.close(1000, 'client stopping');
      return;
    }
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => {
      this.pongs += 1;
      this.pingOutstandingSince = undefined;
    });
    ws.on('error', (err) => this.close('error', err.message));
    ws.on('close', (code, reason) => {
      this.socketClosed = true;
      this.close('remote', `closed by peer: ${code} ${reason.toString()}`.trim());
    });
    this.send(this.options.subscribe);
    const now = this.clock.now();
    this.openedAt = now;
    this.lastFrameAt = now;
    this.lastCheckAt = now;
    this.lastPingAt = now;
    this.startWatchdog();
  }

  send(messages: string[]): void {
    for (const text of messages) if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  close(reason: CloseReason, detail = ''): void {
    if (this.closeInfo) return;
    this.closeInfo = { reason, detail };
    this.closing.abort();
    this.queue.length = 0; // frames not yet handled are dropped: the next connection starts from snapshots
    const ws = this.ws;
    if (ws && !this.socketClosed && ws.readyState === WebSocket.OPEN) {
      if (reason === 'requested') ws.close(1000, 'client stopping');
      else ws.terminate();
    } else if (ws && !this.socketClosed && reason !== 'requested') {
      ws.terminate();
    }
    this.settle();
  }

  private settle(): void {
    if (this.closeInfo && !this.pumping) this.resolveClosed(this.closeInfo);
  }

  private startWatchdog(): void {
    const { silenceMs } = this.options;
    const pongTimeoutMs = this.options.pongTimeoutMs ?? silenceMs;
    const subscribeTimeoutMs = this.options.subscribeTimeoutMs ?? 5000;
    const checkMs = Math.max(5, Math.min(250, Math.floor(Math.min(silenceMs, pongTimeoutMs) / 5)));
    const signal = this.closing.signal;
    void (async () => {
      while (!signal.aborted) {
        await this.clock.sleep(checkMs, signal);
        if (!signal.aborted) this.check(checkMs, pongTimeoutMs, subscribeTimeoutMs);
      }
    })();
  }

  /** Periodic deadline check; see the module comment for why paused or blocked time does not count. */
  private check(checkMs: number, pongTimeoutMs: number, subscribeTimeoutMs: number): void {
    const ws = this.ws;
    if (!ws || this.closeInfo) return;
    const now = this.clock.now();
    const blocked = now - this.lastCheckAt > 2 * checkMs + 50;
    this.lastCheckAt = now;
    if (ws.isPaused || blocked) {
      // Frames or pongs may be sitting unread in the socket; start the clocks over once we read again.
      this.watchdogSuspensions++;
      this.lastFrameAt = now;
      this.openedAt = now;
      if (this.pingOutstandingSince !== undefined) this.pingOutstandingSince = now;
      return;
    }
    if (!this.subscribed && now - this.openedAt > subscribeTimeoutMs) {
      this.close('subscribe_timeout', `no frame within ${subscribeTimeoutMs} ms of subscribing`);
      return;
    }
    if (now - this.lastFrameAt > this.options.silenceMs) {
      this.close('silence', `no frame for ${this.options.silenceMs} ms`);
      return;
    }
    if (this.pingOutstandingSince !== undefined && now - this.pingOutstandingSince > pongTimeoutMs) {
      this.close('pong', `no pong within ${pongTimeoutMs} ms`);
      return;
    }
    const pingIntervalMs = this.options.pingIntervalMs ?? Math.floor(this.options.silenceMs / 2);
    if (
      pingIntervalMs > 0 &&
      this.pingOutstandingSince === undefined &&
      now - this.lastPingAt >= pingIntervalMs
    ) {
      this.lastPingAt = now;
      this.pingOutstandingSince = now;
      ws.ping();
    }
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.closeInfo) return;
    const recvUs = (this.options.nowUs ?? wallUs)();
    const raw = isBinary ? '' : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString();
    this.messages += 1;
    this.bytes += raw.length;
    this.lastFrameAt = this.clock.now();
    if (!this.subscribed) {
      this.subscribed = true;
      this.options.onSubscribed?.();
    }
    this.queue.push({ raw, recvUs });
    if (this.queue.length >= (this.options.pauseAt ?? 1000)) this.ws?.pause();
    if (!this.pumping) void this.pump();
  }

  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      for (let frame = this.queue.shift(); frame; frame = this.queue.shift()) {
        await this.options.onFrame(frame);
        if (this.queue.length < (this.options.pauseAt ?? 1000) / 2 && this.ws?.isPaused) this.ws.resume();
      }
    } catch (err) {
      this.pumping = false;
      this.close('handler', err instanceof Error ? `${err.name}: ${err.message}` : String(err));
      return;
    }
    this.pumping = false;
    this.settle();
  }
}
