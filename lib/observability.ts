import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  Alarm,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { TARGETS } from '../src/model/types.js';
import { FEED, type MetricDef, NAMESPACE, PUSH, TRAINING, WORKER } from '../src/telemetry/catalog.js';
import type { IngestorService, WorkerService } from './fargate-services.js';
import type { MarketStream } from './market-stream.js';
import type { PredictionApi } from './prediction-api.js';
import type { PushApi } from './push-api.js';
import type { TrainingPipeline } from './training-pipeline.js';
import { InvalidPropError, requireInt } from './validate.js';

export interface ObservabilityProps {
  readonly stream: MarketStream;
  readonly ingestor: IngestorService;
  readonly worker: WorkerService;
  readonly api: PredictionApi;
  readonly training?: TrainingPipeline;
  /** The dashboard's push: its failed posts are alarmed. */
  readonly push?: PushApi;
  /** Failed posts (not 410 Gone) per minute that raise the push alarm, 3 minutes out of 5. @default 20 */
  readonly failedPostsPerMinute?: number;
  /** Email addresses subscribed to the alarm topic. @default none */
  readonly alarmEmails?: readonly string[];
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** The feed counts as silent when the newest exchange heartbeat is older than this. @default 30 */
  readonly feedSilentAfterS?: number;
  /** No prediction of a target for this many minutes raises an alarm. @default 3 */
  readonly noPredictionMinutes?: number;
  /** Live ROC-AUC below the model's test interval for this many minutes raises an alarm. @default 30 */
  readonly qualityMinutes?: number;
}

const minute = Duration.minutes(1);

/** A catalog metric with known dimension values (src/telemetry/catalog.ts): what the code emits, by name. */
/** A local-only metric never reaches CloudWatch: a widget or alarm on it would show nothing. */
function notLocal(def: MetricDef): void {
  if (def.localOnly)
    throw new InvalidPropError('Observability', def.name, 'is local-only (catalog): not in CloudWatch');
}

export function catalogMetric(
  def: MetricDef,
  statistic: string,
  dimensions: Record<string, string> = {},
  label?: string,
): Metric {
  notLocal(def);
  return new Metric({
    namespace: NAMESPACE,
    metricName: def.name,
    dimensionsMap: dimensions,
    statistic,
    period: minute,
    ...(label ? { label } : {}),
  });
}

/** Every series of a catalog metric whatever its dimension values (a SEARCH: one line per value set). */
export function catalogSearch(def: MetricDef, statistic: string, label: string): MathExpression {
  notLocal(def);
  const schema = [NAMESPACE, ...def.dimensions].join(',');
  return new MathExpression({
    expression: `SEARCH('{${schema}} MetricName="${def.name}"', '${statistic}', 60)`,
    label,
    period: minute,
    usingMetrics: {},
  });
}

/**
 * One CloudWatch dashboard for the whole path, the alarms on what the code emits (src/telemetry/catalog.ts; every
 * widget and alarm metric is checked against the running system's records by test/telemetry.contract.test.ts),
 * and one SNS topic every alarm notifies.
 */
export class Observability extends Construct {
  readonly dashboard: Dashboard;
  readonly alarmTopic: Topic;
  /** The alarm topic's encryption key. */
  readonly alarmKey: Key;
  readonly alarms: readonly Alarm[];

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    for (const email of props.alarmEmails ?? []) {
      if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) {
        throw new InvalidPropError('Observability', 'alarmEmails', `not an email address: ${email}`);
      }
    }
    const silentS = requireInt('Observability', 'feedSilentAfterS', props.feedSilentAfterS ?? 30, 5, 3600);
    const quietMin = requireInt(
      'Observability',
      'noPredictionMinutes',
      props.noPredictionMinutes ?? 3,
      1,
      60,
    );
    const qualityMin = requireInt('Observability', 'qualityMinutes', props.qualityMinutes ?? 30, 5, 1440);
    const failedPosts = requireInt(
      'Observability',
      'failedPostsPerMinute',
      props.failedPostsPerMinute ?? 20,
      1,
      1_000_000,
    );
    super(scope, id);
    const { stream, ingestor, worker, api, training } = props;

    // Encrypted at rest with a customer-managed key: CloudWatch alarms cannot publish to a topic under the
    // AWS-managed SNS key (its policy cannot be changed to let cloudwatch.amazonaws.com use it). The topic
    // policy requiring TLS satisfies cdk-nag SNS3, the key SNS2.
    this.alarmKey = new Key(this, 'AlarmTopicKey', {
      description: 'QuoteWatch alarm topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.alarmKey.addToResourcePolicy(
      new PolicyStatement({
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'],
      }),
    );
    this.alarmTopic = new Topic(this, 'AlarmTopic', {
      displayName: 'QuoteWatch alarms',
      enforceSSL: true,
      masterKey: this.alarmKey,
    });
    for (const email of props.alarmEmails ?? []) {
      this.alarmTopic.addSubscription(new EmailSubscription(email));
    }

    const own = props.alarmsEnabled === false ? [] : this.pathAlarms({ silentS, quietMin, qualityMin });
    this.alarms = [
      ...stream.alarms,
      ...ingestor.alarms,
      ...worker.alarms,
      ...api.alarms,
      ...(training?.alarms ?? []),
      ...own,
      ...(props.push && props.alarmsEnabled !== false ? [this.pushAlarm(failedPosts)] : []),
    ];
    const action = new SnsAction(this.alarmTopic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    const graph = (title: string, left: IMetric[], right: IMetric[] = []) =>
      new GraphWidget({ title, left, right, width: 12, height: 6 });
    const s = stream.stream;
    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown:
          `# QuoteWatch\nexchange -> ingestor -> Kinesis -> worker -> DynamoDB / S3 -> API. API: ${api.url}\n` +
          `Alarms: feed silent > ${silentS} s, worker behind the stream (Kinesis' own lag metric), no prediction for ${quietMin} min, ` +
          `live ROC-AUC below the model's test interval for ${qualityMin} min, book mismatches with the exchange's repeating, API 5xx.`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph(
        'Feed: messages/s, heartbeat age (s)',
        [catalogMetric(FEED.messagesPerSecond, 'Average', {}, 'messages/s')],
        [catalogMetric(FEED.heartbeatAge, 'Maximum', {}, 'heartbeat age s')],
      ),
      graph(
        'Feed: reconnects, resyncs, producer retries, buffer',
        [
          catalogMetric(FEED.reconnects, 'Sum', {}, 'reconnects'),
          catalogMetric(FEED.resyncs, 'Sum', {}, 'resyncs'),
          catalogMetric(FEED.producerRetries, 'Sum', {}, 'producer retries'),
          catalogMetric(FEED.malformed, 'Sum', {}, 'malformed frames'),
          catalogMetric(FEED.errors, 'Sum', {}, 'exchange errors'),
        ],
        [catalogMetric(FEED.bufferDepth, 'Maximum', {}, 'buffer depth')],
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'Worker: behind the stream tip (ms); ticks, duplicates and bad records per minute',
        [catalogMetric(WORKER.millisBehindLatest, 'Maximum', {}, 'ms behind')],
        [
          catalogMetric(WORKER.ticks, 'Sum', {}, 'ticks'),
          catalogMetric(WORKER.duplicates, 'Sum', {}, 'duplicate events'),
          catalogMetric(WORKER.badRecords, 'Sum', {}, 'bad records (dead-lettered)'),
          catalogMetric(WORKER.bookMismatches, 'Sum', {}, "book mismatches with the exchange's"),
        ],
      ),
      graph('Worker: exchange -> DynamoDB, batch and inference (ms)', [
        catalogMetric(WORKER.latencyMs, 'p50', {}, 'latency p50'),
        catalogMetric(WORKER.latencyMs, 'p99', {}, 'latency p99'),
        catalogMetric(WORKER.batchMs, 'p99', {}, 'batch p99'),
        catalogSearch(WORKER.inferenceMs, 'p99', 'inference p99'),
      ]),
    );
    this.dashboard.addWidgets(
      graph(
        'Live quality: ROC-AUC and PR-AUC by model version',
        [
          catalogSearch(WORKER.liveAuc, 'Average', 'ROC-AUC'),
          catalogSearch(WORKER.livePrAuc, 'Average', 'PR-AUC'),
        ],
        [catalogSearch(WORKER.liveAucShortfall, 'Maximum', 'below test interval')],
      ),
      graph(
        'Live quality: Brier, calibration error, base rate',
        [
          catalogSearch(WORKER.liveBrier, 'Average', 'Brier'),
          catalogSearch(WORKER.liveCalibrationError, 'Average', 'calibration error'),
        ],
        [catalogSearch(WORKER.liveBaseRate, 'Average', 'base rate')],
      ),
    );
    this.dashboard.addWidgets(
      graph(
        'API: requests / errors',
        [api.api.metricCount({ period: minute })],
        [api.api.metricClientError({ period: minute }), api.api.metricServerError({ period: minute })],
      ),
      graph('API: latency (ms)', [
        api.api.metricLatency({ period: minute, statistic: 'p50' }),
        api.api.metricLatency({ period: minute, statistic: 'p99' }),
        api.routeFunctions.Predict.metricDuration({
          period: minute,
          statistic: 'p99',
          label: '/predict Lambda p99',
        }),
      ]),
    );
    this.dashboard.addWidgets(
      graph('Services: CPU %', [
        ingestor.service.metricCpuUtilization({ period: minute }),
        worker.service.metricCpuUtilization({ period: minute }),
      ]),
      graph(
        'Services: memory % / running tasks',
        [
          ingestor.service.metricMemoryUtilization({ period: minute }),
          worker.service.metricMemoryUtilization({ period: minute }),
        ],
        [
          ingestor.metricRunningTasks(),
          worker.metricRunningTasks(),
          s.metricIncomingRecords({ period: minute }),
        ],
      ),
    );
    if (props.push) {
      this.dashboard.addWidgets(
        graph(
          'Push: posts that failed (not 410 Gone); WebSocket API messages, connects',
          [catalogMetric(PUSH.failedPosts, 'Sum', {}, 'failed posts')],
          [
            props.push.api.metric('MessageCount', { period: minute, statistic: 'Sum' }),
            props.push.api.metric('ConnectCount', { period: minute, statistic: 'Sum' }),
          ],
        ),
      );
    }
    if (training) {
      const sm = training.stateMachine;
      this.dashboard.addWidgets(
        graph(
          'Training: runs by decision, duration (s)',
          [catalogSearch(TRAINING.runs, 'Sum', 'runs'), sm.metricFailed({ period: Duration.hours(1) })],
          [catalogSearch(TRAINING.durationS, 'Maximum', 'duration s')],
        ),
      );
    }
  }

  /** Posts to dashboards failing (throttled, timed out, refused; a gone connection is normal, not counted). */
  private pushAlarm(perMinute: number): Alarm {
    return new Alarm(this, 'PushFailedPostsAlarm', {
      alarmDescription: `Push: more than ${perMinute} posts a minute failed, 3 minutes out of 5`,
      metric: catalogMetric(PUSH.failedPosts, 'Sum'),
      threshold: perMinute,
      evaluationPeriods: 5,
      datapointsToAlarm: 3,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }

  /** The alarms on the path's own metrics; each threshold is a prop (README "Observability"). */
  private pathAlarms(t: { silentS: number; quietMin: number; qualityMin: number }): Alarm[] {
    // The worker's lag is alarmed by the stream on Kinesis' own metric for the way it reads (watchConsumer).
    const alarms = [
      new Alarm(this, 'FeedSilentAlarm', {
        alarmDescription: `No exchange heartbeat for more than ${t.silentS} s (or no feed stats at all)`,
        metric: catalogMetric(FEED.heartbeatAge, 'Maximum'),
        threshold: t.silentS,
        evaluationPeriods: 3,
        comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No stats means no ingestor: as bad as silence.
        treatMissingData: TreatMissingData.BREACHING,
      }),
    ];
    alarms.push(
      new Alarm(this, 'BookMismatchAlarm', {
        alarmDescription:
          "Our order book differed from the exchange's own in 2 minutes out of 15 (each mismatch resubscribes that product's book: a repeat means the repair is not holding)",
        metric: catalogMetric(WORKER.bookMismatches, 'Sum'),
        threshold: 1,
        evaluationPeriods: 15,
        datapointsToAlarm: 2,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        // No check judged, or none mismatched: nothing to say.
        treatMissingData: TreatMissingData.NOT_BREACHING,
      }),
    );
    for (const target of TARGETS) {
      const name = target.replace(/(^|_)(\w)/g, (_, __, c: string) => c.toUpperCase());
      alarms.push(
        new Alarm(this, `NoPredictions${name}Alarm`, {
          alarmDescription: `No ${target} prediction for ${t.quietMin} minutes`,
          metric: catalogMetric(WORKER.predictions, 'Sum', { Target: target }),
          threshold: 1,
          evaluationPeriods: t.quietMin,
          comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
          treatMissingData: TreatMissingData.BREACHING,
        }),
        new Alarm(this, `LiveQuality${name}Alarm`, {
          alarmDescription: `Live ${target} ROC-AUC below the served model's test interval for ${t.qualityMin} minutes`,
          metric: catalogMetric(WORKER.liveAucShortfall, 'Minimum', { Target: target }),
          threshold: 0,
          evaluationPeriods: t.qualityMin,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          // No figure yet (too few labels, or a model without an interval) is not a failure.
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
    }
    return alarms;
  }
}
