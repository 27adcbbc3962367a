/**
 * The one metrics emitter of every component: code records a catalog metric (src/telemetry/catalog.ts) with its
 * dimensions; the record goes to two sinks and there is no other set of counters.
 *
 * - Prometheus (prom-client), updated at once: the cumulative state (counters, last gauges, timing histograms)
 *   that `value()` reads, that the ingestor's stats event snapshots, and that `GET /metrics` serves locally
 *   (src/telemetry/ops.ts, the gateway's /metrics aggregates every component's).
 * - CloudWatch, through Powertools for AWS Lambda's Metrics: on `flush()` the period's aggregates become
 *   Embedded Metric Format records (one per dimension set: counters summed, gauges' last value, timing values),
 *   handed to the configured EMF sinks — stdout in Lambda (CloudWatch Logs extracts EMF from Lambda's logs), or
 *   PutMetricData from the Fargate tasks (src/telemetry/cloudwatch.ts; their awslogs driver does not mark logs
 *   as EMF, so stdout EMF would stay a log line there).
 */
import { Metrics as PowertoolsMetrics } from '@aws-lambda-powertools/metrics';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { type DimensionsOf, type MetricDef, NAMESPACE } from './catalog.js';

/** An Embedded Metric Format document, as Powertools serializes it. */
export interface EmfRecord {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [field: string]: unknown;
}

export type EmfSink = (record: EmfRecord) => void;

/** EMF keeps at most 100 values per metric per document: a timing flushes when it has that many. */
const MAX_VALUES = 100;
const TIMING_BUCKETS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000];

interface Series {
  def: MetricDef;
  dims: Record<string, string>;
  groupKey: string;
  /** This period (for CloudWatch): the sum, the last value, the timings. */
  sum: number;
  last: number;
  values: number[];
  touched: boolean;
  /** Since the process started: counter total, gauge value, timing count (what Prometheus shows too). */
  total: number;
  /** A declared counter: reported every period, as 0 when nothing happened (not as missing data). */
  always: boolean;
}

type PromMetric = Counter<string> | Gauge<string> | Histogram<string>;

/** `FeedFrames` -> `quotewatch_feed_frames_total` (`_total` for counters; timings are named ...Ms already). */
export function prometheusName(def: MetricDef): string {
  const snake = def.name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
  const suffix = def.kind === 'counter' ? '_total' : '';
  return `quotewatch_${snake}${suffix}`;
}

export interface TelemetryOptions {
  /** The component: the `service` label in Prometheus (one registry per process). */
  service: string;
  sinks?: readonly EmfSink[];
  /** Wall clock of the EMF timestamps (ms). */
  now?: () => number;
}

export class Telemetry {
  readonly registry = new Registry();
  private readonly series = new Map<string, Series>();
  private readonly prom = new Map<string, { def: MetricDef; metric: PromMetric }>();

  constructor(private readonly opts: TelemetryOptions) {
    this.registry.setDefaultLabels({ service: opts.service });
  }

  get service(): string {
    return this.opts.service;
  }

  /**
   * Declares counters that are reported every period, as 0 when nothing happened: an alarm or a graph then sees
   * "none" rather than missing data (reconnects, malformed frames, ...).
   */
  declare<M extends MetricDef>(def: M, dims?: DimensionsOf<M>): void {
    if (def.kind !== 'counter') throw new TypeError(`${def.name}: only counters are declared`);
    this.seriesOf(def, dims).always = true;
    (this.promOf(def) as Counter<string>).inc(this.seriesOf(def, dims).dims, 0);
  }

  count<M extends MetricDef>(def: M, value = 1, dims?: DimensionsOf<M>): void {
    const s = this.seriesOf(def, dims);
    s.sum += value;
    s.total += value;
    s.touched = true;
    (this.promOf(def) as Counter<string>).inc(s.dims, value);
  }

  gauge<M extends MetricDef>(def: M, value: number, dims?: DimensionsOf<M>): void {
    if (!Number.isFinite(value)) return; // CloudWatch and JSON have no NaN; an undefined figure is not sent
    const s = this.seriesOf(def, dims);
    s.last = value;
    s.total = value;
    s.touched = true;
    (this.promOf(def) as Gauge<string>).set(s.dims, value);
  }

  timing<M extends MetricDef>(def: M, ms: number, dims?: DimensionsOf<M>): void {
    if (!Number.isFinite(ms)) return;
    const s = this.seriesOf(def, dims);
    s.values.push(ms);
    s.total += 1;
    s.touched = true;
    (this.promOf(def) as Histogram<string>).observe(s.dims, ms);
    if (s.values.length >= MAX_VALUES) this.flush();
  }

  /**
   * Counter total, gauge value or timing count of `def` since the process started, summed over the dimension
   * values not given (the same figures the Prometheus registry exposes).
   */
  value<M extends MetricDef>(def: M, dims?: Partial<DimensionsOf<M>>): number {
    const want = Object.entries(dims ?? {});
    let total = 0;
    for (const s of this.series.values()) {
      if (s.def === def && want.every(([k, v]) => s.dims[k] === v)) total += s.total;
    }
    return total;
  }

  /** Every series by "Name{dim=value,...}" (for the ingestor's stats event). */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const s of this.series.values()) {
      const dims = Object.entries(s.dims).map(([k, v]) => `${k}=${v}`);
      out[dims.length ? `${s.def.name}{${dims.join(',')}}` : s.def.name] = s.total;
    }
    return out;
  }

  /**
   * Hands the period's aggregates to the EMF sinks, one record per dimension set (local-only metrics left out);
   * returns the records.
   */
  flush(): EmfRecord[] {
    const groups = new Map<string, Series[]>();
    for (const s of this.series.values()) {
      if (!s.touched && !s.always) continue;
      if (s.def.localOnly) {
        // Prometheus has it already (recorded as it happened); the period starts over.
        s.sum = 0;
        s.values = [];
        s.touched = false;
        continue;
      }
      const group = groups.get(s.groupKey) ?? [];
      group.push(s);
      groups.set(s.groupKey, group);
    }
    const records: EmfRecord[] = [];
    const timestamp = (this.opts.now ?? Date.now)();
    for (const group of groups.values()) {
      const m = new PowertoolsMetrics({ namespace: NAMESPACE });
      m.clearDefaultDimensions(); // no `service` dimension: the catalog says which dimensions a metric has
      m.setThrowOnEmptyMetrics(false);
      const dims = group[0]!.dims;
      if (Object.keys(dims).length > 0) m.addDimensions(dims);
      m.setTimestamp(timestamp);
      for (const s of group) {
        if (s.def.kind === 'counter') m.addMetric(s.def.name, s.def.unit, s.sum);
        else if (s.def.kind === 'gauge') m.addMetric(s.def.name, s.def.unit, s.last);
        else for (const v of s.values) m.addMetric(s.def.name, s.def.unit, v);
        s.sum = 0;
        s.values = [];
        s.touched = false;
      }
      const record = m.serializeMetrics() as unknown as EmfRecord;
      // No dimensions is the empty dimension set ([[]]), which CloudWatch reads as "publish without dimensions".
      for (const d of record._aws.CloudWatchMetrics) if (d.Dimensions.length === 0) d.Dimensions = [[]];
      records.push(record);
      m.clearMetrics();
    }
    for (const sink of this.opts.sinks ?? []) for (const r of records) sink(r);
    return records;
  }

  private seriesOf(def: MetricDef, dims: Record<string, string> | undefined): Series {
    const d = dims ?? {};
    const dimKey = def.dimensions.map((k) => `${k}=${d[k] ?? ''}`).join('\u0001');
    const key = `${def.name}\u0000${dimKey}`;
    let s = this.series.get(key);
    if (!s) {
      const missing = def.dimensions.filter((k) => typeof d[k] !== 'string' || d[k] === '');
      const extra = Object.keys(d).filter((k) => !def.dimensions.includes(k));
      if (missing.length || extra.length) {
        throw new TypeError(`${def.name}: dimensions must be exactly [${def.dimensions.join(', ')}]`);
      }
      const ordered = Object.fromEntries(def.dimensions.map((k) => [k, d[k]!]));
      s = {
        def,
        dims: ordered,
        groupKey: dimKey ? `${def.dimensions.join(',')}|${dimKey}` : '',
        sum: 0,
        last: Number.NaN,
        values: [],
        touched: false,
        total: 0,
        always: false,
      };
      this.series.set(key, s);
    }
    return s;
  }

  private promOf(def: MetricDef): PromMetric {
    let metric = this.prom.get(def.name)?.metric;
    if (!metric) {
      const config = {
        name: prometheusName(def),
        help: `${def.description} (${def.unit})`,
        labelNames: [...def.dimensions],
        registers: [this.registry],
      };
      metric =
        def.kind === 'counter'
          ? new Counter(config)
          : def.kind === 'gauge'
            ? new Gauge(config)
            : new Histogram({ ...config, buckets: TIMING_BUCKETS_MS });
      this.prom.set(def.name, { def, metric });
    }
    return metric;
  }
}
