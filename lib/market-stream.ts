import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { Stream, StreamEncryption, StreamMode } from 'aws-cdk-lib/aws-kinesis';
import { Construct } from 'constructs';
import { STREAM, type StreamDef } from '../src/resources.js';
import { requireInt } from './validate.js';

export interface MarketStreamProps {
  /** The stream definition; defaults to STREAM from src/resources.ts. */
  readonly definition?: StreamDef;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** Consumer lag (GetRecords.IteratorAgeMilliseconds) that raises the alarm. @default 60_000 */
  readonly iteratorAgeThresholdMs?: number;
}

/**
 * The market-data Kinesis stream the ingestor writes and the worker reads, with lag and throttling alarms.
 * With `definition: FEATURES_STREAM` it is also the optional features stream the worker writes.
 */
export class MarketStream extends Construct {
  readonly stream: Stream;
  readonly definition: StreamDef;
  readonly alarms: Alarm[] = [];

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
    super(scope, id);
    this.definition = def;

    this.stream = new Stream(this, def.logicalId, {
      streamMode: StreamMode.PROVISIONED,
      shardCount: def.shardCount,
      retentionPeriod: Duration.hours(def.retentionHours),
      encryption: StreamEncryption.MANAGED,
    });

    if (props.alarmsEnabled ?? true) {
      this.alarms.push(
        new Alarm(this, 'IteratorAgeAlarm', {
          alarmDescription: `Worker is more than ${iteratorAgeMs} ms behind the market stream`,
          metric: this.stream.metricGetRecordsIteratorAgeMilliseconds({
            statistic: 'Maximum',
            period: Duration.minutes(1),
          }),
          threshold: iteratorAgeMs,
          evaluationPeriods: 3,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          // No consumer reading means no datapoints: the worker's running-task alarm covers that case.
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
        new Alarm(this, 'WriteThrottledAlarm', {
          alarmDescription: 'Ingestor writes are throttled: the stream needs more shards',
          metric: this.stream.metricWriteProvisionedThroughputExceeded({
            statistic: 'Sum',
            period: Duration.minutes(1),
          }),
          threshold: 0,
          evaluationPeriods: 3,
          datapointsToAlarm: 2,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }
}
