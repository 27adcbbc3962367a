/**
 * /latest: the newest snapshot per product as the worker wrote it to the latest table.
 */
import type { LatestSnapshot } from '../storage/latest.js';
import { getLatest, listLatest } from '../storage/latest.js';
import { cached, cachedByKey } from './cache.js';
import { BadRequestError, DependencyError, NotFoundError } from './errors.js';
import { type LatestListView, LatestQuery, type SnapshotView } from './schemas.js';

/** A snapshot as served (schemas.ts Snapshot): the table keys and TTL are storage details, `ageMs` is added at read time. */
export type LatestView = SnapshotView;
export type LatestList = LatestListView;

export function parseLatestQuery(query: Record<string, string> | undefined): { product?: string } {
  const parsed = LatestQuery.safeParse(query ?? {});
  if (!parsed.success) throw new BadRequestError(parsed.error.issues.map((i) => i.message).join('; '));
  return parsed.data;
}

/**
 * A snapshot as served. With `staleAfterMs` (HEALTH_STALE_MS), a book whose item the worker has not written for
 * longer is `stale`: the worker knows only what its stream brings, so only the reader can tell it stopped.
 */
export function toView(item: LatestSnapshot, nowMs: number, staleAfterMs?: number): LatestView {
  const { pk: _pk, sk: _sk, ...rest } = item;
  const ageMs = Math.max(0, nowMs - item.updatedAtMs);
  const view: LatestView = { ...rest, ageMs };
  const book = bookAsRead(item, ageMs, staleAfterMs);
  if (book) view.book = book;
  return view;
}

/** The product's book as a reader sees it: the worker's state, or `stale` once its item is older than the limit. */
export function bookAsRead(
  item: Pick<LatestSnapshot, 'book'>,
  ageMs: number,
  staleAfterMs: number | undefined,
): LatestView['book'] {
  return item.book && staleAfterMs !== undefined && ageMs > staleAfterMs ? 'stale' : item.book;
}

/** The newest snapshot of one product; NotFoundError when the worker has not written one. */
export async function latestOf(product: string, nowMs = Date.now()): Promise<LatestView> {
  const item = await readOrUnavailable(() => getLatest(product));
  if (!item) throw new NotFoundError(`no snapshot for product ${product}`);
  return toView(item, nowMs);
}

/**
 * /latest's reads, each kept `cacheMs` (LATEST_CACHE_MS): under load, one table read serves every request of that
 * window instead of one each (the table is read at most ~1/cacheMs times per container). The age a view reports is
 * computed when it is served, so a cached snapshot says how old it is.
 */
export function latestReader(
  products: readonly string[],
  cacheMs: number,
  now: () => number = Date.now,
  staleAfterMs?: number,
) {
  const all = cached(cacheMs, () => readOrUnavailable(() => listLatest(products)), now);
  const one = cachedByKey(cacheMs, (product) => readOrUnavailable(() => getLatest(product)), now);
  return {
    async all(): Promise<LatestList> {
      const items = await all();
      const nowMs = now();
      return { products: items.map((i) => toView(i, nowMs, staleAfterMs)), serverTimeMs: nowMs };
    },
    async of(product: string): Promise<LatestView> {
      const item = await one(product);
      if (!item) throw new NotFoundError(`no snapshot for product ${product}`);
      return toView(item, now(), staleAfterMs);
    },
  };
}

async function readOrUnavailable<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    throw new DependencyError('latest table is unavailable, retry later', { cause });
  }
}
