/**
 * Per-regime order-flow parameters, calibrated to the "Measured from the Advanced Trade capture" table in
 * ../shared/data/coinbase/README.md: "pinned" is the BTC-USD column (deep one-tick book, quote never moves),
 * "busy" the ETH-USD column (wide spread, quote changes most of the time). That capture is 25 seconds of one
 * quiet evening, so these are orders of magnitude; the calibration test checks the simulator lands near them.
 */

export type RegimeName = 'pinned' | 'busy';

/** Points (cumulative probability, value) of a quantile function; sampled log-linearly between points. */
export type QuantilePoints = ReadonlyArray<readonly [p: number, value: number]>;

export interface RegimeParams {
  name: RegimeName;
  /** l2_data update events (bursts of level changes at one exchange time) per second. */
  burstRate: number;
  /** Mean level changes per update event (capture: 78.5/16.2 for BTC, 120.1/15.3 for ETH). */
  meanBurst: number;
  /**
   * Share of level changes that create or remove a whole level (the rest modify an existing one). Half of
   * it removes at the target book size, so removals are about half of this (capture: 0.27 / 0.23).
   */
  structuralShare: number;
  /** Distance from the same side's best, in ticks, of limit orders and cancels: the capture's quantiles. */
  distanceTicks: QuantilePoints;
  /** Chance, per tick of spread beyond one, that a new level goes inside the spread (capped at 0.9). */
  insideSpread: number;
  /** Market makers defend the touch: the best level is never cancelled away and is topped up when thin. */
  defendTouch: boolean;
  /**
   * Chance per update event that one change tries to cancel a whole best level (fleeting liquidity at the
   * touch); it succeeds with a chance that falls with the queue's USD size (see thinTouchUsd) and with its
   * share of the L1 queues, so thin touches flicker and deep ones stay.
   */
  touchCancel: number;
  /** Queue size, USD, over which a touch cancel gets e times less likely (0: size does not matter). */
  thinTouchUsd: number;
  /** Chance per update event that one change is a top-up of a best level (only with defendTouch). */
  touchRefill: number;
  /** Depth, USD, the touch is refilled to when defended. */
  touchDepthUsd: number;
  /** Market orders per second at a balanced L1 (capture: 1.9 BTC, 1.3 ETH trades/s). */
  marketOrderRate: number;
  /**
   * How strongly the L1 queue imbalance I = (bidQty - askQty) / (bidQty + askQty) steers market orders:
   * P(buy) = (1 + k * I) / 2, clamped to [0, 1], and the rate grows with |I|: the buyers hit the thin ask
   * (and sellers the thin bid), so an unbalanced L1 foretells a quote change.
   */
  imbalanceSensitivity: number;
  /** Market order notional, USD (capture trade sizes times the capture's price). */
  tradeNotionalUsd: QuantilePoints;
  /** Median limit order notional, USD (log-normal, sigma 1.5). */
  orderNotionalUsd: number;
  /** Mean time spent in this regime before switching, seconds (Markov: exponential dwell times). */
  meanDwellSeconds: number;
}

export const REGIMES: Readonly<Record<RegimeName, RegimeParams>> = {
  pinned: {
    name: 'pinned',
    burstRate: 16.2,
    meanBurst: 4.85,
    structuralShare: 0.54,
    // capture BTC-USD: quartiles 3,791 / 11,201 / 76,212, 90% 283,570, 99% 813,545 ticks
    distanceTicks: [
      [0, 0],
      [0.25, 3791],
      [0.5, 11201],
      [0.75, 76212],
      [0.9, 283570],
      [0.99, 813545],
      [1, 1_500_000],
    ],
    insideSpread: 0.9,
    defendTouch: true,
    touchCancel: 0,
    thinTouchUsd: 0,
    touchRefill: 0.15,
    touchDepthUsd: 13_000, // ~0.2 BTC at the best in the capture
    marketOrderRate: 1.9,
    imbalanceSensitivity: 0.6,
    // capture BTC-USD trade sizes 0.00038 / 0.0074 / 0.044 BTC at 65,083 USD
    tradeNotionalUsd: [
      [0, 1],
      [0.5, 24.7],
      [0.9, 481.6],
      [0.99, 2863.7],
      [1, 12_000],
    ],
    orderNotionalUsd: 400,
    meanDwellSeconds: 150,
  },
  busy: {
    name: 'busy',
    burstRate: 15.3,
    meanBurst: 7.85,
    structuralShare: 0.46,
    // capture ETH-USD: quartiles 61 / 159 / 313, 90% 2,880, 99% 23,991 ticks
    distanceTicks: [
      [0, 0],
      [0.25, 61],
      [0.5, 159],
      [0.75, 313],
      [0.9, 2880],
      [0.99, 23991],
      [1, 60_000],
    ],
    // Tuned together so the quote changes within 500 ms ~78% of the time (capture: 0.782) AND is partly
    // predictable inside this regime: fewer quote improvements and only thin touches pulled (no longer a
    // flicker that moves the quote ~90% of the time whatever the book looks like), and market orders
    // that follow the imbalance into the thin side. The spread these balance at stays near the capture's.
    insideSpread: 0.01,
    defendTouch: false,
    touchCancel: 0.3,
    thinTouchUsd: 1000,
    touchRefill: 0,
    touchDepthUsd: 0,
    marketOrderRate: 0.9,
    imbalanceSensitivity: 2,
    // capture ETH-USD trade sizes 0.051 / 1.19 / 2.88 ETH at 1,919 USD
    tradeNotionalUsd: [
      [0, 1],
      [0.5, 97.9],
      [0.9, 2283.6],
      [0.99, 5526.7],
      [1, 20_000],
    ],
    orderNotionalUsd: 300,
    meanDwellSeconds: 120,
  },
};

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
