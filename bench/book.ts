/**
 * book.*: the L2 book's update and top-3 read cost, on the real capture (both products' l2_data updates
 * replayed over their snapshots) and on a long simulator stream (book.synthetic_*), with the same figures for
 * a naive Map-keyed book (book.naive.*) so the ratio is visible.
 *
 * Method. One "update" is OrderBook.applyChange(side, price, size) with the decimal strings as they come from
 * the mapper, so parsing is included. A single update takes well under the cost of a timer read, so updates
 * are timed in batches of BATCH consecutive ones with process.hrtime.bigint() around each batch, and each
 * batch contributes one sample: its mean ns per update. The median is therefore the median batch mean, and the
 * p99 the 99th percentile of batch means: a single slow update (a page split, a GC pause) is averaged with
 * BATCH - 1 others, so the true per-update p99 can be higher than reported. The timer's own cost (the median
 * of an empty hrtime pair, in `context.timerNs`, ~75 ns here, i.e. ~2 ns per update) is subtracted from every
 * batch. Each round rebuilds fresh books from the snapshots
 * (untimed) and replays the whole update sequence in capture order; the first round warms the JIT and is
 * discarded. A top-3 read is the price and size of the best 3 levels of both sides (what the features read),
 * timed the same way in batches between update batches.
 */
import { fileURLToPath } from 'node:url';
import { OrderBook } from '../src/book/book.js';
import { parseUnits } from '../src/book/units.js';
import { FEED_PRODUCT, mapAdvancedTradeFrame } from '../src/marketdata/advancedTrade.js';
import { toUnits } from '../src/marketdata/decimal.js';
import type { Level, MarketEvent, Side } from '../src/marketdata/events.js';
import { DEFAULT_PRODUCTS, seedEpochUs } from '../src/simulator/exchange.js';
import { Session } from '../src/simulator/session.js';
import { absentNote, capture, receivedFrames } from '../test/support/captureFiles.js';
import { type BenchGroup, type BenchResult, machineContext, quantile } from './harness.js';

const CAPTURE = capture('advancedTrade');
const BATCH = 32;
const SYNTHETIC_SEED = 7;
const SYNTHETIC_MINUTES = 20;

/** What both books under test offer. */
interface BenchBook {
  applySnapshot(bids: readonly Level[], asks: readonly Level[]): void;
  applyChange(side: Side, price: string, size: string): void;
  /** setUnits where the book has it (the units were converted before timing), else applyChange. */
  applyUnits(c: Change): void;
  /** Sum of the best 3 levels' prices and sizes on both sides (a sum, so the reads cannot be optimized away). */
  top3(): number;
}

export class FastBook implements BenchBook {
  readonly book: OrderBook;
  constructor(product: string) {
    this.book = new OrderBook(product);
  }
  applySnapshot(bids: readonly Level[], asks: readonly Level[]) {
    this.book.applySnapshot(bids, asks);
  }
  applyChange(side: Side, price: string, size: string) {
    this.book.applyChange(side, price, size);
  }
  applyUnits(c: Change) {
    this.book.setUnits(c.side, c.priceUnits, c.sizeUnits);
  }
  top3(): number {
    const b = this.book;
    let sum = 0;
    for (let i = 0; i < 3; i++) {
      sum += b.priceAt('bid', i) + b.sizeAt('bid', i) + b.priceAt('ask', i) + b.sizeAt('ask', i);
    }
    return sum;
  }
}

/** The obvious book: a Map per side keyed by price units; top-N scans the side for the best three. */
class NaiveBook implements BenchBook {
  private bids = new Map<number, number>();
  private asks = new Map<number, number>();
  applySnapshot(bids: readonly Level[], asks: readonly Level[]) {
    this.bids.clear();
    this.asks.clear();
    for (const [p, s] of bids) this.applyChange('bid', p, s);
    for (const [p, s] of asks) this.applyChange('ask', p, s);
  }
  applyChange(side: Side, price: string, size: string) {
    const m = side === 'bid' ? this.bids : this.asks;
    let p: number;
    let s: number;
    try {
      p = toUnits(price);
      s = toUnits(size);
    } catch {
      return; // beyond 2^53 units: the naive book simply drops such levels
    }
    if (s === 0) m.delete(p);
    else m.set(p, s);
  }
  applyUnits(c: Change) {
    this.applyChange(c.side, c.price, c.size);
  }
  top3(): number {
    return best3(this.bids, 1) + best3(this.asks, -1);
  }
}

function best3(m: Map<number, number>, sign: 1 | -1): number {
  // Keys (sign * price) of the three best levels, best first.
  let k0 = -Infinity;
  let k1 = -Infinity;
  let k2 = -Infinity;
  for (const p of m.keys()) {
    const k = sign * p;
    if (k > k0) [k0, k1, k2] = [k, k0, k1];
    else if (k > k1) [k1, k2] = [k, k1];
    else if (k > k2) k2 = k;
  }
  let sum = 0;
  for (const k of [k0, k1, k2]) if (k !== -Infinity) sum += sign * k + m.get(sign * k)!;
  return sum;
}

interface Change {
  product: number;
  side: Side;
  price: string;
  size: string;
  /** The same values in units, for timing the book without the string conversion. */
  priceUnits: number;
  sizeUnits: number;
}

interface Workload {
  products: string[];
  snapshots: { bids: Level[]; asks: Level[] }[];
  /** Every level change after each product's first snapshot, in stream order. */
  changes: Change[];
}

function workload(events: Iterable<MarketEvent>): Workload {
  const products: string[] = [];
  const snapshots: Workload['snapshots'] = [];
  const changes: Change[] = [];
  for (const e of events) {
    if (e.type === 'book_snapshot' && !products.includes(e.product)) {
      products.push(e.product);
      snapshots.push({ bids: e.bids, asks: e.asks });
    } else if (e.type === 'book_changes') {
      const product = products.indexOf(e.product);
      if (product === -1) continue; // before its snapshot: a book would ignore it
      for (const c of e.changes)
        changes.push({
          product,
          side: c.side,
          price: c.price,
          size: c.size,
          priceUnits: parseUnits(c.price),
          sizeUnits: parseUnits(c.size),
        });
    }
  }
  return { products, snapshots, changes };
}

export async function captureWorkload(): Promise<Workload> {
  const frames = await receivedFrames(CAPTURE);
  return workload(frames.flatMap((f) => mapAdvancedTradeFrame(f.frame, f.recvUs).events));
}

/** The simulator's default products over SYNTHETIC_MINUTES, as the worker would receive them. */
export function syntheticWorkload(): Workload {
  const startUs = seedEpochUs(SYNTHETIC_SEED);
  const session = new Session(DEFAULT_PRODUCTS, SYNTHETIC_SEED, startUs);
  const events: MarketEvent[] = [];
  const feed = (text: string, recvUs: number) => {
    for (const e of mapAdvancedTradeFrame(text, recvUs).events)
      if (e.product !== FEED_PRODUCT) events.push(e);
  };
  const subscribe = JSON.stringify({
    type: 'subscribe',
    channel: 'level2',
    product_ids: DEFAULT_PRODUCTS.map((p) => p.productId),
  });
  for (const f of session.handleMessage(subscribe)) feed(f.text, session.timeUs);
  const endUs = startUs + SYNTHETIC_MINUTES * 60_000_000;
  for (let t = startUs; t < endUs; t += 1_000_000) {
    for (const f of session.advanceTo(Math.min(t + 1_000_000, endUs))) feed(f.text, session.timeUs);
  }
  return workload(events);
}

interface Measured {
  updateNs: Float64Array;
  top3Ns: Float64Array;
  updates: number;
  rounds: number;
  snapshotMs: number;
  levels: number[];
}

/** Replays the workload over fresh books for `rounds` timed rounds (plus one warm-up round). */
export function measure(
  w: Workload,
  make: (product: string) => BenchBook,
  minUpdates: number,
  units = false,
  timer = timerNs(),
): Measured {
  const perRound = Math.ceil(w.changes.length / BATCH);
  const rounds = Math.max(1, Math.ceil(minUpdates / w.changes.length));
  const updateNs = new Float64Array(perRound * rounds);
  const top3Ns = new Float64Array(perRound * rounds);
  let n = 0;
  let sink = 0;
  let snapshotNs = 0n;
  let levels: number[] = [];
  for (let round = -1; round < rounds; round++) {
    const books = w.products.map(make);
    const s0 = process.hrtime.bigint();
    books.forEach((b, i) => {
      b.applySnapshot(w.snapshots[i]!.bids, w.snapshots[i]!.asks);
    });
    snapshotNs += process.hrtime.bigint() - s0;
    for (let start = 0; start < w.changes.length; start += BATCH) {
      const end = Math.min(start + BATCH, w.changes.length);
      const t0 = process.hrtime.bigint();
      for (let j = start; j < end; j++) {
        const c = w.changes[j]!;
        if (units) books[c.product]!.applyUnits(c);
        else books[c.product]!.applyChange(c.side, c.price, c.size);
      }
      const t1 = process.hrtime.bigint();
      const book = books[w.changes[start]!.product]!;
      for (let j = 0; j < BATCH; j++) sink += book.top3();
      const t2 = process.hrtime.bigint();
      if (round >= 0) {
        updateNs[n] = (Number(t1 - t0) - timer) / (end - start);
        top3Ns[n] = (Number(t2 - t1) - timer) / BATCH;
        n++;
      }
    }
    if (round === rounds - 1)
      levels = books.map((b) => (b instanceof FastBook ? b.book.depth('bid') + b.book.depth('ask') : 0));
  }
  if (Number.isNaN(sink)) console.log('(unreachable: keeps the reads alive)');
  return {
    updateNs: updateNs.subarray(0, n),
    top3Ns: top3Ns.subarray(0, n),
    updates: rounds * w.changes.length,
    rounds,
    snapshotMs: Number(snapshotNs) / 1e6 / (rounds + 1),
    levels,
  };
}

/** Cost of one hrtime.bigint() pair, the overhead folded into every batch. */
export function timerNs(): number {
  const samples = new Float64Array(10_000);
  for (let i = 0; i < samples.length; i++) {
    const t0 = process.hrtime.bigint();
    samples[i] = Number(process.hrtime.bigint() - t0);
  }
  return quantile(samples, 0.5);
}

/** Median ns of the string -> units conversion of one change (price and size), timed like the updates. */
export function parseNs(w: Workload, timer = timerNs()): number {
  const samples: number[] = [];
  let sink = 0;
  for (let round = 0; round < 20; round++) {
    for (let start = 0; start < w.changes.length; start += BATCH) {
      const end = Math.min(start + BATCH, w.changes.length);
      const t0 = process.hrtime.bigint();
      for (let j = start; j < end; j++)
        sink += parseUnits(w.changes[j]!.price) + parseUnits(w.changes[j]!.size);
      const dt = (Number(process.hrtime.bigint() - t0) - timer) / (end - start);
      if (round > 0) samples.push(dt);
    }
  }
  if (Number.isNaN(sink)) console.log('(unreachable)');
  return quantile(samples, 0.5);
}

function results(prefix: string, m: Measured, context: Record<string, unknown>): BenchResult[] {
  const ctx = { ...context, updatesTimed: m.updates, rounds: m.rounds, batch: BATCH };
  return [
    { name: `${prefix}update_ns_median`, value: quantile(m.updateNs, 0.5), unit: 'ns', context: ctx },
    { name: `${prefix}update_ns_p99`, value: quantile(m.updateNs, 0.99), unit: 'ns', context: ctx },
  ];
}

export const bookGroup: BenchGroup = {
  name: 'book',
  description:
    'L2 book update (parse included) and top-3 read, real capture and simulator; naive Map book for scale',
  async run() {
    const base = {
      ...machineContext(),
      timerNs: timerNs(),
      method: 'mean ns per update over batches of 32, timer cost subtracted',
    };
    const out: BenchResult[] = [];
    if (CAPTURE.present) {
      const w = await captureWorkload();
      const ctx = { ...base, source: 'advanced-trade-btc-eth-2026-08-09 l2_data', products: w.products };
      const fast = measure(w, (p) => new FastBook(p), 1_000_000);
      const naive = measure(w, () => new NaiveBook(), 200_000);
      const fastCtx = {
        ...ctx,
        snapshotLevels: fast.levels,
        snapshotMs: fast.snapshotMs,
        parseNs: parseNs(w),
      };
      out.push(...results('book.', fast, fastCtx));
      const noParse = measure(w, (p) => new FastBook(p), 500_000, true);
      const unitsCtx = { ...ctx, what: 'OrderBook.setUnits with units converted beforehand (no parsing)' };
      out.push({
        name: 'book.units_update_ns_median',
        value: quantile(noParse.updateNs, 0.5),
        unit: 'ns',
        context: unitsCtx,
      });
      out.push({
        name: 'book.parse_ns_median',
        value: fastCtx.parseNs,
        unit: 'ns',
        context: { ...ctx, what: 'parseUnits of one change (price and size)' },
      });
      out.push({ name: 'book.top3_ns', value: quantile(fast.top3Ns, 0.5), unit: 'ns', context: fastCtx });
      out.push(...results('book.naive.', naive, { ...ctx, snapshotMs: naive.snapshotMs }));
      out.push({ name: 'book.naive.top3_ns', value: quantile(naive.top3Ns, 0.5), unit: 'ns', context: ctx });
    } else {
      console.log(absentNote(CAPTURE, 'the book.* capture keys'));
    }
    const w = syntheticWorkload();
    const ctx = {
      ...base,
      source: `simulator seed ${SYNTHETIC_SEED}, ${SYNTHETIC_MINUTES} min`,
      products: w.products,
    };
    const fast = measure(w, (p) => new FastBook(p), 1_000_000);
    const naive = measure(w, () => new NaiveBook(), 200_000);
    const fastCtx = { ...ctx, levels: fast.levels, changes: w.changes.length };
    out.push(...results('book.synthetic_', fast, fastCtx));
    out.push({
      name: 'book.synthetic_top3_ns',
      value: quantile(fast.top3Ns, 0.5),
      unit: 'ns',
      context: fastCtx,
    });
    out.push(...results('book.naive.synthetic_', naive, ctx));
    return out;
  },
};

// `npx tsx bench/book.ts` runs this group alone without writing results.json.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { formatTable } = await import('./harness.js');
  console.log(formatTable(await bookGroup.run()));
}
