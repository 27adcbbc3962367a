/**
 * /health: is the latest table reachable, and is the worker still writing to it?
 */
import type { LatestSnapshot } from './types.js';

export interface ProductHealth {
  product: string;
  ageMs: number;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  checkedAtMs: number;
  dynamodb: 'ok' | 'unreachable';
  /** Age of the newest snapshot across products, null when there is none. */
  newestAgeMs: number | null;
  staleAfterMs: number;
  products: ProductHealth[];
  reasons: string[];
}

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
  const products = items.map((i) => ({
    product: i.product,
    ageMs: Math.max(0, checkedAtMs - i.updatedAtMs),
  }));
  const newestAgeMs = products.length ? Math.min(...products.map((p) => p.ageMs)) : null;
  if (dynamodb === 'ok' && newestAgeMs === null) reasons.push('no latest snapshot written yet');
  if (newestAgeMs !== null && newestAgeMs > deps.staleAfterMs)
    reasons.push(`newest snapshot is ${newestAgeMs} ms old (limit ${deps.staleAfterMs} ms)`);
  return {
    status: reasons.length ? 'degraded' : 'ok',
    checkedAtMs,
    dynamodb,
    newestAgeMs,
    staleAfterMs: deps.staleAfterMs,
    products,
    reasons,
  };
}
