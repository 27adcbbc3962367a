/**
 * /health: is the latest table reachable, is the worker still writing to it, is the exchange feed alive, and is
 * each product's book synced and, at its last check, equal to the exchange's own?
 *
 * Feed health comes from the ingestor's stats carried in the newest snapshot that has them (`feed`), judged by
 * feedVerdict (feedVerdict.ts, the rule the dashboard uses too) with the same limit as snapshots (HEALTH_STALE_MS):
 * degraded when the ingestor heard no heartbeat for longer, or its stats stopped coming. No `feed` yet (stats not
 * published) reports feed: null and is not a failure.
 */
import type { LatestSnapshot } from '../storage/latest.js';
import { feedVerdict } from './feedVerdict.js';
import { bookAsRead } from './latest.js';
import type { HealthReportView } from './schemas.js';

export type HealthReport = HealthReportView;
export type FeedHealth = NonNullable<HealthReport['feed']>;

export interface HealthDeps {
  listLatest: () => Promise<LatestSnapshot[]>;
  staleAfterMs: number;
  now?: () => number;
}

export async function checkHealth(deps: HealthDeps): Promise<HealthReport> {
  const checkedAtMs = (deps.now ?? Date.now)();
  const reasons: string[] = [];
  let items: LatestSnapshot[] = [];
  let dynamodb: HealthReport['dynamodb'] = 'ok';
  try {
    items = await deps.listLatest();
  } catch (err) {
    dynamodb = 'unreachable';
    const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
    reasons.push(`latest table unreachable${cause}`);
  }
  const products = items.map((i) => {
    const ageMs = Math.max(0, checkedAtMs - i.updatedAtMs);
    const book = bookAsRead(i, ageMs, deps.staleAfterMs);
    return {
      product: i.product,
      ageMs,
      ...(book ? { book } : {}),
      ...(i.verification ? { verification: i.verification } : {}),
    };
  });
  // Each product's book is its own question: one resyncing or found wrong degrades the report, with the reason.
  for (const p of products) {
    if (p.book === 'resyncing') reasons.push(`${p.product}: book resyncing`);
    if (p.verification?.result === 'mismatch')
      reasons.push(`${p.product}: last book check mismatched the exchange: ${p.verification.reason ?? ''}`);
  }
  const newestAgeMs = products.length ? Math.min(...products.map((p) => p.ageMs)) : null;
  if (dynamodb === 'ok' && newestAgeMs === null) reasons.push('no latest snapshot written yet');
  if (newestAgeMs !== null && newestAgeMs > deps.staleAfterMs)
    reasons.push(`newest snapshot is ${newestAgeMs} ms old (limit ${deps.staleAfterMs} ms)`);
  const judged = feedHealth(items, checkedAtMs, deps.staleAfterMs);
  if (judged?.reason) reasons.push(judged.reason);
  const feed = judged?.feed ?? null;
  return {
    status: reasons.length ? 'degraded' : 'ok',
    checkedAtMs,
    dynamodb,
    newestAgeMs,
    staleAfterMs: deps.staleAfterMs,
    products,
    feed,
    reasons,
  };
}

/** Feed health from the newest snapshot carrying the ingestor's stats, with why it is degraded; null when none does. */
export function feedHealth(
  items: LatestSnapshot[],
  nowMs: number,
  limitMs: number,
): { feed: FeedHealth; reason?: string } | null {
  let newest: LatestSnapshot | undefined;
  for (const i of items) if (i.feed && (!newest || i.updatedAtMs > newest.updatedAtMs)) newest = i;
  const f = newest?.feed;
  if (!newest || !f) return null;
  const ageMs = (us: number) => Math.max(0, Math.round(nowMs - us / 1000));
  const heartbeatAgeMs = f.lastHeartbeatUs > 0 ? ageMs(f.lastHeartbeatUs) : null;
  const verdict = feedVerdict(f, nowMs, limitMs);
  const feed: FeedHealth = {
    status: verdict.ok ? 'ok' : 'degraded',
    product: newest.product,
    messagesPerS: f.messagesPerS,
    reconnects: f.reconnects,
    resyncs: f.resyncs,
    heartbeatAgeMs,
    statsAgeMs: ageMs(f.exchUs),
  };
  return verdict.reason ? { feed, reason: verdict.reason } : { feed };
}
