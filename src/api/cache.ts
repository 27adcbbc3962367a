/**
 * Short-lived caches of what a handler reads, per Lambda container (or the local gateway's one process). One load
 * at a time per key: concurrent callers within the TTL share the same promise, so a burst costs one read. A failed
 * load is never kept; the next call tries again.
 */

/** `load()`, kept for `ttlMs` (0: not kept at all). */
export function cached<T>(
  ttlMs: number,
  load: () => Promise<T>,
  now: () => number = Date.now,
): () => Promise<T> {
  const byKey = cachedByKey(ttlMs, load, now);
  return () => byKey('');
}

/** `load(key)` per key, each kept for `ttlMs` (0: not kept). Keys are few (products, targets): none are evicted. */
export function cachedByKey<T>(
  ttlMs: number,
  load: (key: string) => Promise<T>,
  now: () => number = Date.now,
): (key: string) => Promise<T> {
  const entries = new Map<string, { at: number; value: Promise<T> }>();
  return (key) => {
    const t = now();
    const hit = entries.get(key);
    if (hit && t - hit.at < ttlMs) return hit.value;
    const value = load(key);
    if (ttlMs > 0) {
      const entry = { at: t, value };
      entries.set(key, entry);
      value.catch(() => {
        if (entries.get(key) === entry) entries.delete(key);
      });
    }
    return value;
  };
}
