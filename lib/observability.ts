import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { type Alarm, Dashboard, GraphWidget, type IMetric, TextWidget } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import type { IngestorService, WorkerService } from './fargate-services.js';
import type { MarketStream } from './market-stream.js';
import type { PredictionApi } from './prediction-api.js';
import type { TrainingPipeline } from './training-pipeline.js';
import { InvalidPropError } from './validate.js';

export interface ObservabilityProps {
  readonly stream: MarketStream;
  readonly ingestor: IngestorService;
  readonly worker: WorkerService;
  readonly api: PredictionApi;
  readonly training?: TrainingPipeline;
  /** Email addresses subscribed to the alarm topic. @default none */
  readonly alarmEmails?: readonly string[];
}

/** One CloudWatch dashboard for the whole path and one SNS topic every alarm notifies. */
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

    this.alarms = [
      ...stream.alarms,
      ...ingestor.alarms,
      ...worker.alarms,
      ...api.alarms,
      ...(training?.alarms ?? []),
    ];
    const action = new SnsAction(this.alarmTopic);
    for (const alarm of this.alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    const minute = Duration.minutes(1);
    const graph = (title: string, left: IMetric[], right: IMetric[] = []) =>
      new GraphWidget({ title, left, right, width: 12, height: 6 });
    const s = stream.stream;
    this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
    this.dashboard.addWidgets(
      new TextWidget({
        markdown: `# QuoteWatch\nexchange -> ingestor -> Kinesis -> worker -> DynamoDB / S3 -> API. API: ${api.url}`,
        width: 24,
        height: 2,
      }),
    );
    this.dashboard.addWidgets(
      graph(
        'Stream: records in / out',
        [s.metricIncomingRecords({ period: minute }), s.metricGetRecordsSuccess({ period: minute })],
        [s.metricWriteProvisionedThroughputExceeded({ period: minute })],
      ),
      graph('Stream: consumer lag (ms)', [s.metricGetRecordsIteratorAgeMilliseconds({ period: minute })]),
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
        [ingestor.metricRunningTasks(), worker.metricRunningTasks()],
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
        api.routeFunctions.Predict.metricDuration({ period: minute, statistic: 'p99' }),
      ]),
    );
    if (training) {
      const sm = training.stateMachine;
      this.dashboard.addWidgets(
        graph('Training runs', [
          sm.metricSucceeded({ period: Duration.hours(1) }),
          sm.metricFailed({ period: Duration.hours(1) }),
        ]),
      );
    }
  }
}
