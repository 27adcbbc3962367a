import { describe, expect, it } from 'vitest';
import type { PromotionConfig } from '../../src/config.js';
import { Rng } from '../../src/simulator/rng.js';
import { decidePromotion, type GateInput, timeFolds } from './gate.js';

const CONFIG: PromotionConfig = {
  margin: 0,
  maxCalibrationError: 0.05,
  minHorizons: 30,
  minPositives: 20,
  blockS: 60,
  resamples: 300,
  folds: 3,
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

describe('the held-out window cut into consecutive time folds (timeFolds, as evaluate cuts it)', () => {
  it('cuts the rows into equal shares in time order, oldest first; rows of one tick share a fold', () => {
    const tsUs = [0, 0, 10, 49, 50, 50, 99, 120];
    expect(Array.from(timeFolds(tsUs, 2))).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    // Shares of 2: the tick at 50 has two rows, both in fold 3.
    expect(Array.from(timeFolds(tsUs, 4))).toEqual([1, 1, 2, 2, 3, 3, 4, 4]);
    expect(Array.from(timeFolds([0, 0, 0, 1], 2))).toEqual([1, 1, 1, 2]);
    expect(Array.from(timeFolds([5], 3))).toEqual([1]);
    expect(() => timeFolds([2, 1], 2)).toThrow(/time order/);
    expect(() => timeFolds([1], 0)).toThrow(RangeError);
  });

  it('keeps the active model when the last fold of the window has no positive, saying so', () => {
    // The same rows as one window: promoted. The spikes of its last fifth gone: kept, with that fold as reason.
    const m = market(3 * 3600, 4);
    const fold = timeFolds(m.tsUs, 5);
    const one: GateInput = { ...input(m, m.noisy(0.2, 1), m.noisy(1.5, 2)), fold, folds: 5 };
    expect(decidePromotion(one, CONFIG)).toMatchObject({ promote: true, reasons: [] });
    const y = Uint8Array.from(m.y, (v, i) => (fold[i] === 5 ? 0 : v));
    const d = decidePromotion({ ...one, y }, CONFIG);
    expect(d.promote).toBe(false);
    expect(d.reasons).toContain(`fold 5: all ${fold.filter((f) => f === 5).length} test labels are 0`);
    expect(d.folds.map((f) => f.ok)).toEqual([true, true, true, true, false]);
  });

  it('a gap in the data empties no fold; a window with fewer ticks than folds names the empty ones', () => {
    const m = market(3 * 3600, 4);
    // The middle fifth of the time span left out (an outage): each fold still holds a fifth of the rows.
    const cut = (t: number) => t >= m.tsUs[0]! + 0.4 * 3 * 3600e6 && t < m.tsUs[0]! + 0.6 * 3 * 3600e6;
    const pick = <T extends Float64Array | Uint8Array>(a: T) => a.filter((_, i) => !cut(m.tsUs[i]!)) as T;
    const tsUs = pick(m.tsUs);
    expect(tsUs.length).toBeLessThan(m.tsUs.length * 0.85);
    const fold = timeFolds(tsUs, 5);
    for (let k = 1; k <= 5; k++) expect(fold.filter((f) => f === k).length / tsUs.length).toBeCloseTo(0.2, 2);
    const d = decidePromotion(
      {
        ...input(m, pick(m.noisy(0.2, 1)), pick(m.noisy(1.5, 2))),
        tsUs,
        y: pick(m.y),
        fold,
        folds: 5,
      },
      CONFIG,
    );
    expect(d.folds.every((f) => f.rows > 0)).toBe(true);
    expect(d.promote).toBe(true);
    // Two ticks, five folds: folds 3 to 5 have no rows, and the gate says so.
    const few = decidePromotion(
      {
        target: 'quote_change_500ms',
        mainMetric: 'logLoss',
        horizonUs: 30e6,
        tsUs: Float64Array.of(0, 100_000),
        fold: timeFolds([0, 100_000], 5),
        folds: 5,
        y: Uint8Array.of(0, 1),
        candidate: Float64Array.of(0.2, 0.8),
        active: Float64Array.of(0.5, 0.5),
        trainRate: 0.5,
      },
      CONFIG,
    );
    expect(few.promote).toBe(false);
    expect(few.reasons).toContain('fold 3: no test rows');
    expect(few.folds.find((f) => f.index === 5)).toMatchObject({ rows: 0, ok: false });
  });
});
