import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { type Frame, subscribeMessage } from '../src/ingest/connection.js';
import {
  type FeedState,
  FeedStateMachine,
  type FeedStateMachineOptions,
  TRANSITIONS,
} from '../src/ingest/feedStateMachine.js';
import type { Logger } from '../src/log.js';
import { productSpecs } from '../src/simulator/exchange.js';
import { type SimulatorServer, startSimulator } from '../src/simulator/server.js';
import { FEED } from '../src/telemetry/catalog.js';
import { Telemetry } from '../src/telemetry/telemetry.js';
import { FakeClock } from './support/clock.js';
import { until } from './support/until.js';

// The state machine against the real exchange simulator over a real WebSocket (no Kinesis needed here; the
// ingestor-level runs with kinesalite are in ingest.statemachine.kinesis.test.ts).
const PRODUCTS = ['BTC-USD'];
let sim: SimulatorServer;
beforeAll(async () => {
  sim = await startSimulator({
    port: 0,
    seed: 3,
    mode: 'fast',
    products: productSpecs(['BTC-USD'], undefined, { levelsPerSide: 50 }),
  });
});
afterAll(async () => {
  await sim?.close();
});

let cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanups = [];
});

const advancedSubscribe = () =>
  (['level2', 'market_trades', 'ticker', 'heartbeats'] as const).map((c) => subscribeMessage(c, PRODUCTS));

function machine(
  overrides: Partial<FeedStateMachineOptions> & { onFrame?: (f: Frame) => Promise<void> } = {},
) {
  const metrics = new Telemetry({ service: 'ingestor' });
  const lines: Record<string, unknown>[] = [];
  const log: Logger = (level, msg, fields) => lines.push({ level, msg, ...fields });
  const frames: number[] = [];
  // Virtual time for the watchdog and the backoff: a deadline fires only when the test moves the clock.
  const clock = new FakeClock();
  const m = new FeedStateMachine({
    url: sim.url,
    subscribeMessages: advancedSubscribe,
    onConnection: (link) => async (frame) => {
      frames[link.number] = (frames[link.number] ?? 0) + 1;
      await overrides.onFrame?.(frame);
    },
    silenceMs: 400,
    backoffBaseMs: 10,
    backoffCapMs: 40,
    random: () => 0.5,
    log,
    telemetry: metrics,
    clock,
    ...overrides,
  });
  cleanups.push(() => m.stop());
  const path = () => lines.filter((l) => l.msg === 'feed state').map((l) => `${l.from}>${l.to}`);
  /** Moves virtual time in `stepMs` steps, with real I/O in between, until `check` holds. */
  const runUntil = (what: string, check: () => boolean, stepMs = 5) =>
    until(
      what,
      async () => {
        if (check()) return true;
        await clock.advance(stepMs);
        return check();
      },
      { everyMs: 1 },
    );
  return { m, metrics, lines, frames, path, clock, runUntil };
}

describe('TRANSITIONS', () => {
  it('reaches every state from init, and only stopped is terminal', () => {
    const seen = new Set<FeedState>(['init']);
    const queue: FeedState[] = ['init'];
    for (let s = queue.shift(); s; s = queue.shift()) {
      for (const next of TRANSITIONS[s]) if (!seen.has(next)) queue.push(next) && seen.add(next);
    }
    expect([...seen].sort()).toEqual(Object.keys(TRANSITIONS).sort());
    for (const [state, next] of Object.entries(TRANSITIONS)) {
      expect(next.length === 0).toBe(state === 'stopped');
      if (state !== 'stopped') expect(next).toContain('stopped');
    }
  });
});

describe('FeedStateMachine against the simulator', () => {
  it('disconnect -> backoff -> reconnect -> resubscribe, then a clean stop', async () => {
    const { m, metrics, frames, path, lines, runUntil } = machine();
    m.start();
    await until('subscribed', () => m.state === 'subscribed' && (frames[0] ?? 0) > 50);
    sim.faults.dropConnections();
    await runUntil(
      'resubscribed on a new connection',
      () => m.state === 'subscribed' && (frames[1] ?? 0) > 50,
    );
    await m.stop();
    expect(m.state).toBe('stopped');
    expect(path()).toEqual([
      'init>connecting',
      'connecting>subscribing',
      'subscribing>subscribed',
      'subscribed>backoff',
      'backoff>connecting',
      'connecting>subscribing',
      'subscribing>subscribed',
      'subscribed>stopped',
    ]);
    expect(metrics.value(FEED.transitions, { From: 'subscribed', To: 'backoff' })).toBe(1);
    expect(metrics.value(FEED.transitions, { From: 'backoff', To: 'connecting' })).toBe(1);
    expect(metrics.value(FEED.closes, { Reason: 'remote' })).toBe(1);
    expect(metrics.value(FEED.reconnects)).toBe(1);
    expect(metrics.value(FEED.connected)).toBe(0);
    // Seeded jitter: the first retry waits half of the base.
    expect(lines.find((l) => l.to === 'backoff')?.reconnectInMs).toBe(5);
  });

  it('silence -> watchdog -> reconnect', async () => {
    const { m, metrics, frames, runUntil } = machine();
    m.start();
    await until('subscribed', () => (frames[0] ?? 0) > 50);
    sim.faults.goSilent();
    // Frames still in flight only push the deadline out; it fires once 400 virtual ms pass without one.
    await runUntil('the watchdog', () => metrics.value(FEED.closes, { Reason: 'silence' }) === 1, 20).finally(
      () => sim.faults.resume(),
    );
    await runUntil('a new connection with traffic', () => m.state === 'subscribed' && (frames[1] ?? 0) > 10);
    expect(metrics.value(FEED.transitions, { From: 'subscribed', To: 'backoff' })).toBe(1);
    expect(metrics.value(FEED.transitions, { From: 'subscribing', To: 'subscribed' })).toBe(2);
  });

  it('does not fire the watchdog while our own backpressure has paused the socket', async () => {
    let release: () => void = () => {};
    let blocked = false;
    const { m, metrics, frames, clock } = machine({
      pauseAt: 8,
      silenceMs: 200,
      onFrame: async () => {
        if (blocked) return;
        blocked = true;
        // A slow consumer (e.g. a full producer buffer): hold the frame for several silence periods.
        await new Promise<void>((resolve) => {
          release = resolve;
        });
      },
    });
    m.start();
    await until('the handler to block', () => blocked);
    await until('the socket paused by backpressure', () => m.socketPaused);
    await clock.advance(1000); // 5x silenceMs with the socket paused, every watchdog check run
    expect(metrics.value(FEED.closes, { Reason: 'silence' })).toBe(0);
    expect(m.state).toBe('subscribed');
    release();
    const before = frames[0] ?? 0;
    await until('reading again', () => (frames[0] ?? 0) > before + 100);
    expect(frames[1]).toBeUndefined(); // still the first connection
    await m.stop();
    expect(metrics.value(FEED.watchdogSuspensions)).toBeGreaterThanOrEqual(1000 / 40); // one per check
  });
});

describe('FeedStateMachine against scripted servers', () => {
  async function server(options: { autoPong: boolean; heartbeatEveryMs?: number }) {
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', autoPong: options.autoPong });
    await new Promise((resolve) => wss.once('listening', resolve));
    const closes: number[] = [];
    wss.on('connection', (ws) => {
      let timer: NodeJS.Timeout | undefined;
      ws.on('message', () => {
        if (options.heartbeatEveryMs && !timer) {
          let n = 0;
          timer = setInterval(
            () => ws.send(JSON.stringify({ channel: 'heartbeats', n: n++ })),
            options.heartbeatEveryMs,
          );
        }
      });
      ws.on('close', (code) => {
        clearInterval(timer);
        closes.push(code);
      });
    });
    cleanups.push(() => new Promise((r) => wss.close(r)));
    const { port } = wss.address() as { port: number };
    return { url: `ws://127.0.0.1:${port}`, closes };
  }

  it('treats a missing pong as a dead connection even while frames flow', async () => {
    const s = await server({ autoPong: false, heartbeatEveryMs: 20 });
    const { m, metrics, runUntil } = machine({
      url: s.url,
      silenceMs: 2000,
      pingIntervalMs: 50,
      pongTimeoutMs: 200,
    });
    m.start();
    await until('subscribed', () => m.state === 'subscribed');
    await runUntil('the pong deadline', () => metrics.value(FEED.closes, { Reason: 'pong' }) >= 1);
    expect(m.totals.pongs).toBe(0);
    expect(metrics.value(FEED.closes, { Reason: 'silence' })).toBe(0);
    expect(metrics.value(FEED.transitions, { From: 'subscribed', To: 'backoff' })).toBeGreaterThanOrEqual(1);
  });

  it('answered pings keep a quiet-but-alive connection up; a stop closes it with 1000', async () => {
    const s = await server({ autoPong: true, heartbeatEveryMs: 20 });
    const { m, metrics, clock } = machine({
      url: s.url,
      silenceMs: 2000,
      pingIntervalMs: 50,
      pongTimeoutMs: 200,
    });
    m.start();
    await until('subscribed', () => m.state === 'subscribed');
    for (let round = 1; round <= 10; round++) {
      await clock.advance(100); // a ping goes out (ping every 50 ms, checks every 40 ms)...
      await until(`pong ${round}`, () => m.totals.pongs >= round); // ...and is answered before the next
    }
    await clock.advance(1000); // answered pings: no deadline runs, however long this takes in real time
    await m.stop();
    expect(metrics.value(FEED.closes, { Reason: 'pong' })).toBe(0);
    await until('the server to see the close', () => s.closes.length === 1);
    expect(s.closes).toEqual([1000]);
  });

  it('gives up on a subscription that is never confirmed', async () => {
    const s = await server({ autoPong: true });
    const { m, metrics, path, runUntil } = machine({ url: s.url, subscribeTimeoutMs: 100 });
    m.start();
    await runUntil(
      'the subscribe deadline',
      () => metrics.value(FEED.closes, { Reason: 'subscribe_timeout' }) >= 1,
    );
    expect(path().slice(0, 3)).toEqual(['init>connecting', 'connecting>subscribing', 'subscribing>backoff']);
  });

  it('backs off exponentially with seeded full jitter up to the cap when it cannot connect', async () => {
    const s = await server({ autoPong: true });
    const deadUrl = s.url.replace(/:\d+$/, ':1'); // nothing listens on port 1
    const { m, lines, runUntil } = machine({
      url: deadUrl,
      backoffBaseMs: 20,
      backoffCapMs: 100,
      random: () => 0.5,
    });
    m.start();
    await runUntil('five failures', () => lines.filter((l) => l.to === 'backoff').length >= 5);
    await m.stop();
    const delays = lines.filter((l) => l.to === 'backoff').map((l) => l.reconnectInMs);
    expect(delays.slice(0, 5)).toEqual([10, 20, 40, 50, 50]);
    expect(m.state).toBe('stopped');
  });
});
