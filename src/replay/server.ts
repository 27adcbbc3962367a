/**
 * Replay server: serves a recording's frames over a real loopback WebSocket, so the UNCHANGED ingestor (same
 * connection, mapper, sequence check, producer and claim-check code as live) connects to it as if it were the
 * exchange. Streaming starts with the client's first message (its subscribe) and keeps the recorded
 * inter-frame timing divided by `speed`; `max` sends as fast as the client reads.
 *
 * Frames go out byte for byte as recorded (malformed ones too). Sequence numbers stay as recorded unless
 * `renumber` is set: for extracts (e.g. a ticker-only recording cut from a multi-channel connection) whose
 * gaps are the extraction's, not the feed's. A recorded reconnect shows up as a sequence regression, which the
 * ingestor handles as it would live (resync, fresh snapshot from the recording).
 * The position is global: a client that reconnects mid-replay continues where the previous one stopped.
 */
import { type WebSocket, WebSocketServer } from 'ws';
import { type Clock, systemClock } from '../clock.js';
import { QuoteWatchError } from '../errors.js';
import type { ArchivedFrame } from '../ingest/archive.js';

export type ReplaySpeed = number | 'max';

export class ReplayError extends QuoteWatchError {}

export interface ReplayServerOptions {
  frames: AsyncIterable<ArchivedFrame>;
  /** 1 = recorded pace, N = N times faster, 'max' = no waiting. */
  speed: ReplaySpeed;
  renumber?: boolean;
  port?: number;
  host?: string;
  /** The pacing clock (default: the system clock); tests pace on virtual time. */
  clock?: Clock;
}

export interface ReplayServer {
  url: string;
  /** Frames sent so far. */
  readonly sent: number;
  /** Resolves with the number of frames sent once the recording is exhausted; rejects on a bad recording. */
  done: Promise<number>;
  close(): Promise<void>;
}

// In 'max' mode, stop writing while this much is queued in the socket: the client's pace sets ours.
const HIGH_WATER_BYTES = 4 * 1024 * 1024;

export async function startReplayServer(options: ReplayServerOptions): Promise<ReplayServer> {
  const { speed } = options;
  const clock = options.clock ?? systemClock;
  if (speed !== 'max' && !(speed > 0)) throw new ReplayError(`speed must be > 0 or "max", got ${speed}`);
  const wss = new WebSocketServer({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const { port } = wss.address() as { port: number };

  let client: WebSocket | undefined;
  let wake: AbortController | undefined;
  let closed = false;
  let sent = 0;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.abort();
  };
  /** Until a client comes or goes, or (with `ms`) that much clock time passed. */
  const waitForChange = (ms = Number.POSITIVE_INFINITY) => {
    const w = new AbortController();
    wake = w;
    if (Number.isFinite(ms)) return clock.sleep(ms, w.signal);
    return new Promise<void>((resolve) =>
      w.signal.addEventListener('abort', () => resolve(), { once: true }),
    );
  };

  wss.on('connection', (ws) => {
    ws.on('error', () => {}); // a client vanishing is normal; 'close' follows
    ws.once('message', () => {
      // The newest subscribed client gets the rest of the recording.
      client = ws;
      notify();
    });
    ws.on('close', () => {
      if (client === ws) client = undefined;
      notify();
    });
  });

  const usable = (ws: WebSocket | undefined): ws is WebSocket =>
    ws !== undefined && ws.readyState === ws.OPEN;

  async function run(): Promise<number> {
    let anchor: { wallMs: number; recvUs: number; ws: WebSocket } | undefined;
    let seq = 0;
    for await (const f of options.frames) {
      const text = options.renumber
        ? f.frame.replace(/"sequence_num":\s*\d+/, `"sequence_num":${seq++}`)
        : f.frame;
      // Until it is sent: a client that drops meanwhile leaves the frame for the next one.
      while (!closed) {
        while (!usable(client) && !closed) await waitForChange();
        if (closed) break;
        if (speed !== 'max') {
          // Re-anchor on every new client: a reconnect does not wait out the time it was away.
          const current =
            anchor && anchor.ws === client ? anchor : { wallMs: clock.now(), recvUs: f.recvUs, ws: client! };
          anchor = current;
          const dueMs = current.wallMs + (f.recvUs - current.recvUs) / 1000 / speed;
          while (clock.now() < dueMs && usable(client) && !closed) await waitForChange(dueMs - clock.now());
        } else {
          while (usable(client) && client.bufferedAmount > HIGH_WATER_BYTES && !closed)
            await waitForChange(2);
        }
        if (!usable(client)) continue;
        client.send(text);
        sent++;
        break;
      }
      if (closed) break;
      if (sent % 200 === 0) await new Promise((r) => setImmediate(r)); // let client messages in
    }
    return sent;
  }

  const done = run().catch((cause) => {
    throw cause instanceof Error && cause.name === 'RecordingFormatError'
      ? cause
      : new ReplayError('replay failed', { cause });
  });
  done.catch(() => {}); // the caller awaits it; never an unhandled rejection meanwhile

  return {
    url: `ws://${options.host ?? '127.0.0.1'}:${port}`,
    get sent() {
      return sent;
    },
    done,
    async close() {
      closed = true;
      notify();
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
