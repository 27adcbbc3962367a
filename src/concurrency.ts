/**
 * Bounded concurrency, in one place: the helper any component uses to run many requests (S3 reads of the lake,
 * ...) without starting them all at once.
 */

/**
 * Runs `fn` over `items` with at most `limit` calls in flight; the results are in input order. After a call
 * fails no further call starts, and the first failure rejects the whole (calls already running finish unawaited).
 */
export async function mapLimited<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  if (!(Number.isInteger(limit) && limit >= 1)) {
    throw new RangeError(`limit must be an integer >= 1, got ${limit}`);
  }
  const out = new Array<R>(items.length);
  let next = 0;
  let failed = false;
  const worker = async () => {
    while (!failed && next < items.length) {
      const i = next++;
      try {
        out[i] = await fn(items[i]!, i);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
