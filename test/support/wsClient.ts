/**
 * A WebSocket client for the push tests: every message it receives is kept (parsed when JSON), and `next()`
 * waits for the first one not yet taken that matches.
 */
import WebSocket from 'ws';
import { until } from './until.js';

export interface TestClient {
  ws: WebSocket;
  /** Every message received, in order (parsed JSON, or the raw text). */
  received: unknown[];
  /** Resolves with the close code and reason. */
  closed: Promise<{ code: number; reason: string }>;
  send(message: unknown): void;
  /** The first message after those already taken that matches (waits for it). */
  next<T = Record<string, unknown>>(match?: (m: T) => boolean, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

/** Opens a connection; rejects with the refusal's status ("Unexpected server response: 403"). */
export function connect(url: string, options: WebSocket.ClientOptions = {}): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, options);
    const received: unknown[] = [];
    let taken = 0;
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.on('close', (code, reason) => done({ code, reason: reason.toString('utf8') })),
    );
    ws.on('message', (data) => {
      const text = data.toString();
      try {
        received.push(JSON.parse(text));
      } catch {
        received.push(text);
      }
    });
    ws.once('error', reject);
    ws.once('open', () => {
      ws.off('error', reject);
      ws.on('error', () => {});
      resolve({
        ws,
        received,
        closed,
        send: (message) => ws.send(typeof message === 'string' ? message : JSON.stringify(message)),
        async next<T>(match: (m: T) => boolean = () => true, timeoutMs = 10_000) {
          return until(
            'a matching message',
            () => {
              for (let i = taken; i < received.length; i++) {
                const m = received[i] as T;
                if (match(m)) {
                  taken = i + 1;
                  return { m };
                }
              }
              return undefined;
            },
            { timeoutMs },
          ).then((r) => r.m);
        },
        async close() {
          if (ws.readyState === WebSocket.CLOSED) return;
          ws.close();
          await closed;
        },
      });
    });
  });
}
