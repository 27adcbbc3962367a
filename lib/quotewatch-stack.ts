import { CfnOutput, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { StreamConsumer } from 'aws-cdk-lib/aws-kinesis';
import type { Construct } from 'constructs';
import {
  type CoreSettings,
  DEFAULT_CORE,
  type DeploymentSettings,
  readDeploymentContext,
} from '../src/config.js';
import { FEATURES_STREAM, STREAM, TABLES } from '../src/resources.js';
import { IngestorService, ServiceCluster, WORKER_CONSUMER_NAME, WorkerService } from './fargate-services.js';
import { LakeCatalog } from './lake-catalog.js';
import { MarketStream } from './market-stream.js';
import { Observability } from './observability.js';
import { PredictionApi } from './prediction-api.js';
import { PushApi } from './push-api.js';
import { Storage } from './storage.js';
import { TrainingPipeline } from './training-pipeline.js';
import { requireConfig, requireCoreSettings } from './validate.js';

export interface QuoteWatchStackProps extends StackProps {
  /**
   * The deployment's choices and sizes. @default read from CDK context (`-c products=... -c shards=...`, cdk.json)
   * by readDeploymentContext in src/config.ts, the same reader `quotewatch cost` prices.
   */
  readonly deployment?: DeploymentSettings;
  /** @default DEFAULT_CORE of src/config.ts with the deployment's products */
  readonly core?: CoreSettings;
  /** @default COINBASE_FEEDS.advancedTrade of src/config.ts */
  readonly feedUrl?: string;
  readonly alarmEmails?: readonly string[];
  /** Commit the API reports on GET /version. */
  readonly buildSha?: string;
}

/** The whole deployed QuoteWatch: stream, storage, ingestor + worker on Fargate, API, training, observability. */
export class QuoteWatchStack extends Stack {
  readonly deployment: DeploymentSettings;
  readonly marketStream: MarketStream;
  /** The enhanced fan-out consumer the workers read through; undefined when they poll. */
  readonly streamConsumer: StreamConsumer | undefined;
  readonly storage: Storage;
  readonly services: ServiceCluster;
  readonly ingestor: IngestorService;
  readonly worker: WorkerService;
  readonly api: PredictionApi;
  readonly training: TrainingPipeline;
  readonly observability: Observability;
  readonly lakeCatalog: LakeCatalog;
  /** The optional features stream; undefined unless enabled (`-c featuresStream=true`). */
  readonly featuresStream: MarketStream | undefined;
  /** The dashboard's push (WebSocket API); undefined with `-c push=false`. */
  readonly push: PushApi | undefined;

  constructor(scope: Construct, id: string, props: QuoteWatchStackProps = {}) {
    const deployment =
      props.deployment ??
      requireConfig('QuoteWatchStack', 'context', () => readDeploymentContext(scope.node.getAllContext()));
    const core = props.core ?? { ...DEFAULT_CORE, symbols: deployment.products };
    requireCoreSettings('QuoteWatchStack', core);
    super(scope, id, props);
    this.deployment = deployment;

    // The stream holds at most streamRetentionHours of what the lake keeps anyway: it goes with the stack.
    this.marketStream = new MarketStream(this, 'Stream', {
      definition: {
        ...STREAM,
        shardCount: deployment.shards,
        retentionHours: deployment.streamRetentionHours,
      },
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // Registered by CloudFormation, not by the worker at run time: `cdk destroy` removes it with the stream.
    this.streamConsumer =
      deployment.consumer === 'fanout'
        ? new StreamConsumer(this, 'WorkerConsumer', {
            stream: this.marketStream.stream,
            streamConsumerName: WORKER_CONSUMER_NAME,
          })
        : undefined;
    this.streamConsumer?.applyRemovalPolicy(RemovalPolicy.DESTROY);
    this.storage = new Storage(this, 'Storage', { deployment });
    const { latestTable, registryTable, checkpointTable, lakeBucket, modelBucket } = this.storage;
    this.lakeCatalog = new LakeCatalog(this, 'LakeCatalog', { lakeBucket, products: core.symbols });
    this.services = new ServiceCluster(this, 'Services', { containerInsights: deployment.containerInsights });
    const cluster = this.services.cluster;
    this.ingestor = new IngestorService(this, 'Ingestor', {
      cluster,
      core,
      deployment,
      stream: this.marketStream.stream,
      lakeBucket,
      latestTable,
      feedUrl: props.feedUrl,
    });
    this.worker = new WorkerService(this, 'Worker', {
      cluster,
      core,
      deployment,
      stream: this.marketStream.stream,
      consumer: this.streamConsumer,
      latestTable,
      checkpointTable,
      registryTable,
      lakeBucket,
      modelBucket,
    });
    this.marketStream.watchConsumer(
      this.streamConsumer ? { mode: 'fanout', consumer: this.streamConsumer } : { mode: 'polling' },
    );
    this.featuresStream = deployment.featuresStream ? this.addFeaturesStream(deployment) : undefined;
    this.api = new PredictionApi(this, 'Api', {
      core,
      access: deployment.api,
      latestTable,
      registryTable,
      modelBucket,
      buildSha: props.buildSha,
      logRetentionDays: deployment.logRetentionDays,
    });
    this.push = deployment.push.enabled ? this.addPush(deployment, core) : undefined;
    this.training = new TrainingPipeline(this, 'Training', {
      cluster,
      image: this.worker.image,
      lakeBucket,
      modelBucket,
      registryTable,
      logRetentionDays: deployment.logRetentionDays,
      schedule: deployment.trainingSchedule,
      notificationEmails: props.alarmEmails,
    });
    this.observability = new Observability(this, 'Observability', {
      stream: this.marketStream,
      ingestor: this.ingestor,
      worker: this.worker,
      api: this.api,
      training: this.training,
      push: this.push,
      alarmEmails: props.alarmEmails,
    });

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.url,
      description: 'Dashboard at /, API at /latest etc.',
    });
    new CfnOutput(this, 'ModelUri', { value: this.storage.modelUri });
    new CfnOutput(this, 'TrainingStateMachine', { value: this.training.stateMachine.stateMachineArn });
    new CfnOutput(this, 'TrainingTopic', {
      value: this.training.notificationTopic.topicArn,
      description: "Each training run's end: promoted, kept or failed",
    });
    new CfnOutput(this, 'LakeBucket', { value: lakeBucket.bucketName });
    new CfnOutput(this, 'ModelBucket', { value: modelBucket.bucketName });
    new CfnOutput(this, 'RegistryTable', { value: registryTable.tableName });
    new CfnOutput(this, 'DashboardName', { value: this.observability.dashboard.dashboardName });
    if (this.featuresStream) {
      new CfnOutput(this, 'FeaturesStreamName', { value: this.featuresStream.stream.streamName });
    }
    if (this.push) new CfnOutput(this, 'PushUrl', { value: this.push.url });
  }

  /**
   * The WebSocket API the dashboard subscribes to (its URL in the Dashboard function's WS_URL), the connections
   * table its handlers write, and the worker's publisher: PUSH_ENDPOINT, the table, and POST on @connections only.
   */
  private addPush(deployment: DeploymentSettings, core: CoreSettings): PushApi {
    const stack = Stack.of(this);
    const dashboardOrigin = `https://${this.api.api.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`;
    const push = new PushApi(this, 'Push', {
      core,
      connectionsTable: this.storage.connectionsTable,
      latestTable: this.storage.latestTable,
      access: deployment.api,
      push: deployment.push,
      origins: [dashboardOrigin, ...deployment.api.corsOrigins],
      logRetentionDays: deployment.logRetentionDays,
    });
    this.api.routeFunctions.Dashboard.addEnvironment('WS_URL', push.url);
    const container = this.worker.taskDefinition.defaultContainer!;
    container.addEnvironment('PUSH_ENDPOINT', push.callbackUrl);
    container.addEnvironment(TABLES.connections.env, this.storage.connectionsTable.tableName);
    // The publisher scans the table and deletes connections API Gateway calls gone (giving back their counts).
    this.storage.connectionsTable.grantReadWriteData(this.worker.taskDefinition.taskRole);
    push.grantPost(this.worker.taskDefinition.taskRole, this.worker.taskDefinition);
    return push;
  }

  /** The features stream, written by the worker only (PutRecord(s), nothing else), named in its FEATURES_STREAM. */
  private addFeaturesStream(deployment: DeploymentSettings): MarketStream {
    // No alarms: nobody is required to read it, and a lagging reader is that reader's concern.
    const features = new MarketStream(this, 'Features', {
      definition: { ...FEATURES_STREAM, retentionHours: deployment.streamRetentionHours },
      alarmsEnabled: false,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.worker.taskDefinition.defaultContainer!.addEnvironment(
      FEATURES_STREAM.env,
      features.stream.streamName,
    );
    this.worker.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['kinesis:PutRecord', 'kinesis:PutRecords'],
        resources: [features.stream.streamArn],
      }),
    );
    return features;
  }
}
