/**
 * The ingestor's metrics: named counters (only go up) and gauges (current value), kept in memory.
 * They leave the process two ways, neither needing an API call:
 * - in the FeedStatsEvent published through the stream (snapshot()), so the worker and dashboard see them;
 * - as CloudWatch Embedded Metric Format log lines (emf()): a JSON shape CloudWatch Logs turns into metrics,
 *   so the deployed Fargate service gets metrics from its stdout alone.
 */

export interface MetricsSnapshot {
  counters: Record<string, number>;
  gauges: Record<string, number>;
}

export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, number>();
  /** Counter values at the last emf() call: EMF lines carry deltas, which CloudWatch sums per period. */
  private readonly emitted = new Map<string, number>();

  inc(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by);
  }

  set(name: string, value: number): void {
    this.gauges.set(name, value);
  }

  /** A counter's or gauge's value (0 when never touched). */
  get(name: string): number {
    return this.counters.get(name) ?? this.gauges.get(name) ?? 0;
  }

  snapshot(): MetricsSnapshot {
    return { counters: Object.fromEntries(this.counters), gauges: Object.fromEntries(this.gauges) };
  }

  /**
   * One EMF document: counters as their increase since the previous call (unit Count), gauges as they are.
   * Metric names are used as-is; `dimensions` become both the dimension set and top-level fields.
   */
  emf(
    namespace: string,
    dimensions: Record<string, string>,
    timestampMs = Date.now(),
  ): Record<string, unknown> {
    const values: Record<string, number> = {};
    const definitions: { Name: string; Unit: string }[] = [];
    for (const [name, value] of this.counters) {
      values[name] = value - (this.emitted.get(name) ?? 0);
      this.emitted.set(name, value);
      definitions.push({ Name: name, Unit: 'Count' });
    }
    for (const [name, value] of this.gauges) {
      values[name] = value;
      definitions.push({ Name: name, Unit: 'None' });
    }
    return {
      _aws: {
        Timestamp: timestampMs,
        CloudWatchMetrics: [
          { Namespace: namespace, Dimensions: [Object.keys(dimensions)], Metrics: definitions },
        ],
      },
      ...dimensions,
      ...values,
    };
  }
}
