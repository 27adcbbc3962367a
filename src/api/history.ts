/**
 * GET /history: a product's recent series from the latest table's history rows (the worker writes one every
 * HISTORY_WRITE_MS): quote, probabilities with their model, matured labels, live quality, feed health, latency.
 * A range is `from`/`to` (epoch ms) or the last `minutes` (default 60, at most 360), read a page of at most
 * `limit` rows (default and most 1,000) at a time, oldest first; `next` continues. With history off
 * (HISTORY_WRITE_MS=0) the route answers 404.
 */
import type { HistorySettings } from '../config.js';
import { getHistory, type HistoryRowItem, labelBucketMs } from '../storage/history.js';
import { BadRequestError, DependencyError, NotFoundError } from './errors.js';
import { type HistoryPageView, HistoryQuery, type HistoryRowView } from './schemas.js';

const DEFAULT_MINUTES = 60;
const MAX_SPAN_MS = 360 * 60_000;

export interface HistoryRequest {
  product: string;
  fromMs: number;
  toMs: number;
  limit: number;
  next?: string;
}

export function parseHistoryQuery(query: Record<string, string> | undefined, nowMs: number): HistoryRequest {
  const parsed = HistoryQuery.safeParse(query ?? {});
  if (!parsed.success) {
    throw new BadRequestError(
      parsed.error.issues
        .map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message))
        .join('; '),
    );
  }
  const q = parsed.data;
  if (q.minutes !== undefined && (q.from !== undefined || q.to !== undefined)) {
    throw new BadRequestError('give either minutes or from/to, not both');
  }
  const toMs = q.to ?? nowMs;
  const fromMs = q.from ?? toMs - (q.minutes ?? DEFAULT_MINUTES) * 60_000;
  if (fromMs > toMs) throw new BadRequestError('from must not be after to');
  if (toMs - fromMs > MAX_SPAN_MS) throw new BadRequestError('a range spans at most 360 minutes');
  return { product: q.product, fromMs, toMs, limit: q.limit ?? 1000, ...(q.next ? { next: q.next } : {}) };
}

/** The row as served: storage keys out, the labels of the targets served. */
export function toHistoryRow(item: HistoryRowItem, targets: readonly string[]): HistoryRowView {
  const labels: Record<string, number> = {};
  for (const t of targets) {
    const v = item.labels?.[t];
    if (typeof v === 'number') labels[t] = v;
  }
  return {
    tsUs: item.tsUs,
    bid: item.bid,
    ask: item.ask,
    mid: item.mid,
    spread: item.spread,
    predictions: item.predictions ?? {},
    ...(Object.keys(labels).length ? { labels } : {}),
    ...(item.quality ? { quality: item.quality } : {}),
    ...(item.feed ? { feed: item.feed } : {}),
    latencyMs: item.latencyMs,
  };
}

export async function historyOf(
  req: HistoryRequest,
  settings: HistorySettings,
  targets: readonly string[],
): Promise<HistoryPageView> {
  if (settings.writeMs === 0) throw new NotFoundError('history is off (HISTORY_WRITE_MS=0)');
  let page: Awaited<ReturnType<typeof getHistory>>;
  try {
    page = await getHistory(req.product, req.fromMs, req.toMs, req.limit, {
      bucketMs: labelBucketMs(settings.writeMs),
      ...(req.next ? { afterMs: Number(req.next) } : {}),
    });
  } catch (cause) {
    throw new DependencyError('latest table is unavailable, retry later', { cause });
  }
  return {
    product: req.product,
    fromMs: req.fromMs,
    toMs: req.toMs,
    rows: page.items.map((i) => toHistoryRow(i, targets)),
    ...(page.next ? { next: page.next } : {}),
  };
}
