/**
 * Is the exchange feed alive, judged from the ingestor's newest stats as the latest table carries them? One rule
 * for /health and the dashboard (a pure module: the browser bundle imports it too).
 *
 * The stats reach the table up to FEED_STATS_MS (5 s: the ingestor's report period) + STATUS_WRITE_MS (5 s: the
 * worker's status item cadence) after they are made, so the wall-clock age of the last heartbeat is up to ~10 s
 * larger than the silence the ingestor actually saw. The heartbeat is judged by that silence, at the time of the
 * report; the report by its own age, allowing for that lag.
 */

/** How late a healthy ingestor's stats may reach a reader: its report period plus the status item's cadence. */
export const STATS_REPORT_LAG_MS = 10_000;

export interface FeedStatsTimes {
  /** When the stats were made (epoch µs). */
  exchUs: number;
  /** The newest exchange heartbeat then (epoch µs; 0: none yet). */
  lastHeartbeatUs: number;
}

export interface FeedVerdict {
  ok: boolean;
  /** Why not, when not. */
  reason?: string;
}

export function feedVerdict(f: FeedStatsTimes, nowMs: number, limitMs: number): FeedVerdict {
  if (f.lastHeartbeatUs <= 0)
    return { ok: false, reason: 'ingestor has received no heartbeat from the exchange' };
  const silenceMs = Math.max(0, Math.round((f.exchUs - f.lastHeartbeatUs) / 1000));
  if (silenceMs > limitMs) {
    return {
      ok: false,
      reason: `ingestor heard no exchange heartbeat for ${silenceMs} ms (limit ${limitMs} ms)`,
    };
  }
  const reportAgeMs = Math.max(0, Math.round(nowMs - f.exchUs / 1000));
  if (reportAgeMs > limitMs + STATS_REPORT_LAG_MS) {
    return {
      ok: false,
      reason: `ingestor's newest stats are ${reportAgeMs} ms old (limit ${limitMs + STATS_REPORT_LAG_MS} ms)`,
    };
  }
  return { ok: true };
}
