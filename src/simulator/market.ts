/**
 * A seeded order-flow market for one product, in simulated exchange time only.
 *
 * The visible book follows an efficient price (latent.ts) through order flow, never by teleporting:
 * - makers re-quote: when a best quote is off the efficient price (or a side is empty) they post a new best
 *   about halfSpreadTicks from it, and fill the gap behind it with a short ladder of levels;
 * - stale quotes (an ask below the efficient price, a bid above it) fade: makers cancel them, or
 *   arbitrageurs hit them (trades whose side reveals where the price went: order-flow imbalance follows
 *   the mid, with a lag that spills a little into the next second);
 * - liquidity traders send market orders of the capture's sizes, with persistent signs (order splitting);
 * - limit orders and cancels arrive in bursts at the capture's distances from the best, keeping the deep
 *   book in its shape.
 * Events are competing Poisson processes whose rates depend on the state (book vs efficient price,
 * volatility), redrawn after every event and every efficient-price step (valid: exponential waits are
 * memoryless). Event rates rise with volatility (activityVolExponent).
 */
import { Book, type BookLevel, type BookSide } from './book.js';
import { LatentPrice } from './latent.js';
import { type MarketProfile, type ProductProfile, sampleQuantiles } from './profile.js';
import { Rng } from './rng.js';

/** Quantities are integer units of 1e-8 (Coinbase's base increment for BTC and ETH). */
export const UNITS_PER_ONE = 100_000_000;

export interface ProductSpec {
  productId: string;
  profile: ProductProfile;
  market: MarketProfile;
}

export interface SimLevelChange {
  side: BookSide;
  priceTicks: number;
  /** New absolute quantity; 0 removes the level. */
  qtyUnits: number;
}

export interface SimTrade {
  tradeId: number;
  /** The product's sequence number at this trade (Market.sequence): what the Exchange feed's match carries. */
  sequence: number;
  priceTicks: number;
  sizeUnits: number;
  /** The taker's side; the protocol reports the maker's (the opposite). */
  aggressor: 'buy' | 'sell';
  timeUs: number;
}

/** Everything one event did to the market, at one exchange time. */
export interface MarketBatch {
  productId: string;
  timeUs: number;
  changes: SimLevelChange[];
  trades: SimTrade[];
}

const WARMUP_SECONDS = 120;
/** Log-sd of the size of a maker's new best quote around touchDepthUsd. */
const TOUCH_SIGMA = 0.7;
/** Most levels a maker adds behind a new best quote. */
const LADDER_LEVELS = 8;

export class Market {
  readonly productId: string;
  /** Price increment, USD, and in 1e-8 units (how the protocol formats prices). */
  readonly tick: number;
  readonly tickUnits: number;
  private readonly p: ProductProfile;
  private readonly rng: Rng;
  private readonly book = new Book();
  private readonly latent: LatentPrice;
  private nowUs: number;
  private nextEventUs = 0;
  private tradeId: number;
  private lastNoiseSign: 'buy' | 'sell' = 'buy';
  private readonly recent: SimTrade[] = [];
  /** Target spread in ticks and the tolerances around the efficient price (see rates()). */
  private readonly width: number;
  private readonly staleTol: number;
  private readonly farTol: number;
  /** Ticks behind the best that the makers' ladder covers. */
  private readonly ladderSpan: number;
  /** Quantities before the current event, per touched level: to drop changes that cancel out. */
  private beforeBatch = new Map<string, number>();
  private touched = new Map<string, SimLevelChange>();
  // Rates at the last redraw (what the next event is drawn from).
  private rBurst = 0;
  private rTrade = 0;
  private rFade = 0;
  private rRequote = 0;
  /** Traded base volume since the start, units (the ticker adds it to a seed-derived 24 h volume). */
  volumeUnits = 0;
  lastTradeTicks: number;
  /**
   * The product's sequence number, as the Exchange feed numbers a product's messages (match, ticker, heartbeat and
   * the REST book carry it): one per trade, then one per level change of each event. The exchange's own counter, so
   * the same on every connection and in the REST book; it starts at a seed-derived number (a stream of its own, so
   * the market's draws are untouched) and counts the warm-up too.
   */
  sequence: number;

  constructor(spec: ProductSpec, seed: number, startUs: number) {
    this.productId = spec.productId;
    this.p = spec.profile;
    this.tick = spec.profile.tick;
    this.tickUnits = Math.round(spec.profile.tick * UNITS_PER_ONE);
    this.rng = Rng.derive(seed, `market:${spec.productId}`);
    this.tradeId = 100_000_000 + this.rng.int(900_000_000);
    this.sequence = 1_000_000_000 + Rng.derive(seed, `sequence:${spec.productId}`).int(4_000_000_000);
    this.width = Math.max(1, Math.round(2 * this.p.halfSpreadTicks));
    this.staleTol = 0.5 + 0.25 * this.p.halfSpreadTicks;
    this.farTol = 0.5 + 0.5 * this.p.halfSpreadTicks;
    this.ladderSpan = LADDER_LEVELS * this.p.ladderTicks;
    // Warm up before the start so the book, the recent trades and the volatility are in a steady state.
    this.nowUs = startUs - WARMUP_SECONDS * 1_000_000;
    this.latent = new LatentPrice(seed, spec.productId, spec.profile, spec.market, this.nowUs);
    this.lastTradeTicks = Math.round(this.latent.ticks);
    this.seedBook();
    this.scheduleEvent();
    this.advanceTo(startUs, () => {});
  }

  get timeUs(): number {
    return this.nowUs;
  }

  /** The efficient price, ticks (never on the wire; for tests and measurements). */
  get efficientTicks(): number {
    return this.latent.ticks;
  }

  /** Current volatility of the efficient price, bps per sqrt(s). */
  get volBps(): number {
    return this.latent.sigmaBps;
  }

  bestBid(): BookLevel | undefined {
    return this.book.bestBid();
  }

  bestAsk(): BookLevel | undefined {
    return this.book.bestAsk();
  }

  levels(side: BookSide): BookLevel[] {
    return this.book.levels(side);
  }

  quantityAt(side: BookSide, priceTicks: number): number {
    return this.book.get(side, priceTicks);
  }

  /** The last `n` trades, newest first. */
  recentTrades(n = 100): SimTrade[] {
    return this.recent.slice(-n).reverse();
  }

  /** Exchange time of the next event (an order-flow event or an efficient-price step). */
  peekTimeUs(): number {
    return Math.min(this.nextEventUs, this.latent.nextStepUs);
  }

  /** Applies the next event; returns what it did, or null for an efficient-price step (no book change). */
  step(): MarketBatch | null {
    if (this.latent.nextStepUs <= this.nextEventUs) {
      this.nowUs = this.latent.nextStepUs;
      this.latent.step();
      this.scheduleEvent(); // rates changed: redraw (memoryless)
      return null;
    }
    this.nowUs = this.nextEventUs;
    const batch: MarketBatch = { productId: this.productId, timeUs: this.nowUs, changes: [], trades: [] };
    this.touched = new Map();
    this.beforeBatch = new Map();
    // Which process fired: each with probability rate / total.
    const u = this.rng.uniform() * (this.rBurst + this.rTrade + this.rFade + this.rRequote);
    if (u < this.rFade) this.fade(batch.trades);
    else if (u < this.rFade + this.rRequote) this.requote();
    else if (u < this.rFade + this.rRequote + this.rTrade) this.noiseTrade(batch.trades);
    else this.orderBurst();
    // A level created and cancelled within one event never shows on the wire (same for net no-ops).
    for (const [key, c] of this.touched) if (c.qtyUnits !== this.beforeBatch.get(key)) batch.changes.push(c);
    this.sequence += batch.changes.length;
    this.scheduleEvent();
    return batch;
  }

  /** Runs every event up to and including `timeUs`, handing each batch to `onBatch`. */
  advanceTo(timeUs: number, onBatch: (batch: MarketBatch) => void): void {
    while (this.peekTimeUs() <= timeUs) {
      const batch = this.step();
      if (batch) onBatch(batch);
    }
    this.nowUs = Math.max(this.nowUs, timeUs);
  }

  /** L1 queue imbalance in [-1, 1]: positive when the bid queue is larger. */
  imbalance(): number {
    const b = this.book.bestBid()?.qtyUnits ?? 0;
    const a = this.book.bestAsk()?.qtyUnits ?? 0;
    return b + a > 0 ? (b - a) / (b + a) : 0;
  }

  // --- where the book stands against the efficient price ---

  /** Where makers want the best bid now (the ask is `width` ticks above it). */
  private bidTarget(): number {
    return Math.max(1, Math.round(this.latent.ticks - this.width / 2));
  }

  private staleSide(): BookSide | undefined {
    const p = this.latent.ticks;
    const bid = this.book.bestBid()?.priceTicks;
    const ask = this.book.bestAsk()?.priceTicks;
    const askStale = ask !== undefined && ask < p - this.staleTol ? p - ask : 0;
    const bidStale = bid !== undefined && bid > p + this.staleTol ? bid - p : 0;
    if (askStale === 0 && bidStale === 0) return undefined;
    return askStale >= bidStale ? 'ask' : 'bid';
  }

  private isFar(side: BookSide): boolean {
    const p = this.latent.ticks;
    const h = this.width / 2;
    if (side === 'bid') {
      const bid = this.book.bestBid()?.priceTicks;
      return bid === undefined || bid < p - h - this.farTol;
    }
    const ask = this.book.bestAsk()?.priceTicks;
    return ask === undefined || ask > p + h + this.farTol;
  }

  private scheduleEvent(): void {
    const act = this.latent.volRatio ** this.p.activityVolExponent;
    this.rBurst = this.p.updateEventsPerSecond * act;
    this.rTrade = this.p.tradesPerSecond * act;
    this.rFade = this.staleSide() ? this.p.fadePerSecond : 0;
    this.rRequote = this.isFar('bid') || this.isFar('ask') ? this.p.requotePerSecond : 0;
    const total = this.rBurst + this.rTrade + this.rFade + this.rRequote;
    this.nextEventUs = this.nowUs + Math.max(1, Math.round(this.rng.exponential(total) * 1e6));
  }

  // --- helpers ---

  private midTicks(): number {
    const b = this.book.bestBid()?.priceTicks;
    const a = this.book.bestAsk()?.priceTicks;
    if (b !== undefined && a !== undefined) return (a + b) / 2;
    return this.latent.ticks;
  }

  private usdToUnits(usd: number): number {
    return Math.max(1, Math.round((usd / (this.midTicks() * this.tick)) * UNITS_PER_ONE));
  }

  private orderUnits(): number {
    return this.usdToUnits(this.p.orderNotionalUsd * Math.exp(1.5 * this.rng.normal()));
  }

  private distance(): number {
    return Math.round(sampleQuantiles(this.p.distanceTicks, this.rng.uniform()));
  }

  private set(side: BookSide, priceTicks: number, qtyUnits: number): void {
    const key = `${side}:${priceTicks}`;
    if (!this.beforeBatch.has(key)) this.beforeBatch.set(key, this.book.get(side, priceTicks));
    this.book.set(side, priceTicks, qtyUnits);
    this.touched.set(key, { side, priceTicks, qtyUnits: Math.max(qtyUnits, 0) });
  }

  /** Price `d` ticks behind the best of `side` (away from the other side). */
  private behindBest(side: BookSide, d: number): number {
    const best = (side === 'bid' ? this.book.bestBid() : this.book.bestAsk())?.priceTicks;
    const ref = best ?? Math.round(this.midTicks());
    return side === 'bid' ? Math.max(1, ref - d) : ref + d;
  }

  // --- makers and arbitrageurs ---

  /**
   * Stale quotes go, in one exchange batch: maybe an arbitrageur hits the best stale level first (a trade of
   * an ordinary size, toward where the price went), then the makers cancel every stale level and post their
   * quote on that side again at the efficient price (cancel/replace).
   */
  private fade(trades: SimTrade[]): void {
    const side = this.staleSide();
    if (!side) return;
    const p = this.latent.ticks;
    const stale = (price: number) => (side === 'ask' ? price < p - this.staleTol : price > p + this.staleTol);
    const book = this.book.side(side);
    if (this.rng.bernoulli(this.p.pickOffShare)) {
      const best = book.best()!;
      const size = this.usdToUnits(sampleQuantiles(this.p.tradeNotionalUsd, this.rng.uniform()));
      this.fill(side, best, Math.min(size, best.qtyUnits), side === 'ask' ? 'buy' : 'sell', trades);
    }
    for (let best = book.best(); best && stale(best.priceTicks); best = book.best()) {
      this.set(side, best.priceTicks, 0);
    }
    this.post(side);
  }

  /** Makers post a new best near the efficient price on every side that is far from it (or empty). */
  private requote(): void {
    for (const side of ['bid', 'ask'] as const) if (this.isFar(side)) this.post(side);
  }

  /** A maker's quote `width / 2` from the efficient price on `side`, and a short ladder behind it. */
  private post(side: BookSide): void {
    const bidT = this.bidTarget();
    const other = (side === 'bid' ? this.book.bestAsk() : this.book.bestBid())?.priceTicks;
    let price = side === 'bid' ? bidT : bidT + this.width;
    // Never cross (or lock) the other side: it may be stale and about to go.
    if (other !== undefined) price = side === 'bid' ? Math.min(price, other - 1) : Math.max(price, other + 1);
    if (price < 1) return;
    const oldBest = this.book.side(side).best()?.priceTicks;
    // Log-normal: mostly deep quotes, some thin ones that an ordinary market order takes out (the spread opens).
    const size = this.usdToUnits(this.p.touchDepthUsd * Math.exp(TOUCH_SIGMA * this.rng.normal()));
    this.set(side, price, this.book.get(side, price) + size);
    // The ladder fills the gap to the old best, so a moving price leaves no hole right behind the touch.
    const gap = oldBest === undefined ? LADDER_LEVELS * this.p.ladderTicks : Math.abs(price - oldBest);
    let d = 0;
    for (let i = 0; i < LADDER_LEVELS; i++) {
      d += Math.max(1, Math.round(this.rng.exponential(1 / this.p.ladderTicks)));
      if (d >= gap) break;
      const at = side === 'bid' ? price - d : price + d;
      if (at < 1) break;
      this.set(side, at, this.book.get(side, at) + this.orderUnits());
    }
  }

  // --- liquidity traders ---

  /** A market order sweeps the opposite side from its best until filled; one trade per level touched. */
  private noiseTrade(trades: SimTrade[]): void {
    const keep = this.rng.bernoulli(this.p.tradeSignPersistence);
    const aggressor = keep ? this.lastNoiseSign : this.lastNoiseSign === 'buy' ? 'sell' : 'buy';
    this.lastNoiseSign = aggressor;
    const side: BookSide = aggressor === 'buy' ? 'ask' : 'bid';
    let remaining = this.usdToUnits(sampleQuantiles(this.p.tradeNotionalUsd, this.rng.uniform()));
    // A marketable limit order: it stops a ladder's span beyond the best instead of emptying the side.
    const start = this.book.side(side).best()?.priceTicks ?? 0;
    const limit = this.width + this.ladderSpan;
    while (remaining > 0) {
      const best = this.book.side(side).best();
      if (!best || Math.abs(best.priceTicks - start) > limit) break;
      const fill = Math.min(remaining, best.qtyUnits);
      remaining -= fill;
      this.fill(side, best, fill, aggressor, trades);
    }
  }

  private fill(side: BookSide, level: BookLevel, qty: number, aggressor: 'buy' | 'sell', trades: SimTrade[]) {
    this.set(side, level.priceTicks, level.qtyUnits - qty);
    const trade: SimTrade = {
      tradeId: this.tradeId++,
      sequence: ++this.sequence,
      priceTicks: level.priceTicks,
      sizeUnits: qty,
      aggressor,
      timeUs: this.nowUs,
    };
    trades.push(trade);
    this.recent.push(trade);
    if (this.recent.length > 400) this.recent.splice(0, this.recent.length - 100);
    this.volumeUnits += qty;
    this.lastTradeTicks = level.priceTicks;
  }

  /** Limit orders and cancels at the capture's distances from the best, several per exchange batch. */
  private orderBurst(): void {
    const n =
      1 + Math.floor(Math.log(1 - this.rng.uniform()) / Math.log(1 - 1 / Math.max(this.p.meanBurst, 1.0001)));
    for (let i = 0; i < n; i++) this.levelChange();
  }

  private levelChange(): void {
    const side: BookSide = this.rng.bernoulli(0.5) ? 'bid' : 'ask';
    const count = this.book.side(side).size;
    // Creations and removals balance at the target size: removals get likelier as the book grows.
    const removeShare = count / (count + this.p.levelsPerSide);
    if (this.rng.uniform() < this.p.structuralShare) {
      if (this.rng.uniform() < removeShare) this.cancel(side, true);
      else this.newLevel(side);
    } else if (this.rng.bernoulli(0.5)) {
      const level = this.pickLevel(side);
      if (level) this.set(side, level.priceTicks, level.qtyUnits + this.orderUnits());
      else this.newLevel(side);
    } else {
      this.cancel(side, false);
    }
  }

  private newLevel(side: BookSide): void {
    const price = this.behindBest(side, this.distance());
    this.set(side, price, this.book.get(side, price) + this.orderUnits());
  }

  /** An existing level near a sampled distance from the best. */
  private pickLevel(side: BookSide): BookLevel | undefined {
    return this.book.side(side).atOrWorse(this.behindBest(side, this.distance()));
  }

  /** Cancels are proportional to queue size: a random share of what rests there, or all of it. */
  private cancel(side: BookSide, whole: boolean): void {
    const level = this.pickLevel(side);
    if (!level) return;
    // The best level and the ladder right behind it are the makers' (fade and requote move them): noise only
    // resizes them, so random cancels never dig a hole behind the touch.
    const best = this.book.side(side).best()!.priceTicks;
    if (whole && Math.abs(level.priceTicks - best) > this.ladderSpan) {
      this.set(side, level.priceTicks, 0);
      return;
    }
    const keep = 0.15 + 0.7 * this.rng.uniform();
    this.set(side, level.priceTicks, Math.max(1, Math.round(level.qtyUnits * keep)));
  }

  /** An initial book around the efficient price: the makers' quotes and ladders, then the deep book. */
  private seedBook(): void {
    const bidT = this.bidTarget();
    this.post('bid');
    this.post('ask');
    for (const side of ['bid', 'ask'] as const) {
      for (let i = 0; i < this.p.levelsPerSide; i++) {
        const d = 1 + this.distance();
        const price = side === 'bid' ? Math.max(1, bidT - d) : bidT + this.width + d;
        this.book.set(side, price, this.book.get(side, price) + this.orderUnits());
      }
    }
    this.touched = new Map();
    this.beforeBatch = new Map();
  }
}
