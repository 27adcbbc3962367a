/**
 * The one polling wait of the test suite. The timeout is a safety net against a hang, never a speed
 * expectation: keep it generous (a loaded machine only makes a test slower, never failing).
 */

export interface UntilOptions {
  timeoutMs?: number;
  /** Pause between probes (real time). */
  everyMs?: number;
}

/**
 * Probes until `probe` returns something other than `false`/`undefined` (a throw counts as not yet) and returns
 * that value; fails naming `what` (and the last error) after the timeout.
 */
export async function until<T>(
  what: string,
  probe: () => T | Promise<T>,
  options: UntilOptions | number = {},
): Promise<Exclude<T, false | undefined>> {
  const { timeoutMs = 30_000, everyMs = 10 } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== false && value !== undefined) return value as Exclude<T, false | undefined>;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > deadline) {
      const why = lastError === undefined ? '' : ` (last error: ${String(lastError)})`;
      throw new Error(`timed out waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
