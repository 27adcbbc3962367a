/**
 * The efficient price of one product: the price the market's makers quote around (market.ts makes the
 * visible book follow it through order flow; it never appears on the wire).
 *
 * It moves in discrete jumps ("moves": news, large orders elsewhere), which is what keeps a real BTC-USD mid
 * unchanged for half of the seconds of an ordinary hour and yet gives it hundreds of ticks of volatility:
 * - the volatility sigma(t) (bps per sqrt(s)) is log-normal stochastic volatility: log sigma = log volBps +
 *   a time-of-day profile + a sum of Ornstein-Uhlenbeck components with half-lives from seconds to hours;
 *   each component is partly common to all products (its commonShare), so calm and busy hours are shared;
 * - moves arrive as Poisson processes: common moves (every product at once, with its factorLoading) at a
 *   market-wide rate, and the product's own moves. Rates scale with volatility^moveRateVolExponent and
 *   sizes carry the rest of the variance, so the variance per second is sigma(t)^2 on average whatever the
 *   exponent; sizes are log-normal (the product's moveSizeTail) for heavy tails.
 * Every Market computes the common part itself from the same seed-derived stream, so products agree on it
 * without sharing state, and one product simulated alone sees the same common moves as in company.
 */
import type { MarketProfile, ProductProfile } from './profile.js';
import { Rng } from './rng.js';

/** The efficient price steps on this grid of exchange time (moves land on it). */
export const LATENT_STEP_US = 100_000;
const STEP_S = LATENT_STEP_US / 1e6;

/** log I0(x), the modified Bessel function: the mean of exp(x cos θ) over a day is I0(x). */
function logBesselI0(x: number): number {
  let sum = 1;
  let term = 1;
  for (let k = 1; k < 50; k++) {
    term *= (x / 2 / k) ** 2;
    sum += term;
    if (term < 1e-16 * sum) break;
  }
  return Math.log(sum);
}

/** The part of the state every product shares: common volatility components and common moves. */
class CommonDriver {
  readonly state: Float64Array;
  private readonly phi: Float64Array;
  private readonly innov: Float64Array;
  readonly rng: Rng;

  constructor(
    seed: number,
    readonly market: MarketProfile,
  ) {
    this.rng = Rng.derive(seed, 'latent:common');
    const k = market.volComponents.length;
    this.state = new Float64Array(k);
    this.phi = new Float64Array(k);
    this.innov = new Float64Array(k);
    market.volComponents.forEach((c, i) => {
      this.phi[i] = Math.exp((-Math.LN2 * STEP_S) / c.halfLifeS);
      this.innov[i] = Math.sqrt(1 - this.phi[i]! ** 2);
      this.state[i] = this.rng.normal(); // stationary start: unit variance
    });
  }

  step(): void {
    for (let i = 0; i < this.state.length; i++)
      this.state[i] = this.phi[i]! * this.state[i]! + this.innov[i]! * this.rng.normal();
  }
}

export class LatentPrice {
  private readonly common: CommonDriver;
  private readonly rng: Rng;
  private readonly own: Float64Array;
  private readonly phi: Float64Array;
  private readonly innov: Float64Array;
  private readonly weightCommon: Float64Array;
  private readonly weightOwn: Float64Array;
  /** Subtracted from log sigma so that the mean variance over a day and over the components is volBps^2. */
  private readonly logNorm: number;
  /** The same for the common part only (it drives the common move rate). */
  private readonly logNormCommon: number;
  private readonly tickSize: number;
  private readonly tail: number;
  private readonly shockNorm: number;
  /** ln(price in USD). */
  private logPrice: number;
  /** Next grid time to step at, epoch µs. */
  nextStepUs: number;
  /** Current volatility, bps per sqrt(s), and its ratio to the mean. */
  sigmaBps: number;
  volRatio = 1;

  constructor(
    seed: number,
    productId: string,
    private readonly p: ProductProfile,
    private readonly m: MarketProfile,
    startUs: number,
  ) {
    this.common = new CommonDriver(seed, m);
    this.rng = Rng.derive(seed, `latent:${productId}`);
    const k = m.volComponents.length;
    this.own = new Float64Array(k);
    this.phi = new Float64Array(k);
    this.innov = new Float64Array(k);
    this.weightCommon = new Float64Array(k);
    this.weightOwn = new Float64Array(k);
    let varAll = 0;
    let varCommon = 0;
    m.volComponents.forEach((c, i) => {
      this.phi[i] = Math.exp((-Math.LN2 * STEP_S) / c.halfLifeS);
      this.innov[i] = Math.sqrt(1 - this.phi[i]! ** 2);
      // Component = sd * (sqrt(share) * common + sqrt(1 - share) * own): correlation `share` across products.
      this.weightCommon[i] = c.sd * Math.sqrt(c.commonShare);
      this.weightOwn[i] = c.sd * Math.sqrt(1 - c.commonShare);
      this.own[i] = this.rng.normal();
      varAll += c.sd ** 2;
      varCommon += c.sd ** 2 * c.commonShare;
    });
    const diurnal = logBesselI0(2 * m.diurnalAmplitude) / 2;
    this.logNorm = varAll + diurnal;
    this.logNormCommon = varCommon + diurnal;
    this.tickSize = p.tick;
    this.tail = p.moveSizeTail;
    this.shockNorm = logShockNorm(p.moveSizeTail);
    this.logPrice = Math.log(p.price);
    this.nextStepUs = startUs;
    this.sigmaBps = p.volBps;
  }

  /** The efficient price in ticks (fractional). */
  get ticks(): number {
    return Math.exp(this.logPrice) / this.tickSize;
  }

  /** Advances one grid step at `nextStepUs`: volatility state, then the moves of this step. */
  step(): void {
    const m = this.m;
    this.common.step();
    const hour = (this.nextStepUs / 3.6e9) % 24;
    const diurnal = m.diurnalAmplitude * Math.cos((2 * Math.PI * (hour - m.diurnalPeakUtcHour)) / 24);
    let logCommon = diurnal;
    let logAll = diurnal;
    for (let i = 0; i < this.own.length; i++) {
      this.own[i] = this.phi[i]! * this.own[i]! + this.innov[i]! * this.rng.normal();
      const c = this.weightCommon[i]! * this.common.state[i]!;
      logCommon += c;
      logAll += c + this.weightOwn[i]! * this.own[i]!;
    }
    const ratio = Math.exp(logAll - this.logNorm);
    const ratioCommon = Math.exp(logCommon - this.logNormCommon);
    this.volRatio = ratio;
    this.sigmaBps = this.p.volBps * ratio;
    const gamma = m.moveRateVolExponent;
    // Common moves: timing and shock from the common stream (identical in every product), scaled per product.
    const rateC = m.commonMovesPerSecond * ratioCommon ** gamma;
    const scaleC = (this.p.factorLoading * this.sigmaBps) / Math.sqrt(rateC);
    let r = scaleC * this.moves(this.common.rng, rateC);
    const rateOwn = this.p.movesPerSecond * ratio ** gamma;
    const scaleOwn = (Math.sqrt(1 - this.p.factorLoading ** 2) * this.sigmaBps) / Math.sqrt(rateOwn);
    r += scaleOwn * this.moves(this.rng, rateOwn);
    this.logPrice += r * 1e-4;
    this.nextStepUs += LATENT_STEP_US;
  }

  /**
   * The sum of this step's moves (unit-variance shocks) of a Poisson process of `rate` per second. Every step
   * takes the same number of draws from `rng` whatever the rate, so a profile that differs a little gives a
   * path that differs a little from the same seed (common random numbers: what calibrate's search relies on).
   */
  private moves(rng: Rng, rate: number): number {
    const n = poisson(rng.uniform(), rate * STEP_S);
    let sum = 0;
    for (let j = 0; j < MAX_MOVES_PER_STEP; j++) {
      const z = Math.min(Math.max(rng.normal(), -CLAMP_Z), CLAMP_Z);
      const sign = rng.uniform() < 0.5 ? -1 : 1;
      if (j < n) sum += sign * Math.exp(this.tail * z - this.shockNorm);
    }
    return sum;
  }
}

/** Moves per step beyond this are dropped (at the busiest rates here, about one step in a million has 4). */
const MAX_MOVES_PER_STEP = 3;
/** Log-normal magnitudes from a normal clamped here: heavy tails, but no single move of 50 sigma. */
const CLAMP_Z = 3;

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error < 1.5e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const poly =
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
  const erf = 1 - poly * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** log sqrt(E[exp(2 tail Z)]) for Z standard normal clamped to ±CLAMP_Z: makes the shocks unit-variance. */
function logShockNorm(tail: number): number {
  const inside = Math.exp(2 * tail * tail) * (normalCdf(CLAMP_Z - 2 * tail) - normalCdf(-CLAMP_Z - 2 * tail));
  const edges = normalCdf(-CLAMP_Z) * (Math.exp(2 * tail * CLAMP_Z) + Math.exp(-2 * tail * CLAMP_Z));
  return Math.log(inside + edges) / 2;
}

/** Poisson count for uniform `u` by inversion (means here are far below 1). */
function poisson(u: number, mean: number): number {
  let p = Math.exp(-mean);
  let k = 0;
  while (u > p && k < 100) {
    u -= p;
    k++;
    p *= mean / k;
  }
  return k;
}
