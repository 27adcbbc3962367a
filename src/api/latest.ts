/**
 * /latest: the newest snapshot per product as the worker wrote it to the latest table.
 */
import type { LatestSnapshot } from '../storage/latest.js';
import { getLatest, listLatest } from '../storage/latest.js';
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

export function toView(item: LatestSnapshot, nowMs: number): LatestView {
  const { pk: _pk, sk: _sk, expiresAt: _expiresAt, ...rest } = item;
  return { ...rest, ageMs: Math.max(0, nowMs - item.updatedAtMs) };
}

/** The newest snapshot of one product; NotFoundError when the worker has not written one. */
export async function latestOf(product: string, nowMs = Date.now()): Promise<LatestView> {
  const item = await readOrUnavailable(() => getLatest(product));
  if (!item) throw new NotFoundError(`no snapshot for product ${product}`);
  return toView(item, nowMs);
}

/** The newest snapshot of every configured product that has one. */
export async function latestAll(products: readonly string[], nowMs = Date.now()): Promise<LatestList> {
  const items = await readOrUnavailable(() => listLatest(products));
  return { products: items.map((i) => toView(i, nowMs)), serverTimeMs: nowMs };
}

async function readOrUnavailable<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (cause) {
    throw new DependencyError('latest table is unavailable, retry later', { cause });
  }
}
