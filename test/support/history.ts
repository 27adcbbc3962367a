/** History rows for the API and dashboard tests, written through the storage module as the worker writes them. */
import {
  type BucketLabels,
  type HistoryItem,
  historyKey,
  labelBucketMs,
  putHistory,
  putHistoryLabels,
} from '../../src/storage/history.js';

const QUOTE = 'quote_change_500ms';
const VOL = 'vol_spike_60s';

/**
 * One row a second for the last `seconds` (up to 2 s ago): a smooth walk around `base`, the quote label matured
 * on every row and the vol label where its 60 s horizon has passed, and a quote-model version switch half way
 * (v-old, then v-dash). Returns the rows' tick times, oldest first.
 */
export async function seedHistory(product: string, base: number, seconds: number): Promise<number[]> {
  const nowS = Math.floor(Date.now() / 1000);
  const ticks: number[] = [];
  const bucketMs = labelBucketMs(1000);
  const buckets: Record<number, BucketLabels> = {};
  let mid = base;
  for (let i = seconds; i >= 2; i--) {
    const tsUs = (nowS - i) * 1e6;
    mid += Math.sin(i / 7) * base * 1e-5;
    const version = i > seconds / 2 ? 'v-old' : 'v-dash';
    const item: HistoryItem = {
      pk: product,
      sk: historyKey(tsUs),
      tsUs,
      seq: tsUs,
      bestBid: (mid - 0.005).toFixed(3),
      bestAsk: (mid + 0.005).toFixed(3),
      bid: mid - 0.005,
      ask: mid + 0.005,
      mid,
      spread: 0.01,
      source: 'book',
      predictions: {
        [QUOTE]: { probability: 0.3 + 0.2 * Math.sin(i / 5), modelVersion: version },
        [VOL]: { probability: 0.1 + 0.05 * Math.cos(i / 9), modelVersion: 'vol-dash', threshold: 1.5 },
      },
      quality: {
        [QUOTE]: { modelVersion: version, n: 500 + i, auc: 0.8, prAuc: 0.6, brier: 0.15, baseRate: 0.3 },
        [VOL]: { modelVersion: 'vol-dash', n: 500, auc: 0.7, prAuc: 0.3, brier: 0.08, baseRate: 0.1 },
      },
      feed: { messagesPerS: 100 + i, reconnects: 0, resyncs: i < 30 ? 1 : 0, heartbeatAgeMs: 400 },
      latencyMs: 20 + (i % 7),
      expiresAt: nowS + 3600,
    };
    await putHistory(item);
    ticks.push(tsUs);
    // Matured labels, in their buckets as the worker writes them: the quote label on every row, the vol label
    // where its minute has passed.
    const tick = tsUs / 1000;
    const start = Math.floor(tick / bucketMs) * bucketMs;
    const bucket = buckets[start] ?? {};
    buckets[start] = bucket;
    bucket[tick] = { [QUOTE]: i % 3 === 0 ? 1 : 0, ...(i > 61 ? { [VOL]: i % 11 === 0 ? 2.5 : 0.5 } : {}) };
  }
  for (const [start, labels] of Object.entries(buckets))
    await putHistoryLabels(product, Number(start), labels, nowS + 3600);
  return ticks;
}
