/**
 * The Fargate tasks' way into CloudWatch metrics: the EMF records of src/telemetry/telemetry.ts, turned into
 * PutMetricData calls (one per minute, at most 1,000 datums each). Chosen over a CloudWatch agent sidecar: no
 * second container per task, and the calls cost ~$0.01 per 1,000 (about 45,000 a month per task at one a
 * minute, priced in `quotewatch cost`). A failed call is logged and its datums kept for the next one, up to a
 * bound, so a CloudWatch outage costs the oldest points, never the process.
 */
import {
  type CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type StandardUnit,
} from '@aws-sdk/client-cloudwatch';
import { describeError, type Logger } from '../log.js';
import type { EmfRecord, EmfSink } from './telemetry.js';

/** PutMetricData limits: datums per call, values per datum. */
const MAX_DATUMS = 1000;
const MAX_VALUES = 150;

/** The datums of one EMF record: one per metric, its dimensions from the record's fields. */
export function emfToDatums(record: EmfRecord): { namespace: string; datums: MetricDatum[] }[] {
  const timestamp = new Date(record._aws.Timestamp);
  return record._aws.CloudWatchMetrics.map((directive) => {
    const names = directive.Dimensions[0] ?? [];
    const dimensions = names.map((Name) => ({ Name, Value: String(record[Name]) }));
    const datums: MetricDatum[] = [];
    for (const { Name, Unit } of directive.Metrics) {
      const raw = record[Name];
      const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is number => typeof v === 'number');
      for (let i = 0; i < values.length; i += MAX_VALUES) {
        datums.push({
          MetricName: Name,
          Dimensions: dimensions,
          Timestamp: timestamp,
          Unit: Unit as StandardUnit,
          Values: values.slice(i, i + MAX_VALUES),
        });
      }
    }
    return { namespace: directive.Namespace, datums };
  });
}

export interface CloudWatchSinkOptions {
  client: Pick<CloudWatchClient, 'send'>;
  log: Logger;
  /** Datums kept while CloudWatch cannot be reached; the oldest go first. Default 20,000. */
  maxBuffered?: number;
}

export class CloudWatchSink {
  private buffered = new Map<string, MetricDatum[]>();
  private count = 0;
  /** Datums dropped because the buffer was full. */
  dropped = 0;
  private sending: Promise<void> = Promise.resolve();

  constructor(private readonly opts: CloudWatchSinkOptions) {}

  readonly sink: EmfSink = (record) => {
    for (const { namespace, datums } of emfToDatums(record)) {
      const list = this.buffered.get(namespace) ?? [];
      list.push(...datums);
      this.buffered.set(namespace, list);
      this.count += datums.length;
    }
    this.trim();
  };

  /** Sends everything buffered (calls are serialized). */
  send(): Promise<void> {
    this.sending = this.sending.then(() => this.sendNow());
    return this.sending;
  }

  private async sendNow(): Promise<void> {
    for (const [namespace, datums] of this.buffered) {
      while (datums.length > 0) {
        const chunk = datums.slice(0, MAX_DATUMS);
        try {
          await this.opts.client.send(new PutMetricDataCommand({ Namespace: namespace, MetricData: chunk }));
        } catch (err) {
          this.opts.log('warn', 'PutMetricData failed; datums kept for the next flush', {
            namespace,
            datums: datums.length,
            error: describeError(err),
          });
          return;
        }
        datums.splice(0, chunk.length);
        this.count -= chunk.length;
      }
    }
  }

  private trim(): void {
    const max = this.opts.maxBuffered ?? 20_000;
    for (const datums of this.buffered.values()) {
      while (this.count > max && datums.length > 0) {
        datums.shift();
        this.count--;
        this.dropped++;
      }
    }
  }
}
