import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  type IMetric,
  Metric,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { type IStreamConsumer, Stream, StreamEncryption, StreamMode } from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';
import { STREAM, type StreamDef } from '../src/resources.js';
import { InvalidPropError, requireInt } from './validate.js';

export interface MarketStreamProps {
  /** The stream definition; defaults to STREAM from src/resources.ts (shardCount and retention may be overridden). */
  readonly definition?: StreamDef;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** Consumer lag that raises the alarm (see watchConsumer). @default 60_000 */
  readonly iteratorAgeThresholdMs?: number;
  /** Share of the shards' write limits (1,000 records/s and 1 MiB/s each) that raises the capacity alarms. @default 0.8 */
  readonly capacityAlarmShare?: number;
  /** @default RemovalPolicy.RETAIN (CDK's default for a stream) */
  readonly removalPolicy?: RemovalPolicy;
}

/** A shard's write limits (Kinesis Data Streams quotas). */
export const SHARD_WRITE_LIMITS = { recordsPerS: 1000, bytesPerS: 1024 * 1024 } as const;

/**
 * The market-data Kinesis stream the ingestor writes and the worker reads, with throttling and capacity alarms
 * sized by its shard count, and a consumer-lag alarm once watchConsumer() says how the worker reads.
 * With `definition: FEATURES_STREAM` it is also the optional features stream the worker writes.
 */
export class MarketStream extends Construct {
  readonly stream: Stream;
  readonly definition: StreamDef;
  readonly alarms: Alarm[] = [];
  private readonly iteratorAgeMs: number;
  private readonly alarmsEnabled: boolean;

  constructor(scope: Construct, id: string, props: MarketStreamProps = {}) {
    const def = props.definition ?? STREAM;
    requireInt('MarketStream', 'definition.shardCount', def.shardCount, 1, 500);
    // Kinesis accepts 24 h .. 365 days.
    requireInt('MarketStream', 'definition.retentionHours', def.retentionHours, 24, 8760);
    const iteratorAgeMs = requireInt(
      'MarketStream',
      'iteratorAgeThresholdMs',
      props.iteratorAgeThresholdMs ?? 60_000,
      1_000,
      7 * 24 * 3_600_000,
    );
    const share = props.capacityAlarmShare ?? 0.8;
    if (!(share > 0 && share <= 1))
      throw new InvalidPropError('MarketStream', 'capacityAlarmShare', `expected (0, 1], got ${share}`);
    super(scope, id);
    this.definition = def;
    this.iteratorAgeMs = iteratorAgeMs;
    this.alarmsEnabled = props.alarmsEnabled ?? true;

    this.stream = new Stream(this, def.logicalId, {
      streamMode: StreamMode.PROVISIONED,
      shardCount: def.shardCount,
      retentionPeriod: Duration.hours(def.retentionHours),
      encryption: StreamEncryption.MANAGED,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    if (this.alarmsEnabled) {
      const minute = Duration.minutes(1);
      const records = Math.round(share * def.shardCount * SHARD_WRITE_LIMITS.recordsPerS * 60);
      const bytes = Math.round(share * def.shardCount * SHARD_WRITE_LIMITS.bytesPerS * 60);
      this.alarms.push(
        new Alarm(this, 'WriteThrottledAlarm', {
          alarmDescription: 'Ingestor writes are throttled: the stream needs more shards',
          metric: this.stream.metricWriteProvisionedThroughputExceeded({ statistic: 'Sum', period: minute }),
          threshold: 0,
          evaluationPeriods: 3,
          datapointsToAlarm: 2,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
        new Alarm(this, 'RecordsNearCapacityAlarm', {
          alarmDescription: `Incoming records above ${share * 100}% of ${def.shardCount} shard(s)' 1,000/s each: add shards (-c shards)`,
          metric: this.stream.metricIncomingRecords({ statistic: 'Sum', period: minute }),
          threshold: records,
          evaluationPeriods: 5,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
        new Alarm(this, 'BytesNearCapacityAlarm', {
          alarmDescription: `Incoming bytes above ${share * 100}% of ${def.shardCount} shard(s)' 1 MiB/s each: add shards (-c shards)`,
          metric: this.stream.metricIncomingBytes({ statistic: 'Sum', period: minute }),
          threshold: bytes,
          evaluationPeriods: 5,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }

  /** How far behind the stream the worker is, in ms, as Kinesis reports it for the way it reads. */
  metricConsumerLag(
    reader: { mode: 'polling' } | { mode: 'fanout'; consumer: IStreamConsumer },
    opts: { period?: Duration } = {},
  ): IMetric {
    const period = opts.period ?? Duration.minutes(1);
    if (reader.mode === 'polling') {
      return this.stream.metricGetRecordsIteratorAgeMilliseconds({ statistic: 'Maximum', period });
    }
    // GetRecords' iterator age never arrives for a fan-out reader: Kinesis reports MillisBehindLatest per consumer.
    return new Metric({
      namespace: 'AWS/Kinesis',
      metricName: 'SubscribeToShardEvent.MillisBehindLatest',
      dimensionsMap: {
        StreamName: this.stream.streamName,
        ConsumerName: reader.consumer.streamConsumerName,
      },
      statistic: 'Maximum',
      period,
    });
  }

  /** Adds the consumer-lag alarm for the way the worker reads (polling GetRecords or an enhanced fan-out consumer). */
  watchConsumer(reader: { mode: 'polling' } | { mode: 'fanout'; consumer: IStreamConsumer }): void {
    if (!this.alarmsEnabled) return;
    this.alarms.push(
      new Alarm(this, 'IteratorAgeAlarm', {
        alarmDescription: `Worker is more than ${this.iteratorAgeMs} ms behind the market stream (${reader.mode})`,
        metric: this.metricConsumerLag(reader),
        threshold: this.iteratorAgeMs,
        evaluationPeriods: 3,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No consumer reading means no datapoints: the worker's no-running-task alarm covers that case.
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );
  }
}
