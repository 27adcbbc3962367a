/**
 * Several products, each its own Market with its own seed-derived stream, merged into one time-ordered
 * event sequence (ties go to the product listed first, so the order is deterministic).
 */
import { Market, type MarketBatch, type ProductSpec } from './market.js';
import { defaultProfile, type ProductProfile, type Profile, productProfile } from './profile.js';
import { hashString } from './rng.js';

/**
 * Specs for product ids from config (SYMBOLS): each product's entry in `profile` (SIM_PROFILE), else in the
 * shipped default profile, else the generic profile; the market-wide part from `profile` or the default.
 * `overrides` apply to every product (tests use small books: `{ levelsPerSide: 50 }`).
 */
export function productSpecs(
  productIds: readonly string[],
  profile?: Profile,
  overrides: Partial<ProductProfile> = {},
): ProductSpec[] {
  const market = (profile ?? defaultProfile()).market;
  return productIds.map((productId) => ({
    productId,
    profile: { ...productProfile(productId, profile), ...overrides },
    market,
  }));
}

/** Default products. */
export const DEFAULT_PRODUCTS: ProductSpec[] = productSpecs(['BTC-USD', 'ETH-USD']);

/** The simulated exchange's start time when no anchor is given: a seed-derived instant in 2026, whole ms. */
export function seedEpochUs(seed: number): number {
  const offsetMs = (hashString(`epoch:${seed}`) % (180 * 86_400)) * 1000;
  return (Date.UTC(2026, 0, 1) + offsetMs) * 1000;
}

export class SimExchange {
  readonly markets: Market[];
  private readonly byId = new Map<string, Market>();

  constructor(products: readonly ProductSpec[], seed: number, startUs: number) {
    this.markets = products.map((p) => new Market(p, seed, startUs));
    for (const m of this.markets) this.byId.set(m.productId, m);
  }

  market(productId: string): Market | undefined {
    return this.byId.get(productId);
  }

  get productIds(): string[] {
    return this.markets.map((m) => m.productId);
  }

  /** Time of the earliest pending event across products. */
  peekTimeUs(): number {
    let t = Number.POSITIVE_INFINITY;
    for (const m of this.markets) t = Math.min(t, m.peekTimeUs());
    return t;
  }

  /** Applies the single earliest event; null when it was an efficient-price step. */
  step(): MarketBatch | null {
    let next = this.markets[0]!;
    for (const m of this.markets) if (m.peekTimeUs() < next.peekTimeUs()) next = m;
    return next.step();
  }

  advanceTo(timeUs: number, onBatch: (batch: MarketBatch) => void): void {
    while (this.peekTimeUs() <= timeUs) {
      const batch = this.step();
      if (batch) onBatch(batch);
    }
    for (const m of this.markets) m.advanceTo(timeUs, onBatch);
  }
}
