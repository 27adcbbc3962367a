/**
 * Simulator profiles: every parameter of the simulated market, per product, in one versioned JSON file
 * validated here (zod). `SIM_PROFILE=path` loads one; without it the shipped defaults (profiles/default.json:
 * BTC-USD, ETH-USD, SOL-USD) apply, and any other product gets genericProfile(price), which scales the
 * price-dependent parameters (tick, spread, distances, ladder) by the price. `quotewatch calibrate` writes
 * this format.
 *
 * The model behind the parameters (market.ts, latent.ts): an efficient price per product moves in discrete
 * jumps whose rate and size follow a stochastic volatility (a few log-normal components with half-lives from
 * seconds to hours, partly common to all products, times a time-of-day profile), and a common factor that
 * moves every product at once; the visible book follows it through order flow.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as z from 'zod';
import { QuoteWatchError } from '../errors.js';

export const PROFILE_VERSION = 1;

/** (cumulative probability, value) points of a quantile function, from p = 0 to p = 1, values rising. */
const quantilePoints = z
  .array(z.tuple([z.number().min(0).max(1), z.number().min(0)]))
  .min(2, 'needs at least two points')
  .refine((pts) => pts[0]![0] === 0 && pts.at(-1)![0] === 1, 'must start at p = 0 and end at p = 1')
  .refine(
    (pts) => pts.every((p, i) => i === 0 || (p[0] > pts[i - 1]![0] && p[1] >= pts[i - 1]![1])),
    'probabilities must rise and values must not fall',
  );

export type QuantilePoints = ReadonlyArray<readonly [p: number, value: number]>;

const positive = (max: number) => z.number().gt(0, 'must be > 0').max(max, `must be <= ${max}`);
const share = z.number().min(0, 'must be >= 0').max(1, 'must be <= 1');

export const productProfileSchema = z.strictObject({
  /** Start price, USD. */
  price: positive(1e7),
  /** Price increment, USD (a power of ten: 0.01 for BTC-USD). */
  tick: z
    .number()
    .min(1e-8, 'must be >= 1e-8')
    .max(1, 'must be <= 1')
    .refine((t) => Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9, 'must be a power of ten'),
  // --- price dynamics ---
  /** Mean sd of 1 s log returns of the efficient price, bps (the day's pooled level; the volatility varies around it). */
  volBps: positive(100),
  /** Mean rate of the product's own efficient-price moves per second (common moves come on top). */
  movesPerSecond: positive(50),
  /** Loading on the common factor: the correlation of two products' returns is about the product of theirs. */
  factorLoading: share,
  /** Log-sd of the sizes of the product's moves (its share of common moves too): larger, heavier tails. */
  moveSizeTail: z.number().min(0, 'must be >= 0').max(2, 'must be <= 2'),
  // --- quoting around the efficient price ---
  /**
   * Makers quote about this far from the efficient price, ticks: a new quote goes 2 x this (at least 1 tick) from
   * the other side's target; small moves leave narrower spreads behind, so the median spread ends up below.
   */
  halfSpreadTicks: z.number().min(0.5, 'must be >= 0.5').max(100_000, 'must be <= 100000'),
  /** Rate per second at which makers move a best quote that is off the efficient price back to it. */
  requotePerSecond: positive(1000),
  /** Rate per second at which stale quotes (the wrong side of the efficient price) are cancelled or hit. */
  fadePerSecond: positive(1000),
  /** Share of stale-quote removals that are trades (arbitrageurs hitting them) rather than cancels. */
  pickOffShare: share,
  /** Median USD size of a maker's new best quote (log-normal, sigma 0.7). */
  touchDepthUsd: positive(1e8),
  /** Mean gap, ticks, between the levels makers add behind a new best quote after the price moved. */
  ladderTicks: z.number().min(1, 'must be >= 1').max(1e6, 'must be <= 1000000'),
  // --- order flow (the 25 s capture's microstructure) ---
  /** Limit-order/cancel update events per second at average activity. */
  updateEventsPerSecond: positive(10_000),
  /** Mean level changes per update event. */
  meanBurst: z.number().min(1, 'must be >= 1').max(1000, 'must be <= 1000'),
  /** Share of level changes that create or remove a whole level (the rest resize one). */
  structuralShare: share,
  /** Distance from the same side's best of limit orders and cancels, ticks. */
  distanceTicks: quantilePoints,
  /** Median limit order notional, USD (log-normal, sigma 1.5). */
  orderNotionalUsd: positive(1e8),
  /** Liquidity traders' market orders per second at average activity. */
  tradesPerSecond: positive(10_000),
  /** Market order notional, USD. */
  tradeNotionalUsd: quantilePoints,
  /** Chance that a market order has the same side as the previous one (order splitting): 0.5 = independent. */
  tradeSignPersistence: share,
  /** Event rates scale with (volatility / its mean) to this power. */
  activityVolExponent: z.number().min(0, 'must be >= 0').max(3, 'must be <= 3'),
  /** Levels per side the book holds (creations and removals balance there). */
  levelsPerSide: z
    .number()
    .int('must be a whole number')
    .min(10, 'must be >= 10')
    .max(100_000, 'must be <= 100000'),
});

export type ProductProfile = z.infer<typeof productProfileSchema>;

export const marketProfileSchema = z.strictObject({
  /**
   * Log-volatility components (Ornstein-Uhlenbeck, stationary sd `sd`), each `commonShare` common to all
   * products (correlation of the products' components).
   */
  volComponents: z
    .array(
      z.strictObject({
        halfLifeS: z
          .number()
          .min(1, 'must be >= 1')
          .max(30 * 86_400, 'must be <= 2592000'),
        sd: z.number().min(0, 'must be >= 0').max(3, 'must be <= 3'),
        commonShare: share,
      }),
    )
    .max(8, 'at most 8 components'),
  /** Time-of-day profile of log-volatility: amplitude * cos(2π (hour - peakUtcHour) / 24). */
  diurnalAmplitude: z.number().min(0, 'must be >= 0').max(2, 'must be <= 2'),
  diurnalPeakUtcHour: z.number().min(0, 'must be >= 0').lt(24, 'must be < 24'),
  /** Rate per second of common moves (news that moves every product at once). */
  commonMovesPerSecond: positive(50),
  /** Move rates scale with (volatility / its mean) to this power (the rest of the variance is in the move size). */
  moveRateVolExponent: z.number().min(0, 'must be >= 0').max(2, 'must be <= 2'),
});

export type MarketProfile = z.infer<typeof marketProfileSchema>;

export const profileSchema = z.strictObject({
  version: z.literal(PROFILE_VERSION, { message: `must be ${PROFILE_VERSION}` }),
  description: z.string().optional(),
  market: marketProfileSchema,
  products: z.record(z.string(), productProfileSchema).superRefine((products, ctx) => {
    for (const id of Object.keys(products))
      if (!/^[A-Z0-9]{2,10}-[A-Z0-9]{2,10}$/.test(id))
        ctx.addIssue({ code: 'custom', path: [id], message: 'expected products like BTC-USD' });
  }),
});

export type Profile = z.infer<typeof profileSchema>;

export class ProfileError extends QuoteWatchError {}

/** Validates a parsed profile; a ProfileError names every bad field (`products.BTC-USD.volBps: must be > 0`). */
export function parseProfile(raw: unknown, source = 'profile'): Profile {
  const parsed = profileSchema.safeParse(raw);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ProfileError(`${source}: invalid simulator profile: ${fields.join('; ')}`, {
      cause: parsed.error,
    });
  }
  return parsed.data;
}

/** Reads and validates a profile file. */
export function loadProfile(path: string): Profile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ProfileError(`${path}: cannot read the simulator profile (${(cause as Error).message})`, {
      cause,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new ProfileError(`${path}: the simulator profile is not JSON (${(cause as Error).message})`, {
      cause,
    });
  }
  return parseProfile(raw, path);
}

export const DEFAULT_PROFILE_PATH = new URL('./profiles/default.json', import.meta.url);

let defaults: Profile | undefined;

/** The shipped default profile (BTC-USD, ETH-USD, SOL-USD). */
export function defaultProfile(): Profile {
  defaults ??= loadProfile(fileURLToPath(DEFAULT_PROFILE_PATH));
  return defaults;
}

/** Price of a product without a profile. */
export const GENERIC_PRICE = 100;

/**
 * A product without a profile: SOL-USD-like dynamics (1 bps per second), with everything that depends on the
 * price scaled by it: the tick (a power of ten near 0.5 bps of the price, at most 0.01), the spread (about
 * 1.5 bps), the ladder (0.5 bps), limit-order distances (the ETH-USD capture's, in bps) and order sizes.
 */
export function genericProfile(price = GENERIC_PRICE): ProductProfile {
  // Number('1e-5'), not 10 ** -5 (0.000009999999999999999): the tick must be the exact decimal.
  const tick = Math.min(0.01, Number(`1e${Math.round(Math.log10(price * 0.5e-4))}`));
  const bpsToTicks = (bps: number) => (bps * 1e-4 * price) / tick;
  const eth = defaultProfile().products['ETH-USD']!;
  const ethBpsPerTick = 1e4 * (eth.tick / eth.price);
  return {
    ...defaultProfile().products['SOL-USD']!,
    price,
    tick,
    halfSpreadTicks: Math.max(0.5, bpsToTicks(0.75)),
    ladderTicks: Math.max(1, bpsToTicks(0.5)),
    distanceTicks: eth.distanceTicks.map(
      ([p, d]) => [p, Math.round(bpsToTicks(d * ethBpsPerTick))] as [number, number],
    ),
  };
}

/** The profile of `productId`: the given profile's entry, else the default one's, else the generic one. */
export function productProfile(productId: string, profile?: Profile): ProductProfile {
  return profile?.products[productId] ?? defaultProfile().products[productId] ?? genericProfile();
}

/** Inverse-CDF sampling of `points`, interpolating log(1 + value) so each segment is a power law. */
export function sampleQuantiles(points: QuantilePoints, u: number): number {
  for (let i = 1; i < points.length; i++) {
    const [p1, v1] = points[i]!;
    if (u <= p1 || i === points.length - 1) {
      const [p0, v0] = points[i - 1]!;
      const f = p1 > p0 ? Math.min(Math.max((u - p0) / (p1 - p0), 0), 1) : 1;
      const l0 = Math.log1p(v0);
      const l1 = Math.log1p(v1);
      return Math.expm1(l0 + f * (l1 - l0));
    }
  }
  return points[points.length - 1]![1];
}
