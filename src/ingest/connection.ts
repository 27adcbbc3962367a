/**
 * Feed: one WebSocket connection's lifetime to an Advanced Trade endpoint (Coinbase or the simulator).
 * It opens, subscribes, hands frames to an async handler strictly one at a time and in arrival order, and
 * closes on silence (watchdog), on error or on request. Reconnecting is the ingestor's job.
 *
 * Backpressure: while the handler is slow (e.g. the producer's buffer is full) frames queue here; past
 * `pauseAt` queued frames the socket is paused, so TCP pushes back on the exchange instead of memory growing.
 */
import WebSocket from 'ws';

export const CHANNELS = ['level2', 'market_trades', 'ticker', 'heartbeats'] as const;
export type Channel = (typeof CHANNELS)[number];

export class FeedConnectionError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'FeedConnectionError';
  }
}

export interface Frame {
  raw: string;
  /** Receive time, epoch µs. */
  recvUs: number;
}

export interface CloseInfo {
  reason: 'requested' | 'silence' | 'remote' | 'error' | 'handler';
  detail: string;
}

export interface FeedConnectionOptions {
  url: string;
  products: string[];
  /** Close when no frame arrived for this long (heartbeats come every second). */
  silenceMs: number;
  openTimeoutMs?: number;
  pauseAt?: number;
  onFrame: (frame: Frame) => Promise<void>;
  nowUs?: () => number;
}

export function subscribeMessage(
  channel: Channel,
  products: string[],
  type: 'subscribe' | 'unsubscribe' = 'subscribe',
): string {
  return JSON.stringify({ type, product_ids: products, channel });
}

const wallUs = () => Date.now() * 1000;

export class FeedConnection {
  private ws: WebSocket | undefined;
  private readonly queue: Frame[] = [];
  private pumping = false;
  private watchdog: NodeJS.Timeout | undefined;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (info: CloseInfo) => void;
  /** Resolves once the socket is closed AND the frame being handled (if any) is done. */
  readonly closed: Promise<CloseInfo>;
  private socketClosed = false;
  messages = 0;
  bytes = 0;

  constructor(private readonly options: FeedConnectionOptions) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  /** Connects and subscribes to every channel; rejects with FeedConnectionError if the socket does not open. */
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
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('error', (err) => this.close('error', err.message));
    ws.on('close', (code, reason) => {
      this.socketClosed = true;
      this.close('remote', `closed by peer: ${code} ${reason.toString()}`.trim());
    });
    // Coinbase drops connections that have not subscribed within 5 s: subscribe at once.
    for (const channel of CHANNELS) this.send(subscribeMessage(channel, this.options.products));
    this.armWatchdog();
  }

  /** Asks for a fresh level2 snapshot (after a sequence gap): unsubscribe, then subscribe again. */
  resubscribeBook(): void {
    this.send(subscribeMessage('level2', this.options.products, 'unsubscribe'));
    this.send(subscribeMessage('level2', this.options.products, 'subscribe'));
  }

  close(reason: CloseInfo['reason'], detail = ''): void {
    if (this.closeInfo) return;
    this.closeInfo = { reason, detail };
    clearTimeout(this.watchdog);
    this.queue.length = 0; // frames not yet handled are dropped: the next connection starts from snapshots
    const ws = this.ws;
    if (ws && !this.socketClosed) {
      if (reason === 'requested') ws.close(1000, 'client stopping');
      else ws.terminate();
    }
    this.settle();
  }

  private send(text: string): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(text);
  }

  private settle(): void {
    if (this.closeInfo && !this.pumping) this.resolveClosed(this.closeInfo);
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    const { silenceMs } = this.options;
    this.watchdog = setTimeout(() => this.close('silence', `no frame for ${silenceMs} ms`), silenceMs);
  }

  private onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.closeInfo) return;
    const recvUs = (this.options.nowUs ?? wallUs)();
    const raw = isBinary ? '' : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : data.toString();
    this.messages += 1;
    this.bytes += raw.length;
    this.armWatchdog();
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
