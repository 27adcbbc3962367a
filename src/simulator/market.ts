/**
 * A seeded stochastic order-flow market for one product, in simulated exchange time only.
 *
 * Events are competing Poisson processes whose rates depend on the current state (valid because the state
 * only changes at events and exponential waits are memoryless, so the next wait is redrawn after each one):
 * - update events: bursts of limit orders and cancels at power-law-ish distances from the best, the way
 *   one exchange batch carries several level changes at one event_time;
 * - market orders: rate and direction driven by the L1 queue imbalance, so short-horizon quote changes are
 *   partly predictable, as in real books;
 * - regime switches (Markov, exponential dwell times) between "pinned" and "busy" (see regimes.ts).
 */
import { Book, type BookLevel, type BookSide } from './book.js';
import { REGIMES, type RegimeName, type RegimeParams, sampleQuantiles } from './regimes.js';
import { Rng } from './rng.js';

export const TICK = 0.01;
/** Quantities are integer units of 1e-8 (Coinbase's base increment for BTC and ETH). */
export const UNITS_PER_ONE = 100_000_000;

export interface ProductSpec {
  productId: string;
  /** Starting price, USD. */
  price: number;
  /** Target number of levels per side (the book's size stays around it). */
  levelsPerSide?: number;
  /** Regime at the start; by default drawn from the seed. */
  initialRegime?: RegimeName;
}

export interface SimLevelChange {
  side: BookSide;
  priceTicks: number;
  /** New absolute quantity; 0 removes the level. */
  qtyUnits: number;
}

export interface SimTrade {
  tradeId: number;
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

export interface RegimeSpan {
  regime: RegimeName;
  fromUs: number;
}

const WARMUP_SECONDS = 120;

export class Market {
  readonly productId: string;
  private readonly rng: Rng;
  private readonly book = new Book();
  private readonly levelsPerSide: number;
  private params: RegimeParams;
  private nowUs: number;
  private nextEventUs = 0;
  private nextSwitchUs = 0;
  private tradeId: number;
  private readonly recent: SimTrade[] = [];
  private readonly regimeSpans: RegimeSpan[] = [];
  /** Quantities before the current event, per touched level: to drop changes that cancel out. */
  private beforeBatch = new Map<string, number>();
  /** Traded base volume since the start, units (the ticker adds it to a seed-derived 24 h volume). */
  volumeUnits = 0;
  lastTradeTicks: number;

  constructor(spec: ProductSpec, seed: number, startUs: number) {
    this.productId = spec.productId;
    this.rng = Rng.derive(seed, `market:${spec.productId}`);
    this.levelsPerSide = spec.levelsPerSide ?? 1500;
    const regime = spec.initialRegime ?? (this.rng.bernoulli(0.5) ? 'pinned' : 'busy');
    this.params = REGIMES[regime];
    this.tradeId = 100_000_000 + this.rng.int(900_000_000);
    this.lastTradeTicks = Math.round(spec.price / TICK);
    this.seedBook(this.lastTradeTicks);
    // Warm up before the start so the book, the recent trades and the spread are in a steady state. No
    // regime switch during the warm-up: the start regime is the one in force at `startUs`.
    this.nowUs = startUs - WARMUP_SECONDS * 1_000_000;
    this.regimeSpans.push({ regime, fromUs: this.nowUs });
    this.nextSwitchUs = Number.POSITIVE_INFINITY;
    this.scheduleEvent();
    this.advanceTo(startUs, () => {});
    this.scheduleSwitch();
  }

  get timeUs(): number {
    return this.nowUs;
  }

  get regime(): RegimeName {
    return this.params.name;
  }

  /** The regime in force at exchange time `timeUs` (for tests: label windows by regime). */
  regimeAt(timeUs: number): RegimeName {
    let found = this.regimeSpans[0]!.regime;
    for (const span of this.regimeSpans) {
      if (span.fromUs > timeUs) break;
      found = span.regime;
    }
    return found;
  }

  regimeHistory(): readonly RegimeSpan[] {
    return this.regimeSpans;
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

  /** Exchange time of the next event (an order-flow event or a regime switch). */
  peekTimeUs(): number {
    return Math.min(this.nextEventUs, this.nextSwitchUs);
  }

  /** Applies the next event; returns what it did, or null for a regime switch (no book change). */
  step(): MarketBatch | null {
    if (this.nextSwitchUs <= this.nextEventUs) {
      this.nowUs = this.nextSwitchUs;
      this.params = REGIMES[this.params.name === 'pinned' ? 'busy' : 'pinned'];
      this.regimeSpans.push({ regime: this.params.name, fromUs: this.nowUs });
      this.scheduleSwitch();
      this.scheduleEvent(); // rates changed: redraw (memoryless)
      return null;
    }
    this.nowUs = this.nextEventUs;
    const { burst, trade } = this.rates();
    const batch: MarketBatch = { productId: this.productId, timeUs: this.nowUs, changes: [], trades: [] };
    const touched = new Map<string, SimLevelChange>();
    const before = new Map<string, number>();
    this.beforeBatch = before;
    if (this.rng.uniform() * (burst + trade) < burst) this.orderBurst(touched);
    else this.marketOrder(touched, batch.trades);
    // A level created and cancelled within one event never shows on the wire (same for net no-ops).
    batch.changes = [...touched.values()].filter(
      (c) => c.qtyUnits !== before.get(`${c.side}:${c.priceTicks}`),
    );
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

  private rates(): { burst: number; trade: number } {
    const p = this.params;
    const imbalance = Math.abs(this.imbalance());
    // Normalized so the average over a uniform |I| stays near the calibrated rate.
    const trade =
      (p.marketOrderRate * (1 + p.imbalanceSensitivity * imbalance)) / (1 + p.imbalanceSensitivity / 2);
    return { burst: p.burstRate, trade };
  }

  /** L1 queue imbalance in [-1, 1]: positive when the bid queue is larger. */
  imbalance(): number {
    const b = this.book.bestBid()?.qtyUnits ?? 0;
    const a = this.book.bestAsk()?.qtyUnits ?? 0;
    return b + a > 0 ? (b - a) / (b + a) : 0;
  }

  private scheduleEvent(): void {
    const { burst, trade } = this.rates();
    this.nextEventUs = this.nowUs + Math.max(1, Math.round(this.rng.exponential(burst + trade) * 1e6));
  }

  private scheduleSwitch(): void {
    this.nextSwitchUs = this.nowUs + Math.round(this.rng.exponential(1 / this.params.meanDwellSeconds) * 1e6);
  }

  private midTicks(): number {
    const b = this.book.bestBid()?.priceTicks;
    const a = this.book.bestAsk()?.priceTicks;
    if (b !== undefined && a !== undefined) return (a + b) / 2;
    return b ?? a ?? this.lastTradeTicks;
  }

  private usdToUnits(usd: number): number {
    const price = this.midTicks() * TICK;
    return Math.max(1, Math.round((usd / price) * UNITS_PER_ONE));
  }

  private orderUnits(): number {
    return this.usdToUnits(this.params.orderNotionalUsd * Math.exp(1.5 * this.rng.normal()));
  }

  private distance(): number {
    return Math.round(sampleQuantiles(this.params.distanceTicks, this.rng.uniform()));
  }

  private set(
    touched: Map<string, SimLevelChange>,
    side: BookSide,
    priceTicks: number,
    qtyUnits: number,
  ): void {
    const key = `${side}:${priceTicks}`;
    if (!this.beforeBatch.has(key)) this.beforeBatch.set(key, this.book.get(side, priceTicks));
    this.book.set(side, priceTicks, qtyUnits);
    touched.set(key, { side, priceTicks, qtyUnits: Math.max(qtyUnits, 0) });
  }

  /** Price `d` ticks behind the best of `side` (away from the other side). */
  private behindBest(side: BookSide, d: number): number {
    const best = (side === 'bid' ? this.book.bestBid() : this.book.bestAsk())?.priceTicks;
    const ref = best ?? Math.round(this.midTicks());
    return side === 'bid' ? Math.max(1, ref - d) : ref + d;
  }

  private orderBurst(touched: Map<string, SimLevelChange>): void {
    const p = this.params;
    // Geometric burst size with the calibrated mean, at least one change.
    const n = 1 + Math.floor(Math.log(1 - this.rng.uniform()) / Math.log(1 - 1 / p.meanBurst));
    for (let i = 0; i < n; i++) this.levelChange(touched);
    if (p.defendTouch && this.rng.bernoulli(p.touchRefill)) this.refillTouch(touched);
    if (this.rng.bernoulli(p.touchCancel)) {
      const side: BookSide = this.rng.bernoulli(0.5) ? 'bid' : 'ask';
      const best = this.book.side(side).best();
      if (best && this.book.side(side).size > 1 && this.rng.bernoulli(this.thinness(side, best.qtyUnits))) {
        this.set(touched, side, best.priceTicks, 0);
      }
    }
  }

  /**
   * How likely a best level is to be pulled whole, in [0, 1]: small queues (in USD) and queues smaller than
   * the other side's are fleeting, deep ones stay. This is what makes cancel-driven quote changes readable
   * from the L1 queue sizes and imbalance instead of pure noise.
   */
  private thinness(side: BookSide, qtyUnits: number): number {
    const p = this.params;
    if (p.thinTouchUsd <= 0) return 1;
    const usd = (qtyUnits / UNITS_PER_ONE) * this.midTicks() * TICK;
    const other = (side === 'bid' ? this.book.bestAsk() : this.book.bestBid())?.qtyUnits ?? qtyUnits;
    const share = qtyUnits + other > 0 ? qtyUnits / (qtyUnits + other) : 0.5;
    return Math.min(1, Math.exp(-usd / p.thinTouchUsd) * 2 * (1 - share));
  }

  private levelChange(touched: Map<string, SimLevelChange>): void {
    const p = this.params;
    const side: BookSide = this.rng.bernoulli(0.5) ? 'bid' : 'ask';
    const count = this.book.side(side).size;
    // Creations and removals balance at the target size: removals get likelier as the book grows.
    const removeShare = count / (count + this.levelsPerSide);
    const u = this.rng.uniform();
    if (u < p.structuralShare) {
      if (this.rng.uniform() < removeShare) this.cancel(touched, side, true);
      else this.newLevel(touched, side);
    } else if (this.rng.bernoulli(0.5)) {
      this.topUp(touched, side);
    } else {
      this.cancel(touched, side, false);
    }
  }

  private newLevel(touched: Map<string, SimLevelChange>, side: BookSide): void {
    const bid = this.book.bestBid()?.priceTicks;
    const ask = this.book.bestAsk()?.priceTicks;
    let price: number;
    // Wider spreads attract more quote-improving orders: this keeps the spread stable.
    const spread = bid !== undefined && ask !== undefined ? ask - bid : 0;
    if (spread > 1 && this.rng.bernoulli(Math.min(0.9, this.params.insideSpread * (spread - 1)))) {
      // Improve the quote: anywhere strictly inside the spread.
      const inside = 1 + this.rng.int(spread - 1);
      price = side === 'bid' ? bid! + inside : ask! - inside;
    } else {
      price = this.behindBest(side, this.distance());
    }
    this.set(touched, side, price, this.book.get(side, price) + this.orderUnits());
  }

  /** An existing level near a sampled distance from the best. */
  private pickLevel(side: BookSide): BookLevel | undefined {
    return this.book.side(side).atOrWorse(this.behindBest(side, this.distance()));
  }

  private topUp(touched: Map<string, SimLevelChange>, side: BookSide): void {
    const level = this.pickLevel(side);
    if (!level) {
      this.newLevel(touched, side);
      return;
    }
    this.set(touched, side, level.priceTicks, level.qtyUnits + this.orderUnits());
  }

  /** Cancels are proportional to queue size: a random share of what rests there, or all of it. */
  private cancel(touched: Map<string, SimLevelChange>, side: BookSide, whole: boolean): void {
    const level = this.pickLevel(side);
    if (!level) return;
    const best = this.book.side(side).best()!;
    const defended = this.params.defendTouch && level.priceTicks === best.priceTicks;
    // A whole cancel at the touch follows the same queue-size rule as touch cancels (else it is partial).
    const atTouch = level.priceTicks === best.priceTicks;
    if (whole && !defended && (!atTouch || this.rng.bernoulli(this.thinness(side, level.qtyUnits)))) {
      this.set(touched, side, level.priceTicks, 0);
      return;
    }
    const keep = defended ? 0.6 + 0.4 * this.rng.uniform() : 0.15 + 0.7 * this.rng.uniform();
    this.set(touched, side, level.priceTicks, Math.max(1, Math.round(level.qtyUnits * keep)));
  }

  private refillTouch(touched: Map<string, SimLevelChange>): void {
    const side: BookSide = this.rng.bernoulli(0.5) ? 'bid' : 'ask';
    const best = this.book.side(side).best();
    if (!best) return;
    const target = this.usdToUnits(this.params.touchDepthUsd * (0.5 + this.rng.uniform()));
    if (best.qtyUnits < target) this.set(touched, side, best.priceTicks, target);
  }

  /** A market order sweeps the opposite side from its best until filled; one trade per level touched. */
  private marketOrder(touched: Map<string, SimLevelChange>, trades: SimTrade[]): void {
    const p = this.params;
    // Clamped: above a sensitivity of 1, a strong enough imbalance fixes the direction.
    const pBuy = Math.min(1, Math.max(0, (1 + p.imbalanceSensitivity * this.imbalance()) / 2));
    const aggressor = this.rng.uniform() < pBuy ? 'buy' : 'sell';
    const side: BookSide = aggressor === 'buy' ? 'ask' : 'bid';
    let remaining = this.usdToUnits(sampleQuantiles(p.tradeNotionalUsd, this.rng.uniform()));
    while (remaining > 0) {
      const best = this.book.side(side).best();
      if (!best) break;
      const fill = Math.min(remaining, best.qtyUnits);
      remaining -= fill;
      this.set(touched, side, best.priceTicks, best.qtyUnits - fill);
      const trade: SimTrade = {
        tradeId: this.tradeId++,
        priceTicks: best.priceTicks,
        sizeUnits: fill,
        aggressor,
        timeUs: this.nowUs,
      };
      trades.push(trade);
      this.recent.push(trade);
      this.volumeUnits += fill;
      this.lastTradeTicks = best.priceTicks;
    }
    if (this.recent.length > 400) this.recent.splice(0, this.recent.length - 100);
  }

  /** An initial book: levels at calibrated distances around the start price, one tick wide. */
  private seedBook(priceTicks: number): void {
    for (const side of ['bid', 'ask'] as const) {
      this.book.set(side, side === 'bid' ? priceTicks : priceTicks + 1, this.orderUnitsAt(priceTicks) * 20);
      for (let i = 0; i < this.levelsPerSide; i++) {
        const d = 1 + this.distance();
        const price = side === 'bid' ? Math.max(1, priceTicks - d) : priceTicks + 1 + d;
        this.book.set(side, price, this.book.get(side, price) + this.orderUnitsAt(priceTicks));
      }
    }
  }

  private orderUnitsAt(priceTicks: number): number {
    const usd = this.params.orderNotionalUsd * Math.exp(1.5 * this.rng.normal());
    return Math.max(1, Math.round((usd / (priceTicks * TICK)) * UNITS_PER_ONE));
  }
}
