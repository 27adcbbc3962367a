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
}

/**
 * The market-data Kinesis stream the ingestor writes and the worker reads, with a throttling alarm. (The worker's
 * lag is alarmed on its own MillisBehindLatest, lib/observability.ts: with enhanced fan-out GetRecords'
 * IteratorAgeMilliseconds never arrives.)
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
