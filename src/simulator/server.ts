/**
 * The exchange simulator's server (Coinbase market data on 127.0.0.1): one HTTP server whose upgrades are the
 * WebSocket feed and whose plain GETs are the REST books (rest.ts), on one port.
 *
 * One market, two protocols, chosen per connection by the upgrade's path: `/` speaks Advanced Trade (session.ts), as
 * wss://advanced-trade-ws.coinbase.com does, and SIMULATOR_EXCHANGE_PATH (`/exchange`) the legacy Exchange feed
 * (exchangeSession.ts), as wss://ws-feed.exchange.coinbase.com does. Coinbase serves them from two hosts; a path is
 * how one port stands in for both, and it lets one simulator feed both kinds of client the very same market at once.
 * Both REST books answer on the same port whatever the connections speak.
 *
 * Every connection gets its own session, so one seed gives every client the same market. Modes:
 * - realtime: simulated time = anchor + wall time elapsed since start; frames go out when due, so
 *   receive-minus-exchange latency is meaningful;
 * - fast: simulated time runs as fast as the client reads (backpressure through ws send callbacks), from
 *   a seed-derived epoch, so the same seed and the same client messages give byte-identical frames.
 */

import { createWriteStream, type WriteStream } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { type WebSocket, WebSocketServer } from 'ws';
import { sleep } from '../clock.js';
import { SIMULATOR_EXCHANGE_PATH } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from './exchange.js';
import { ExchangeSession } from './exchangeSession.js';
import { Repacker } from './framing.js';
import { type HostileKind, hostileFrame, inSequence, pickHostile, slowLoris } from './hostile.js';
import type { ProductSpec } from './market.js';
import {
  bookDialect,
  faultAnswer,
  REST_FAULTS,
  type RestAnswer,
  type RestFaultKind,
  RestMarket,
  restError,
} from './rest.js';
import { Rng } from './rng.js';
import {
  type LostUpdate,
  type MarketSession,
  type OutFrame,
  Session,
  type SimProtocol,
  type TopOfBook,
} from './session.js';

/** A bad option or fault argument (an unknown product, a bad count, an impossible delay range). */
export class SimulatorError extends QuoteWatchError {}

/** A level change a connection's frame left out (SimulatorFaults.loseUpdate, SimulatorOptions.lostUpdates). */
export interface LostUpdateRecord extends LostUpdate {
  conn: number;
}

export type SimulatorMode = 'realtime' | 'fast';

export interface SimulatorOptions {
  /** 0 picks a free port. Default 8765. */
  port?: number;
  host?: string;
  seed: number;
  products?: readonly ProductSpec[];
  mode: SimulatorMode;
  /** NDJSON log of every frame sent, one `{"conn","seq","frame"}` line each; off when absent. */
  logPath?: string;
  /** A connection that has not subscribed by then is closed (Coinbase: 5 s). */
  subscribeTimeoutMs?: number;
  /** Simulated time at start, epoch µs. Default: the wall clock (realtime) or a seed-derived epoch (fast). */
  anchorUs?: number;
  /**
   * Fast mode: wall-clock pause after the first subscribe before time starts running, so subscribe
   * messages sent together all take effect at the same simulated instant (keeps runs identical).
   */
  fastStartDelayMs?: number;
  /** Realtime: simulated seconds per wall second (chaos and soak runs stream at several times real time). */
  speed?: number;
  /**
   * Realtime: simulated time stands at the anchor until `fastStartDelayMs` after the first subscribe, so runs
   * compared with each other start at the same market instant (whenever their first client connects).
   */
  holdUntilSubscribed?: boolean;
  /**
   * Frame boundaries per connection (1, 2, ... in connection order): the most events one level2 or market_trades
   * frame carries (framing.ts). Absent or 1: one frame per market batch, as produced. Advanced Trade connections
   * only (the Exchange feed's frames carry one event each; its level2_batch is batched by time).
   */
  framing?: (conn: number) => number;
  /**
   * Hostile mode: a hostile frame (hostile.ts, seeded kind) on every connection every this many simulated ms (the
   * frames are Advanced Trade's shapes: an Exchange connection gets only the slow-loris socket).
   */
  hostileEveryMs?: number;
  /** The market ends after this much simulated time (every connection stops at the same instant); default never. */
  durationMs?: number;
  /**
   * Frames lost on the way, per connection: those in sequence sent while the connection's simulated time (ms since
   * the anchor) is in one of these [from, to) windows (logged as sent, never delivered: the client sees a gap).
   */
  losses?: (conn: number) => readonly (readonly [fromMs: number, toMs: number])[];
  /**
   * REST product book: each answer goes out after a delay drawn uniformly from [min, max] wall ms (a seeded stream
   * of its own), so the book's time lags its arrival as on the real exchange. Default [20, 300].
   */
  restDelayMs?: readonly [minMs: number, maxMs: number];
  /**
   * Lost updates for long runs: one per connection in every `everyMs` of simulated time, at a seeded moment and
   * product (the same for every connection and run of a seed; Session.loseUpdatesEvery), listed by lostUpdates().
   */
  lostUpdates?: { everyMs: number };
}

export interface SimulatorFaults {
  /** Abruptly drops every open connection (no close frame, like a network failure). */
  dropConnections(): void;
  /** Stops sending on every connection until resume() (or for `ms`); nothing is lost, only delayed. */
  goSilent(ms?: number): void;
  resume(): void;
  /**
   * The next frame on every connection jumps `n` sequence numbers ahead (Exchange: every product's sequence, seen on
   * its next match, ticker or heartbeat).
   */
  skipSequence(n?: number): void;
  /** Sends a broken frame (a level2 update cut in half, or garbage) on every connection now, outside the sequence. */
  sendMalformed(kind?: 'truncated' | 'garbage'): void;
  /** Sends an error frame (`{"type":"error","message"}`) on every connection now. */
  sendError(message: string): void;
  /** Sends an in-sequence level2 snapshot of `productId` padded to `levels` levels (~5 MB at 50k). */
  sendOversizedSnapshot(productId?: string, levels?: number): void;
  /**
   * Sends a hostile frame (hostile.ts) on every Advanced Trade connection, or (`slowloris`) stalls every connection
   * on a frame never finished.
   */
  sendHostile(kind: HostileKind): void;
  /**
   * On every connection, the next level2 update frame of `productId` (default the first product) that carries
   * at least two changes leaves one out (seeded pick); the frame keeps its sequence number, so no gap shows and
   * the client's book is silently wrong at that level until its price changes again. Listed by lostUpdates(); the
   * REST book is the exchange's truth and never has it.
   */
  loseUpdate(productId?: string): void;
  /**
   * The next `count` REST answers of a book (either API's, each in its own error shape): `error` a 500 with an error
   * body, `timeout` none at all (the socket hangs until the client gives up or the server closes), `throttle` a 429
   * with Retry-After, `malformed` a 200 whose body is not JSON. Calls queue up in order.
   */
  rest(kind: RestFaultKind, count?: number): void;
  /** Only connection `conn` (the ones above act on every connection). */
  on(conn: number): Pick<
    SimulatorFaults,
    'dropConnections' | 'skipSequence' | 'sendMalformed' | 'sendHostile' | 'loseUpdate'
  > & {
    /** The next `n` frames of the sequence are lost on the way (their numbers are used: the client sees a gap). */
    loseFrames(n: number): void;
  };
}

export interface SimulatorServer {
  /** The Advanced Trade WebSocket feed, `ws://host:port`. */
  url: string;
  /** The legacy Exchange WebSocket feed, `ws://host:port/exchange`: the same market. */
  exchangeUrl: string;
  /** The REST API on the same port, `http://host:port` (both books: rest.ts). */
  restUrl: string;
  port: number;
  mode: SimulatorMode;
  faults: SimulatorFaults;
  /** Connection ids, oldest first (1, 2, ...). */
  connections(): number[];
  /** Realtime: from now on, simulated seconds per wall second (a soak run's burst); time never jumps. */
  setSpeed(speed: number): void;
  /** The market's simulated time now (epoch µs). */
  simulatedNowUs(): number;
  /** Market batches produced so far (the same on every connection): what chaos runs schedule their faults by. */
  marketEvents(): number;
  /** Frames delivered to connection `conn` (sent and not lost), errors and broken frames included. */
  framesSent(conn: number): number;
  /** With `durationMs`: the market is over and every open connection (at least one) has been sent all of it. */
  ended(): boolean;
  /** The market's time now (realtime: the clock's; fast: the furthest connection's), epoch µs. */
  timeUs(): number;
  /** Hostile frames sent, by kind. */
  readonly hostileSent: Record<string, number>;
  /** Plain HTTP requests received (every path and answer, faulted and unanswered ones included). */
  restRequests(): number;
  /** Every level change a frame left out, by connection then time (closed connections included). */
  lostUpdates(): LostUpdateRecord[];
  /**
   * The simulator's top of book after the last level2 frame with seq <= `seq` on connection `conn` (default: the
   * newest): Advanced Trade's sequence_num, the Exchange feed's frame count (OutFrame.seq).
   */
  topOfBookAt(productId: string, seq: number, conn?: number): TopOfBook | undefined;
  /**
   * The simulator's top of book after its last level2 frame with exchange time <= timeUs, on any connection (every
   * connection carries the same market): what a book built from any of them holds at that position (FeatureRow.seq).
   * Connections of one protocol give the same answer; an Exchange book lags an Advanced Trade one by its batching.
   */
  topOfBookAtTime(productId: string, timeUs: number): TopOfBook | undefined;
  close(): Promise<void>;
}

interface Conn {
  id: number;
  ws: WebSocket;
  protocol: SimProtocol;
  session: MarketSession;
  inflight: number;
  drained: (() => void) | null;
  pumping: boolean;
  closed: boolean;
  /** Set when the connection packs frames (SimulatorOptions.framing). */
  packer: Repacker | undefined;
  /** A slow-loris frame is being trickled: nothing else may be sent. */
  stalled: boolean;
  /** Frames of the sequence still to lose (the loseFrames fault). */
  lose: number;
  /** SimulatorOptions.losses of this connection, in µs of simulated time. */
  lossWindows: (readonly [number, number])[];
  sent: number;
  /** Lost updates of the session already written to the log. */
  loggedLost: number;
}

const HIGH_WATER = 256;
const LOW_WATER = 64;

export async function startSimulator(options: SimulatorOptions): Promise<SimulatorServer> {
  const [delayMin, delayMax] = options.restDelayMs ?? [20, 300];
  if (!(delayMin >= 0 && delayMax >= delayMin))
    throw new SimulatorError(
      `restDelayMs must be [min, max] with 0 <= min <= max, got [${delayMin}, ${delayMax}]`,
    );
  if (options.lostUpdates && !(options.lostUpdates.everyMs > 0))
    throw new SimulatorError(`lostUpdates.everyMs must be > 0, got ${options.lostUpdates.everyMs}`);
  const mode = options.mode;
  const products = options.products ?? DEFAULT_PRODUCTS;
  const subscribeTimeoutMs = options.subscribeTimeoutMs ?? 5000;
  const fastStartDelayMs = options.fastStartDelayMs ?? 20;
  let wallStartMs: number | undefined = options.holdUntilSubscribed ? undefined : performance.now();
  let speed = options.speed ?? 1;
  const anchorUs = options.anchorUs ?? (mode === 'realtime' ? Date.now() * 1000 : seedEpochUs(options.seed));
  // Simulated time runs at `speed` from (wallStartMs, baseUs); setSpeed() starts a new segment there.
  let baseUs = anchorUs;
  const simNowUs = () =>
    wallStartMs === undefined
      ? anchorUs
      : baseUs + Math.round((performance.now() - wallStartMs) * 1000 * speed);
  const hostileRng = Rng.derive(options.seed, 'hostile');
  const hostileSent: Record<string, number> = {};
  let nextHostileUs = options.hostileEveryMs
    ? anchorUs + options.hostileEveryMs * 1000
    : Number.POSITIVE_INFINITY;
  const endUs =
    options.durationMs === undefined ? Number.POSITIVE_INFINITY : anchorUs + options.durationMs * 1000;
  const simNow = () => Math.min(endUs, simNowUs());
  const log: WriteStream | null = options.logPath ? createWriteStream(options.logPath, { flags: 'a' }) : null;

  const conns = new Map<number, Conn>();
  const finished = new Map<number, MarketSession>(); // closed connections stay queryable by topOfBookAt
  const sentBy = new Map<number, number>(); // and their frame counts
  let nextConnId = 1;
  let silent = false;
  let holding: NodeJS.Timeout | undefined;
  let silenceTimer: NodeJS.Timeout | null = null;

  // --- REST: the product book, its delay and its faults ---
  const restMarket = new RestMarket(products, options.seed, anchorUs);
  const restDelayRng = Rng.derive(options.seed, 'rest-delay');
  const restFaults: RestFaultKind[] = [];
  let restCount = 0;
  /** Answers waiting out their delay, and requests never answered (the timeout fault): ended by close(). */
  const restDelayed = new Set<NodeJS.Timeout>();
  const restHanging = new Set<ServerResponse>();

  function serveRest(req: IncomingMessage, res: ServerResponse): void {
    restCount++;
    const url = new URL(req.url ?? '/', 'http://simulator');
    // The book is taken now, at the market's time; only its sending waits.
    let answer: RestAnswer;
    try {
      answer = restMarket.answer(req.method ?? 'GET', url, marketTimeUs());
    } catch (err) {
      answer = restError(500, 'INTERNAL', `simulator failed: ${String(err)}`);
    }
    const dialect = bookDialect(url.pathname);
    const fault = dialect ? restFaults.shift() : undefined;
    if (fault === 'timeout') {
      restHanging.add(res);
      res.on('close', () => restHanging.delete(res));
      return;
    }
    const sent: RestAnswer = fault ? faultAnswer(fault, answer, dialect) : answer;
    const delayMs = delayMin + restDelayRng.uniform() * (delayMax - delayMin);
    const timer = setTimeout(() => {
      restDelayed.delete(timer);
      if (!res.destroyed) res.writeHead(sent.status, sent.headers).end(sent.body); // unless the client gave up
    }, delayMs);
    restDelayed.add(timer);
  }

  /** The market's time now (realtime: the clock's; fast: the furthest connection's), epoch µs. */
  const marketTimeUs = () =>
    mode === 'realtime' ? simNow() : Math.max(anchorUs, ...[...conns.values()].map((c) => c.session.timeUs));

  const host = options.host ?? '127.0.0.1';
  const http = createServer((req, res) => serveRest(req, res));
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((resolve, reject) => {
    http.once('listening', resolve);
    http.once('error', reject);
    http.listen(options.port ?? 8765, host);
  });
  const address = http.address();
  const port = typeof address === 'object' && address ? address.port : (options.port ?? 8765);

  function send(c: Conn, f: OutFrame, hostile?: HostileKind): void {
    if (c.closed || c.stalled || c.ws.readyState !== c.ws.OPEN) return;
    if (
      f.seq !== null &&
      (c.lose > 0 || c.lossWindows.some(([a, b]) => c.session.timeUs >= a && c.session.timeUs < b))
    ) {
      if (c.lose > 0) c.lose--;
      // Lost on the way: the exchange sent it (the log says so), the client never sees it.
      if (log) log.write(`{"conn":${c.id},"seq":${f.seq},"lost":true,"frame":${f.text}}\n`);
      return;
    }
    c.inflight++;
    c.sent++;
    c.ws.send(f.text, () => {
      c.inflight--;
      if (c.drained && c.inflight <= LOW_WATER) {
        const wake = c.drained;
        c.drained = null;
        wake();
      }
    });
    if (log) {
      const line = hostile
        ? `"hostile":"${hostile}"`
        : f.seq === null
          ? `"malformed":${JSON.stringify(f.text)}`
          : `"frame":${f.text}`;
      log.write(`{"conn":${c.id},"seq":${f.seq},${line}}\n`);
    }
  }

  /** The frames a session produced, as this connection sends them (its own frame boundaries). */
  function sendAll(c: Conn, frames: OutFrame[]): void {
    for (const f of c.packer ? c.packer.pack(frames) : frames) send(c, f);
    // The log says which change a frame left out (the audit reads only lines with a frame).
    const lost = c.session.lostUpdates;
    for (; log && c.loggedLost < lost.length; c.loggedLost++)
      log.write(`{"conn":${c.id},"seq":null,"lostUpdate":${JSON.stringify(lost[c.loggedLost])}}\n`);
  }

  function sendHostile(c: Conn, kind: HostileKind): void {
    if (c.closed || c.stalled || c.ws.readyState !== c.ws.OPEN) return;
    if (kind === 'slowloris') {
      hostileSent[kind] = (hostileSent[kind] ?? 0) + 1;
      if (log) log.write(`{"conn":${c.id},"seq":null,"hostile":"slowloris"}\n`);
      c.stalled = true;
      // The half-written frame makes the socket useless: the client's watchdog closes it.
      slowLoris((c.ws as unknown as { _socket: import('node:net').Socket })._socket);
      return;
    }
    if (!(c.session instanceof Session)) return; // Advanced Trade's shapes: nothing to an Exchange client
    hostileSent[kind] = (hostileSent[kind] ?? 0) + 1;
    const product = products[hostileRng.int(products.length)]?.productId ?? 'BTC-USD';
    const seq = inSequence(kind) ? (c.packer ? c.packer.reserve() : c.session.reserveSeq()) : null;
    send(c, { text: hostileFrame(kind, seq ?? 0, c.session.timeUs, product), seq }, kind);
  }

  /** Hostile mode: every hostileEveryMs of simulated time, one seeded kind on every connection. */
  function hostileDue(now: number): void {
    while (now >= nextHostileUs) {
      nextHostileUs += (options.hostileEveryMs ?? 0) * 1000;
      const kind = pickHostile(hostileRng);
      for (const c of conns.values()) sendHostile(c, kind);
    }
  }

  /** Fast mode: produce and send frames for as long as the client keeps reading. */
  async function pump(c: Conn): Promise<void> {
    if (c.pumping) return;
    c.pumping = true;
    await sleep(fastStartDelayMs);
    let sinceYield = 0;
    while (!c.closed) {
      if (silent || !c.session.subscribed || c.session.timeUs >= endUs) {
        await sleep(5);
        continue;
      }
      sendAll(c, c.session.advanceTo(Math.min(endUs, c.session.peekTimeUs())));
      hostileDue(c.session.timeUs);
      if (c.inflight > HIGH_WATER) {
        await new Promise<void>((resolve) => {
          c.drained = resolve;
        });
      }
      // Let incoming messages (unsubscribe, close) and fault calls interleave.
      if (++sinceYield >= 50) {
        sinceYield = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
  }

  /** Realtime: send what became due up to the simulated now. */
  const round = () => {
    if (silent) return;
    const now = simNow();
    for (const c of conns.values()) sendAll(c, c.session.advanceTo(now));
    hostileDue(now);
    restMarket.advanceTo(now);
  };
  const ticker = mode === 'realtime' ? setInterval(round, 10) : null;

  wss.on('connection', (ws, req) => {
    const path = new URL(req.url ?? '/', 'http://simulator').pathname;
    const protocol: SimProtocol = path === SIMULATOR_EXCHANGE_PATH ? 'exchange' : 'advanced';
    const session =
      protocol === 'exchange'
        ? new ExchangeSession(products, options.seed, anchorUs)
        : new Session(products, options.seed, anchorUs);
    if (options.lostUpdates) session.loseUpdatesEvery(options.lostUpdates.everyMs * 1000);
    // A late realtime client joins the market where it is now; the catch-up sends nothing (no subscriptions).
    if (mode === 'realtime') session.advanceTo(simNow());
    const id = nextConnId++;
    const maxEvents = protocol === 'advanced' ? (options.framing?.(id) ?? 1) : 1;
    const c: Conn = {
      id,
      ws,
      protocol,
      session,
      inflight: 0,
      drained: null,
      pumping: false,
      closed: false,
      packer: maxEvents > 1 ? new Repacker(maxEvents) : undefined,
      stalled: false,
      lose: 0,
      lossWindows: (options.losses?.(id) ?? []).map(
        ([from, to]) => [anchorUs + from * 1000, anchorUs + to * 1000] as const,
      ),
      sent: 0,
      loggedLost: 0,
    };
    conns.set(c.id, c);
    const timeout = setTimeout(() => {
      if (!c.session.subscribed) ws.close(1008, `no subscribe within ${subscribeTimeoutMs} ms`);
    }, subscribeTimeoutMs);

    ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      // Realtime: answer at the current simulated time, after whatever became due before the message.
      if (mode === 'realtime' && !silent) sendAll(c, c.session.advanceTo(simNow()));
      sendAll(c, c.session.handleMessage(text));
      if (mode === 'fast' && c.session.subscribed) void pump(c);
      if (c.session.subscribed && wallStartMs === undefined && !holding) {
        holding = setTimeout(() => {
          wallStartMs = performance.now();
        }, fastStartDelayMs);
      }
    });
    ws.on('close', () => {
      clearTimeout(timeout);
      c.closed = true;
      c.drained?.();
      conns.delete(c.id);
      finished.set(c.id, c.session);
      sentBy.set(c.id, c.sent);
    });
    ws.on('error', () => {}); // a client vanishing mid-send is normal; 'close' follows
  });

  const everyConn = (fn: (c: Conn) => void) => {
    for (const c of conns.values()) fn(c);
  };
  const malformed = (c: Conn, kind: 'truncated' | 'garbage') => {
    const whole = c.session.emptyUpdateText(products[0]?.productId ?? 'BTC-USD');
    send(c, {
      text: kind === 'truncated' ? whole.slice(0, Math.floor(whole.length / 2)) : '}{not json',
      seq: null,
    });
  };
  const skip = (c: Conn, n: number) => (c.packer ? c.packer.skip(n) : c.session.skipSequence(n));
  const productOf = (productId: string | undefined): string => {
    const id = productId ?? products[0]?.productId ?? 'BTC-USD';
    if (!products.some((p) => p.productId === id))
      throw new SimulatorError(`loseUpdate: unknown product ${id}`);
    return id;
  };

  const faults: SimulatorFaults = {
    dropConnections: () => everyConn((c) => c.ws.terminate()),
    goSilent(ms) {
      silent = true;
      if (silenceTimer) clearTimeout(silenceTimer);
      silenceTimer = ms === undefined ? null : setTimeout(() => faults.resume(), ms);
    },
    resume() {
      silent = false;
      if (silenceTimer) clearTimeout(silenceTimer);
      silenceTimer = null;
    },
    skipSequence: (n = 1) => everyConn((c) => skip(c, n)),
    sendMalformed: (kind = 'truncated') => everyConn((c) => malformed(c, kind)),
    sendError: (message) => everyConn((c) => send(c, { text: c.session.errorText(message), seq: null })),
    sendOversizedSnapshot: (productId = products[0]?.productId ?? 'BTC-USD', levels = 50_000) =>
      everyConn((c) => {
        const f = c.session.oversizedSnapshot(productId, levels);
        if (f) send(c, f);
      }),
    sendHostile: (kind) => everyConn((c) => sendHostile(c, kind)),
    loseUpdate(productId) {
      const id = productOf(productId);
      everyConn((c) => c.session.loseUpdate(id));
    },
    rest(kind, count = 1) {
      if (!REST_FAULTS.includes(kind)) throw new SimulatorError(`rest: unknown fault ${String(kind)}`);
      if (!(Number.isInteger(count) && count >= 1))
        throw new SimulatorError(`rest: count must be a whole number >= 1, got ${count}`);
      for (let i = 0; i < count; i++) restFaults.push(kind);
    },
    on(conn) {
      const one = (fn: (c: Conn) => void) => {
        const c = conns.get(conn);
        if (c) fn(c);
      };
      return {
        dropConnections: () => one((c) => c.ws.terminate()),
        skipSequence: (n = 1) => one((c) => skip(c, n)),
        sendMalformed: (kind = 'truncated') => one((c) => malformed(c, kind)),
        sendHostile: (kind) => one((c) => sendHostile(c, kind)),
        loseUpdate(productId) {
          const id = productOf(productId);
          one((c) => c.session.loseUpdate(id));
        },
        loseFrames: (n) =>
          one((c) => {
            c.lose += n;
          }),
      };
    },
  };

  return {
    url: `ws://${host}:${port}`,
    exchangeUrl: `ws://${host}:${port}${SIMULATOR_EXCHANGE_PATH}`,
    restUrl: `http://${host}:${port}`,
    port,
    mode,
    faults,
    connections: () => [...new Set([...finished.keys(), ...conns.keys()])].sort((a, b) => a - b),
    setSpeed(next) {
      if (wallStartMs !== undefined) {
        baseUs = simNowUs();
        wallStartMs = performance.now();
      }
      speed = next;
      // What became due before the change goes out now: a stop (speed 0) leaves nothing pending behind it.
      if (mode === 'realtime') round();
    },
    simulatedNowUs: () => simNow(),
    marketEvents() {
      let n = 0;
      for (const session of [...finished.values(), ...[...conns.values()].map((c) => c.session)]) {
        n = Math.max(n, session.batches);
      }
      return n;
    },
    hostileSent,
    restRequests: () => restCount,
    lostUpdates() {
      const sessions = new Map<number, MarketSession>([
        ...finished,
        ...[...conns].map(([id, c]) => [id, c.session] as const),
      ]);
      return [...sessions]
        .sort(([a], [b]) => a - b)
        .flatMap(([conn, session]) => session.lostUpdates.map((l) => ({ conn, ...l })));
    },
    timeUs: marketTimeUs,
    framesSent: (conn) => sentBy.get(conn) ?? conns.get(conn)?.sent ?? 0,
    ended: () =>
      (mode === 'fast' || simNow() >= endUs) &&
      conns.size > 0 &&
      [...conns.values()].every((c) => c.session.timeUs >= endUs && c.inflight === 0),
    topOfBookAt(productId, seq, conn) {
      const id = conn ?? Math.max(0, ...conns.keys(), ...finished.keys());
      const session = conns.get(id)?.session ?? finished.get(id);
      return session?.topOfBookAt(productId, seq);
    },
    topOfBookAtTime(productId, timeUs) {
      let best: TopOfBook | undefined;
      for (const session of [...finished.values(), ...[...conns.values()].map((c) => c.session)]) {
        const top = session.topOfBookAtTime(productId, timeUs);
        if (top && (!best || top.timeUs >= best.timeUs)) best = top;
      }
      return best;
    },
    async close() {
      if (ticker) clearInterval(ticker);
      clearTimeout(holding);
      if (silenceTimer) clearTimeout(silenceTimer);
      for (const c of conns.values()) {
        c.closed = true;
        c.drained?.();
        c.ws.terminate();
      }
      for (const timer of restDelayed) clearTimeout(timer);
      for (const res of restHanging) res.destroy();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      const closed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections(); // idle keep-alive sockets and answers cut short by the close
      await closed;
      if (log) await new Promise<void>((resolve) => log.end(resolve));
    },
  };
}
