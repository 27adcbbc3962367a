/**
 * Short-horizon quote changes in the simulated market are partly predictable from simple book features
 * (that is what market orders steered by the L1 queue imbalance, and regimes, are for) and not from noise:
 * logistic regression trained on the first 70% of a simulated stream (time-ordered) scores ROC-AUC > 0.6 on
 * the last 30% with the true labels, and about 0.5 with shuffled labels. No network: simulated time only.
 * The features are computed here from the simulator's own book; the real feature pipeline is src/features/.
 */
import { describe, expect, it } from 'vitest';
import { rocAuc } from '../models/eval/metrics.js';
import { predictLogistic, trainLogisticRegression } from '../models/train/logreg.js';
import { Market } from '../src/simulator/market.js';
import { Rng } from '../src/simulator/rng.js';

const TICK_US = 100_000;
const HORIZON_US = 500_000;

interface Dataset {
  X: number[][];
  y: number[];
}

/** Features at every 100 ms tick and the label "best bid or ask price changes within the next 500 ms". */
function simulate(seed: number, seconds: number): Dataset {
  const market = new Market({ productId: 'ETH-USD', price: 3_000 }, seed, Date.UTC(2026, 0, 1) * 1000);
  const endUs = market.timeUs + seconds * 1_000_000;
  const quoteKey = () => `${market.bestBid()?.priceTicks}/${market.bestAsk()?.priceTicks}`;
  const mid = () => ((market.bestBid()?.priceTicks ?? 0) + (market.bestAsk()?.priceTicks ?? 0)) / 2;
  const ticks: { us: number; x: number[] }[] = [];
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
  const X: number[][] = [];
  const y: number[] = [];
  let j = 0;
  for (const tick of ticks) {
    if (tick.us + HORIZON_US > endUs) break;
    while (j < changes.length && changes[j]! <= tick.us) j++;
    const next = changes[j];
    X.push(tick.x);
    y.push(next !== undefined && next <= tick.us + HORIZON_US ? 1 : 0);
  }
  return { X, y };
}

function trainAndScore({ X, y }: Dataset): number {
  const cut = Math.floor(X.length * 0.7);
  const model = trainLogisticRegression(X.slice(0, cut), y.slice(0, cut));
  const scores = X.slice(cut).map((x) => predictLogistic(model, x));
  return rocAuc(scores, y.slice(cut));
}

describe('quote changes in the simulated market are partly predictable', () => {
  const data = simulate(3, 20 * 60);

  it('has both outcomes in both halves of the split', () => {
    const cut = Math.floor(data.y.length * 0.7);
    for (const part of [data.y.slice(0, cut), data.y.slice(cut)]) {
      const rate = part.reduce((s, v) => s + v, 0) / part.length;
      expect(rate).toBeGreaterThan(0.05);
      expect(rate).toBeLessThan(0.95);
    }
  });

  it('true labels: out-of-sample ROC-AUC > 0.6', () => {
    expect(trainAndScore(data)).toBeGreaterThan(0.6);
  });

  it('shuffled labels: out-of-sample ROC-AUC about 0.5', () => {
    const rng = new Rng(99);
    const y = [...data.y];
    for (let i = y.length - 1; i > 0; i--) {
      const k = rng.int(i + 1);
      [y[i], y[k]] = [y[k]!, y[i]!];
    }
    const auc = trainAndScore({ X: data.X, y });
    expect(Math.abs(auc - 0.5)).toBeLessThan(0.05);
  });
});
