/**
 * Short-horizon quote changes in the simulated market are partly predictable from simple book features
 * (that is what market orders steered by the L1 queue imbalance, size-dependent touch cancels, and regimes
 * are for) and not from noise: logistic regression trained on the first 70% of a simulated stream
 * (time-ordered) scores ROC-AUC > 0.6 on the last 30% with the true labels, and about 0.5 with shuffled
 * labels. It must hold INSIDE the busy regime too, not only by telling the regimes apart (spread, time since
 * the last change do that easily). In the pinned regime the quote rarely moves, and when it does a thin best
 * queue came first. No network: simulated time only. The features are computed here from the simulator's
 * own book; the real feature pipeline is src/features/.
 */
import { describe, expect, it } from 'vitest';
import { predictLogistic, trainLogisticRegression } from '../models/train/logreg.js';
import { rocAuc } from '../src/model/metrics.js';
import { Market } from '../src/simulator/market.js';
import type { RegimeName } from '../src/simulator/regimes.js';
import { Rng } from '../src/simulator/rng.js';

const TICK_US = 100_000;
const HORIZON_US = 500_000;
/** Index of log(smaller best queue) in the feature vector. */
const MIN_QUEUE = 5;

interface Dataset {
  X: number[][];
  y: number[];
}

interface Row {
  x: number[];
  y: number;
  regime: RegimeName;
  spreadTicks: number;
}

/** Features at every 100 ms tick and the label "best bid or ask price changes within the next 500 ms". */
function simulate(seed: number, seconds: number): Row[] {
  const market = new Market({ productId: 'ETH-USD', price: 3_000 }, seed, Date.UTC(2026, 0, 1) * 1000);
  const endUs = market.timeUs + seconds * 1_000_000;
  const quoteKey = () => `${market.bestBid()?.priceTicks}/${market.bestAsk()?.priceTicks}`;
  const mid = () => ((market.bestBid()?.priceTicks ?? 0) + (market.bestAsk()?.priceTicks ?? 0)) / 2;
  const ticks: { us: number; x: number[]; regime: RegimeName; spreadTicks: number }[] = [];
  const changes: number[] = [];
  const mids: number[] = [];
  let quote = quoteKey();
  let lastChangeUs = market.timeUs;
  for (let t = market.timeUs + TICK_US; t <= endUs; t += TICK_US) {
    market.advanceTo(t, () => {
      const q = quoteKey();
      if (q !== quote) {
        changes.push(market.timeUs);
        lastChangeUs = market.timeUs;
      }
      quote = q;
    });
    const b = market.bestBid()!;
    const a = market.bestAsk()!;
    mids.push(mid());
    const midChange = mids.length > 5 ? Math.abs(mids.at(-1)! - mids.at(-6)!) : 0;
    ticks.push({
      us: t,
      regime: market.regimeAt(t),
      spreadTicks: a.priceTicks - b.priceTicks,
      x: [
        market.imbalance(),
        Math.abs(market.imbalance()),
        Math.log(a.priceTicks - b.priceTicks),
        Math.log1p(midChange),
        Math.log1p((t - lastChangeUs) / 1000),
        Math.log(Math.min(a.qtyUnits, b.qtyUnits)),
      ],
    });
  }
  const rows: Row[] = [];
  let j = 0;
  for (const tick of ticks) {
    if (tick.us + HORIZON_US > endUs) break;
    while (j < changes.length && changes[j]! <= tick.us) j++;
    const next = changes[j];
    rows.push({ ...tick, y: next !== undefined && next <= tick.us + HORIZON_US ? 1 : 0 });
  }
  return rows;
}

const dataset = (rows: Row[]): Dataset => ({ X: rows.map((r) => r.x), y: rows.map((r) => r.y) });
const rate = (y: number[]) => y.reduce((s, v) => s + v, 0) / y.length;

function trainAndScore({ X, y }: Dataset): number {
  const cut = Math.floor(X.length * 0.7);
  const model = trainLogisticRegression(X.slice(0, cut), y.slice(0, cut));
  const scores = X.slice(cut).map((x) => predictLogistic(model, x));
  return rocAuc(scores, y.slice(cut));
}

function shuffled(y: number[], seed: number): number[] {
  const rng = new Rng(seed);
  const out = [...y];
  for (let i = out.length - 1; i > 0; i--) {
    const k = rng.int(i + 1);
    [out[i], out[k]] = [out[k]!, out[i]!];
  }
  return out;
}

const rows = simulate(3, 20 * 60);

describe('quote changes in the simulated market are partly predictable', () => {
  const data = dataset(rows);

  it('has both outcomes in both halves of the split', () => {
    const cut = Math.floor(data.y.length * 0.7);
    for (const part of [data.y.slice(0, cut), data.y.slice(cut)]) {
      expect(rate(part)).toBeGreaterThan(0.05);
      expect(rate(part)).toBeLessThan(0.95);
    }
  });

  it('true labels: out-of-sample ROC-AUC > 0.6', () => {
    expect(trainAndScore(data)).toBeGreaterThan(0.6);
  });

  it('shuffled labels: out-of-sample ROC-AUC about 0.5', () => {
    const auc = trainAndScore({ X: data.X, y: shuffled(data.y, 99) });
    expect(Math.abs(auc - 0.5)).toBeLessThan(0.05);
  });
});

describe('inside the busy regime alone (spread > 1 tick, so regime switches cannot help)', () => {
  const busy = dataset(rows.filter((r) => r.regime === 'busy' && r.spreadTicks > 1));

  it('has enough rows and a base rate near the capture (0.782)', () => {
    expect(busy.y.length).toBeGreaterThan(2000);
    expect(rate(busy.y)).toBeGreaterThan(0.5);
    expect(rate(busy.y)).toBeLessThan(0.9);
  });

  it('true labels: out-of-sample ROC-AUC > 0.6', () => {
    expect(trainAndScore(busy)).toBeGreaterThan(0.6);
  });

  it('shuffled labels: out-of-sample ROC-AUC about 0.5', () => {
    const auc = trainAndScore({ X: busy.X, y: shuffled(busy.y, 99) });
    expect(Math.abs(auc - 0.5)).toBeLessThan(0.05);
  });
});

describe('inside the pinned regime', () => {
  const pinned = rows.filter((r) => r.regime === 'pinned');
  const y = pinned.map((r) => r.y);

  it('the quote rarely moves, but it does move', () => {
    expect(pinned.length).toBeGreaterThan(2000);
    expect(rate(y)).toBeLessThan(0.05);
    expect(y.filter((v) => v === 1).length).toBeGreaterThanOrEqual(5);
  });

  it('a thin best queue comes before a move: the smaller queue alone ranks moves with AUC > 0.8', () => {
    expect(
      rocAuc(
        pinned.map((r) => -r.x[MIN_QUEUE]!),
        y,
      ),
    ).toBeGreaterThan(0.8);
  });
});
