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
 *   exponent; sizes are log-normal (moveSizeTail) for heavy tails.
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
    this.shockNorm = logShockNorm(m.moveSizeTail);
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
    const tail = m.moveSizeTail;
    let r = 0;
    // Common moves: timing and shock from the common stream (identical in every product), scaled per product.
    const rateC = m.commonMovesPerSecond * ratioCommon ** gamma;
    const nC = poisson(this.common.rng, rateC * STEP_S);
    if (nC > 0) {
      // Each move's variance: loading^2 sigma^2 / rate (in bps^2), so the rate does not change the variance.
      const scale = (this.p.factorLoading * this.sigmaBps) / Math.sqrt(rateC);
      for (let j = 0; j < nC; j++) r += scale * shock(this.common.rng, tail, this.shockNorm);
    }
    const rateOwn = this.p.movesPerSecond * ratio ** gamma;
    const nOwn = poisson(this.rng, rateOwn * STEP_S);
    if (nOwn > 0) {
      const scale = (Math.sqrt(1 - this.p.factorLoading ** 2) * this.sigmaBps) / Math.sqrt(rateOwn);
      for (let j = 0; j < nOwn; j++) r += scale * shock(this.rng, tail, this.shockNorm);
    }
    this.logPrice += r * 1e-4;
    this.nextStepUs += LATENT_STEP_US;
  }
}

/** Log-normal magnitudes use a normal truncated here: heavy tails, but no single move of 50 sigma. */
const TRUNCATE_Z = 3;

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error < 1.5e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * z);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** log sqrt(E[exp(2 tail Z)]) for Z standard normal truncated to |Z| <= TRUNCATE_Z: makes shocks unit-variance. */
function logShockNorm(tail: number): number {
  const mass = normalCdf(TRUNCATE_Z) - normalCdf(-TRUNCATE_Z);
  const tilted = normalCdf(TRUNCATE_Z - 2 * tail) - normalCdf(-TRUNCATE_Z - 2 * tail);
  return tail * tail + Math.log(tilted / mass) / 2;
}

/** A unit-variance symmetric shock with a (truncated) log-normal magnitude. */
function shock(rng: Rng, tail: number, logNorm: number): number {
  let z = rng.normal();
  while (Math.abs(z) > TRUNCATE_Z) z = rng.normal();
  const size = Math.exp(tail * z - logNorm);
  return rng.uniform() < 0.5 ? -size : size;
}

/** Poisson count by inversion (means here are far below 1). */
function poisson(rng: Rng, mean: number): number {
  let u = rng.uniform();
  let p = Math.exp(-mean);
  let k = 0;
  while (u > p && k < 100) {
    u -= p;
    k++;
    p *= mean / k;
  }
  return k;
}
