import { describe, expect, it } from 'vitest';
import type { PromotionConfig } from '../../src/config.js';
import { Rng } from '../../src/simulator/rng.js';
import { decidePromotion, type GateInput } from './gate.js';

const CONFIG: PromotionConfig = {
  margin: 0,
  maxCalibrationError: 0.05,
  minHorizons: 30,
  minPositives: 20,
  blockS: 60,
  resamples: 300,
};

/**
 * Three folds of one row per second with a latent state that persists for 30 s; `noisy(sd)` is a calibrated
 * forecaster of the outcome that sees the state through noise of that size.
 */
function market(seconds: number, seed: number) {
  const rng = new Rng(seed);
  const tsUs = Float64Array.from({ length: seconds }, (_, i) => i * 1e6);
  const fold = Uint8Array.from(tsUs, (_, i) => 1 + Math.floor((3 * i) / seconds));
  const state = new Float64Array(seconds);
  let s = 0;
  for (let i = 0; i < seconds; i++) {
    if (i % 30 === 0) s = rng.normal();
    state[i] = s;
  }
  const truth = Float64Array.from(state, (v) => 1 / (1 + Math.exp(-(2 * v - 1))));
  const y = Uint8Array.from(truth, (p) => (rng.uniform() < p ? 1 : 0));
  const noisy = (sd: number, stream: number) => {
    const r = new Rng(stream);
    return Float64Array.from(state, (v) => 1 / (1 + Math.exp(-(2 * (v + sd * r.normal()) - 1))));
  };
  return { tsUs, fold, y, noisy, rate: y.reduce((a, b) => a + b, 0) / seconds };
}

const input = (m: ReturnType<typeof market>, candidate: Float64Array, active?: Float64Array): GateInput => ({
  target: 'quote_change_500ms',
  mainMetric: 'logLoss',
  horizonUs: 30e6,
  tsUs: m.tsUs,
  fold: m.fold,
  y: m.y,
  candidate,
  ...(active ? { active } : {}),
  trainRate: m.rate,
});

describe('decidePromotion', () => {
  const m = market(3 * 3600, 4);

  it('promotes a candidate that is better beyond the noise, recording the paired interval', () => {
    const d = decidePromotion(input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), CONFIG);
    expect(d.reasons).toEqual([]);
    expect(d.promote).toBe(true);
    expect(d.reference).toBe('active');
    expect(d.gain.lo).toBeGreaterThan(0);
    expect(d.brier.candidate).toBeLessThan(d.brier.reference);
    expect(d.folds.map((f) => f.ok)).toEqual([true, true, true]);
    expect(d.config).toEqual(CONFIG);
  });

  it('keeps the active model when the candidate is as good and only luckier on these rows', () => {
    // Two equally good forecasters: whichever scores higher here does so by chance.
    const a = m.noisy(0.7, 11);
    const b = m.noisy(0.7, 12);
    const [lucky, other] = decidePromotion(input(m, a, b), CONFIG).gain.value > 0 ? [a, b] : [b, a];
    const d = decidePromotion(input(m, lucky, other), CONFIG);
    expect(d.gain.value).toBeGreaterThan(0);
    expect(d.promote).toBe(false);
    expect(d.reasons.join()).toMatch(
      /logLoss gain over the active model .* lower bound not above the margin 0/,
    );
  });

  it('a margin raises the bar', () => {
    const clear = decidePromotion(input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), CONFIG);
    const d = decidePromotion(input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), {
      ...CONFIG,
      margin: clear.gain.hi + 0.01,
    });
    expect(d.promote).toBe(false);
  });

  it('with nothing active, a first model must beat the base rate', () => {
    expect(decidePromotion(input(m, m.noisy(0.2, 1)), CONFIG)).toMatchObject({
      promote: true,
      reference: 'base_rate',
    });
    const noSkill = new Float64Array(m.y.length).fill(m.rate);
    const d = decidePromotion(input(m, noSkill), CONFIG);
    expect(d.promote).toBe(false);
    expect(d.gain).toEqual({ value: -0, lo: -0, hi: -0 });
  });

  it('rejects a miscalibrated candidate even when it ranks better', () => {
    const sharp = m.noisy(0.2, 1).map((p) => Math.min(1, p * 1.6));
    const d = decidePromotion(input(m, sharp, m.noisy(1.5, 2)), CONFIG);
    expect(d.promote).toBe(false);
    expect(d.reasons.join()).toMatch(/calibration error .* above 0.05/);
  });

  it('rejects when a fold has too few horizons, too few positives or one class', () => {
    const short = market(1200, 5); // 400 s per fold: 13 horizons of 30 s
    const d = decidePromotion(input(short, short.noisy(0.2, 1), short.noisy(1.5, 2)), CONFIG);
    expect(d.promote).toBe(false);
    expect(d.reasons).toContain('fold 1: 13 independent horizons, fewer than 30');
    const y = Uint8Array.from(m.y, (v, i) => (m.fold[i] === 2 ? 0 : v));
    const oneClass = decidePromotion({ ...input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), y }, CONFIG);
    expect(oneClass.reasons).toContain('fold 2: all 3600 test labels are 0');
    const few = decidePromotion(input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), {
      ...CONFIG,
      minPositives: 10_000,
    });
    expect(few.reasons.join()).toMatch(/fold 1: \d+ positives, fewer than 10000/);
  });
});
