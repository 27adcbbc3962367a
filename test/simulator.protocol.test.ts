/**
 * The simulator speaks Advanced Trade market data like Coinbase: real WebSocket clients (ws) against a real
 * server on 127.0.0.1, fast mode (simulated time runs as fast as the client reads).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type SimulatorServer, startSimulator } from '../src/simulator/server.js';
import { describeCapture, receivedFrames } from './support/captures.js';
import { until } from './support/until.js';

const CHANNELS = ['level2', 'market_trades', 'ticker', 'heartbeats'];
const PRODUCTS = ['BTC-USD', 'ETH-USD'];

interface Client {
  ws: WebSocket;
  texts: string[];
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once at least `n` messages have arrived. */
  waitFor(n: number): Promise<string[]>;
}

function connect(url: string, channels: string[] = CHANNELS): Client {
  const ws = new WebSocket(url);
  const texts: string[] = [];
  let wanted = Number.POSITIVE_INFINITY;
  let wake: (() => void) | null = null;
  ws.on('open', () => {
    for (const channel of channels)
      ws.send(JSON.stringify({ type: 'subscribe', product_ids: PRODUCTS, channel }));
  });
  ws.on('message', (data) => {
    texts.push(data.toString());
    if (texts.length >= wanted && wake) wake();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      wake?.();
      resolve({ code, reason: reason.toString() });
    }),
  );
  return {
    ws,
    texts,
    closed,
    waitFor(n) {
      if (texts.length >= n) return Promise.resolve(texts);
      wanted = n;
      return new Promise((resolve) => {
        wake = () => resolve(texts);
      });
    },
  };
}

const sequenced = (texts: string[]) =>
  texts.map((t) => JSON.parse(t)).filter((f) => typeof f.sequence_num === 'number');

describe('simulator protocol (fast mode)', () => {
  let sim: SimulatorServer;
  beforeAll(async () => {
    sim = await startSimulator({ port: 0, seed: 42, mode: 'fast', subscribeTimeoutMs: 300 });
  });
  afterAll(async () => {
    await sim.close();
  });

  it('answers each subscribe with snapshots then a subscriptions frame, one gapless counter across channels', async () => {
    const c = connect(sim.url);
    const frames = sequenced(await c.waitFor(4000));
    c.ws.close();
    expect(frames.map((f) => f.sequence_num)).toEqual(frames.map((_, i) => i));
    expect(frames.slice(0, 3).map((f) => [f.channel, f.events[0].type ?? null])).toEqual([
      ['l2_data', 'snapshot'],
      ['l2_data', 'snapshot'],
      ['subscriptions', null],
    ]);
    const subs = frames.filter((f) => f.channel === 'subscriptions');
    expect(subs).toHaveLength(4);
    expect(subs[3].events[0].subscriptions).toEqual({
      heartbeats: ['heartbeats'],
      level2: PRODUCTS,
      market_trades: PRODUCTS,
      ticker: PRODUCTS,
    });
    const channels = new Set(frames.map((f) => f.channel));
    expect([...channels].sort()).toEqual([
      'heartbeats',
      'l2_data',
      'market_trades',
      'subscriptions',
      'ticker',
    ]);
    // Heartbeats count seconds: consecutive integers.
    const beats = frames.filter((f) => f.channel === 'heartbeats').map((f) => f.events[0].heartbeat_counter);
    expect(beats.length).toBeGreaterThan(3);
    expect(beats).toEqual(beats.map((_, i) => beats[0] + i));
  });

  it('l2_data rebuilds the simulator book exactly: snapshot, absolute updates, "0" removes, never crossed', async () => {
    const c = connect(sim.url, ['level2']);
    const frames = sequenced(await c.waitFor(3000));
    c.ws.close();
    const conn = sim.connections().at(-1)!;
    const books = new Map<string, { bid: Map<string, string>; offer: Map<string, string> }>();
    let removals = 0;
    let checked = 0;
    for (const f of frames) {
      if (f.channel !== 'l2_data') continue;
      const ev = f.events[0];
      if (ev.type === 'snapshot') books.set(ev.product_id, { bid: new Map(), offer: new Map() });
      const book = books.get(ev.product_id);
      expect(book, 'an update before the snapshot').toBeDefined();
      for (const u of ev.updates) {
        const side = book![u.side as 'bid' | 'offer'];
        if (u.new_quantity === '0') {
          expect(side.has(u.price_level), 'a removal of a level that exists').toBe(true);
          side.delete(u.price_level);
          removals++;
        } else side.set(u.price_level, u.new_quantity);
      }
      const bestBid = Math.max(...[...book!.bid.keys()].map(Number));
      const bestAsk = Math.min(...[...book!.offer.keys()].map(Number));
      expect(bestBid).toBeLessThan(bestAsk);
      const truth = sim.topOfBookAt(ev.product_id, f.sequence_num, conn)!;
      expect([bestBid, bestAsk]).toEqual([Number(truth.bestBid), Number(truth.bestAsk)]);
      expect(book!.bid.get(truth.bestBid)).toBe(truth.bestBidQuantity);
      checked++;
    }
    expect(checked).toBeGreaterThan(2000);
    expect(removals).toBeGreaterThan(100);
  });

  it('reports trades with the MAKER side: a SELL trade takes liquidity from the offers at its price', async () => {
    const c = connect(sim.url, ['level2', 'market_trades']);
    const frames = sequenced(await c.waitFor(3000));
    c.ws.close();
    // Book changes by (product, event_time): the trade's own event carries the maker level's change.
    const changes = new Map<string, { side: string; price_level: string }[]>();
    for (const f of frames) {
      if (f.channel !== 'l2_data' || f.events[0].type !== 'update') continue;
      const ev = f.events[0];
      changes.set(`${ev.product_id}@${ev.updates[0].event_time}`, ev.updates);
    }
    const sides = new Set<string>();
    let checked = 0;
    for (const f of frames) {
      if (f.channel !== 'market_trades' || f.events[0].type !== 'update') continue;
      for (const t of f.events[0].trades) {
        sides.add(t.side);
        const makerSide = t.side === 'SELL' ? 'offer' : 'bid';
        const atTrade = changes.get(`${t.product_id}@${t.time}`) ?? [];
        expect(
          atTrade.some((u) => u.side === makerSide && u.price_level === t.price),
          JSON.stringify(t),
        ).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(20);
    expect([...sides].sort()).toEqual(['BUY', 'SELL']);
  });

  it('is deterministic: the same seed gives identical frames, another seed does not', async () => {
    const a = connect(sim.url);
    const first = (await a.waitFor(2000)).slice(0, 2000);
    a.ws.close();
    const b = connect(sim.url);
    const second = (await b.waitFor(2000)).slice(0, 2000);
    b.ws.close();
    expect(second).toEqual(first);
    const other = await startSimulator({ port: 0, seed: 43, mode: 'fast' });
    const o = connect(other.url);
    const third = (await o.waitFor(2000)).slice(0, 2000);
    o.ws.close();
    await other.close();
    expect(third).not.toEqual(first);
  });

  it('unsubscribe stops a channel and is confirmed by a subscriptions frame', async () => {
    const c = connect(sim.url, ['level2', 'ticker']);
    await c.waitFor(200);
    c.ws.send(JSON.stringify({ type: 'unsubscribe', product_ids: PRODUCTS, channel: 'ticker' }));
    const texts = await c.waitFor(c.texts.length + 2000);
    c.ws.close();
    const frames = sequenced(texts);
    const confirm = frames.findLastIndex(
      (f) => f.channel === 'subscriptions' && f.events[0].subscriptions.ticker === undefined,
    );
    expect(confirm).toBeGreaterThan(0);
    expect(frames.slice(confirm).filter((f) => f.channel === 'ticker')).toEqual([]);
    expect(frames.slice(0, confirm).some((f) => f.channel === 'ticker')).toBe(true);
  });

  it('rejects bad subscribe messages with an error frame', async () => {
    const c = connect(sim.url, []);
    await new Promise((r) => c.ws.once('open', r));
    c.ws.send(JSON.stringify({ type: 'subscribe', product_ids: PRODUCTS, channels: ['level2', 'ticker'] }));
    c.ws.send(JSON.stringify({ type: 'subscribe', product_ids: ['NOPE-USD'], channel: 'level2' }));
    c.ws.send('{not json');
    const texts = await c.waitFor(3);
    c.ws.close();
    expect(texts.map((t) => JSON.parse(t).type)).toEqual(['error', 'error', 'error']);
    expect(JSON.parse(texts[0]!).message).toMatch(/one channel/);
    expect(JSON.parse(texts[1]!).message).toMatch(/NOPE-USD/);
  });

  it('disconnects a client that does not subscribe within the timeout', async () => {
    const c = connect(sim.url, []);
    const { code } = await c.closed;
    expect(code).toBe(1008);
    expect(c.texts).toEqual([]);
  });

  it('fault hooks: sequence gap, error frame, malformed frame, silence, dropped connection', async () => {
    const c = connect(sim.url);
    await c.waitFor(100);
    sim.faults.skipSequence(5);
    sim.faults.sendError('simulated failure');
    sim.faults.sendMalformed('truncated');
    await c.waitFor(c.texts.length + 300);
    const parsed = c.texts.map((t) => {
      try {
        return JSON.parse(t);
      } catch {
        return 'malformed';
      }
    });
    expect(parsed).toContain('malformed');
    expect(
      parsed.some((f) => f !== 'malformed' && f.type === 'error' && f.message === 'simulated failure'),
    ).toBe(true);
    const seqs = parsed.filter((f) => typeof f === 'object' && typeof f.sequence_num === 'number');
    const gaps = seqs.slice(1).filter((f, i) => f.sequence_num !== seqs[i].sequence_num + 1);
    expect(gaps.map((f, _i) => f.sequence_num - seqs[seqs.indexOf(f) - 1].sequence_num)).toEqual([6]);

    // Silence: once frames in flight have arrived, nothing more comes until resume().
    sim.faults.goSilent();
    let count = -1;
    while (count !== c.texts.length) {
      count = c.texts.length;
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 200));
    expect(c.texts.length).toBe(count);
    sim.faults.resume();
    await c.waitFor(count + 50);

    sim.faults.dropConnections();
    const { code } = await c.closed;
    expect(code).toBe(1006); // abnormal closure: no close frame
  });
});

/** The market a frame carries, one string per book change or trade (frame boundaries do not matter). */
function marketItems(frames: Record<string, unknown>[], beforeMs: number): string[] {
  return frames.flatMap((f) =>
    ((f.events as Record<string, unknown>[] | undefined) ?? []).flatMap((e) => {
      if (f.channel === 'l2_data' && e.type === 'update') {
        return (e.updates as Record<string, string>[])
          .filter((u) => Date.parse(u.event_time!) < beforeMs)
          .map((u) => `${e.product_id} ${u.side} ${u.price_level} ${u.new_quantity} ${u.event_time}`);
      }
      if (f.channel === 'market_trades' && e.type === 'update') {
        return (e.trades as Record<string, string>[])
          .filter((t) => Date.parse(t.time!) < beforeMs)
          .map((t) => `trade ${t.trade_id}`);
      }
      return [];
    }),
  );
}

describe('simulator: per-connection frame boundaries, frames lost on the way, a market that ends', () => {
  it('two connections packed differently carry the same market; lost frames are a gap on one, logged as sent', async () => {
    const logPath = join(mkdtempSync(join(tmpdir(), 'qw-sim-')), 'sent.ndjson');
    const anchorUs = Date.UTC(2026, 0, 5) * 1000;
    const durationMs = 30_000;
    const sim = await startSimulator({
      port: 0,
      seed: 11,
      mode: 'fast',
      anchorUs,
      durationMs,
      framing: (conn) => (conn === 2 ? 7 : 1),
      logPath,
    });
    const a = connect(sim.url);
    const b = connect(sim.url);
    await a.waitFor(50);
    sim.faults.goSilent();
    sim.faults.on(1).loseFrames(3);
    sim.faults.resume();
    const endMs = anchorUs / 1000 + durationMs;
    const last = (c: Client) => Date.parse(JSON.parse(c.texts.at(-1) ?? '{}').timestamp ?? '0');
    await until('both connections reached the end of the market', () =>
      [a, b].every((c) => last(c) >= endMs - 1500),
    );
    a.ws.close();
    b.ws.close();
    await sim.close();
    const received = [a, b].map((c) => c.texts.map((t) => JSON.parse(t) as Record<string, unknown>));
    for (const frames of received) {
      expect(Math.max(...frames.map((f) => Date.parse(f.timestamp as string)))).toBeLessThanOrEqual(endMs);
    }
    const log = readFileSync(logPath, 'utf8')
      .trim()
      .split('\n')
      .map(
        (l) =>
          JSON.parse(l) as { conn: number; seq: number | null; lost?: true; frame?: Record<string, unknown> },
      );
    const lost = log.filter((l) => l.lost);
    expect(lost.map((l) => l.conn)).toEqual([1, 1, 1]);
    const lostSeqs = lost.map((l) => l.seq);
    expect(lostSeqs).toEqual([lostSeqs[0], lostSeqs[0]! + 1, lostSeqs[0]! + 2]);
    const seqsA = sequenced(a.texts).map((f) => f.sequence_num as number);
    expect(seqsA.filter((s) => lostSeqs.includes(s))).toEqual([]);
    expect(seqsA.slice(1).filter((s, i) => s !== seqsA[i]! + 1)).toEqual([lostSeqs[2]! + 1]);
    // What connection 1 was sent (received + lost, from the log) is the market connection 2 got in fewer frames.
    const sentA = log.filter((l) => l.conn === 1 && l.frame).map((l) => l.frame!);
    const cutoff = endMs - 2000;
    expect(marketItems(sentA, cutoff)).toEqual(marketItems(received[1]!, cutoff));
    expect(marketItems(received[0]!, cutoff).length).toBeLessThan(marketItems(sentA, cutoff).length);
    expect(sequenced(b.texts).length).toBeLessThan(sequenced(a.texts).length);
  });
});

/** Key signature of a frame: top-level keys, event keys, and keys of the items events carry. */
function shape(frame: Record<string, unknown>): string {
  const events = frame.events as Record<string, unknown>[];
  const ev = events[0]!;
  const items = ['updates', 'trades', 'tickers'].flatMap((k) =>
    Array.isArray(ev[k]) && ev[k].length ? [`${k}:${Object.keys(ev[k][0]).join(',')}`] : [],
  );
  return [
    frame.channel,
    ev.type ?? '',
    Object.keys(frame).join(','),
    Object.keys(ev).join(','),
    ...items,
  ].join(' | ');
}

describeCapture('advancedTrade', 'simulator frames have the real capture shapes', (capture) => {
  it('every (channel, event type) the simulator sends has the same keys as Coinbase sent', async () => {
    const real = new Map<string, string>();
    for (const f of await receivedFrames(capture)) {
      const frame = JSON.parse(f.frame);
      if (frame.channel === 'candles') continue; // not simulated
      const events = frame.events as { type?: string; trades?: unknown[] }[];
      if (events[0]?.trades?.length === 0) continue;
      real.set(`${frame.channel}/${events[0]?.type ?? ''}`, shape(frame));
    }
    const sim = await startSimulator({ port: 0, seed: 7, mode: 'fast' });
    const c = connect(sim.url);
    const texts = await c.waitFor(3000);
    c.ws.close();
    await sim.close();
    const mine = new Map<string, string>();
    for (const t of texts) {
      const f = JSON.parse(t);
      mine.set(`${f.channel}/${f.events[0]?.type ?? ''}`, shape(f));
    }
    expect([...mine.keys()].sort()).toEqual([...real.keys()].sort());
    for (const [k, s] of mine) expect(s, k).toBe(real.get(k));
  });
});

describe('simulator: speed changes at run time (a soak run bursts with them)', () => {
  it('speed 0 stops the market where it is, a higher speed resumes it from there: time never jumps back', async () => {
    const sim = await startSimulator({ port: 0, seed: 8, mode: 'realtime', speed: 1 });
    const client = connect(sim.url);
    try {
      await until('the market running', () => sim.marketEvents() > 3);
      sim.setSpeed(0);
      const stopped = sim.marketEvents();
      const frozenUs = sim.simulatedNowUs();
      await new Promise((r) => setTimeout(r, 300)); // 30 of the simulator's 10 ms rounds
      expect(sim.marketEvents()).toBe(stopped);
      expect(sim.simulatedNowUs()).toBe(frozenUs);
      const resumedAt = performance.now();
      sim.setSpeed(20);
      await until('the market running again', () => sim.marketEvents() > stopped + 3);
      // From where it stood, 20 simulated ms per wall ms since the resume (at most: the resume came first).
      const advancedUs = sim.simulatedNowUs() - frozenUs;
      expect(advancedUs).toBeGreaterThan(0);
      expect(advancedUs).toBeLessThanOrEqual(20 * (performance.now() - resumedAt) * 1000 + 1);
      const times = sequenced(client.texts)
        .filter((f) => f.channel === 'l2_data' || f.channel === 'market_trades')
        .map((f) => Date.parse(f.timestamp));
      expect(times.length).toBeGreaterThan(3);
      expect(times.every((t, i) => i === 0 || t >= times[i - 1]!)).toBe(true);
    } finally {
      client.ws.close();
      await sim.close();
    }
  });
});
