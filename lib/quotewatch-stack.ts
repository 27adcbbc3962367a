import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { Construct } from 'constructs';
import { type CoreSettings, DEFAULT_CORE } from '../src/config.js';
import { FEATURES_STREAM } from '../src/resources.js';
import { IngestorService, ServiceCluster, WorkerService } from './fargate-services.js';
import { LakeCatalog } from './lake-catalog.js';
import { MarketStream } from './market-stream.js';
import { Observability } from './observability.js';
import { PredictionApi } from './prediction-api.js';
import { Storage } from './storage.js';
import { TrainingPipeline } from './training-pipeline.js';
import { requireCoreSettings } from './validate.js';

export interface QuoteWatchStackProps extends StackProps {
  /** @default DEFAULT_CORE of src/config.ts: BTC-USD, ETH-USD; tick 100 ms; label horizon 500 ms */
  readonly core?: CoreSettings;
  /** @default COINBASE_FEEDS.advancedTrade of src/config.ts */
  readonly feedUrl?: string;
  readonly alarmEmails?: readonly string[];
  /** Commit the API reports on GET /version. */
  readonly buildSha?: string;
  /**
   * Create the optional features stream (every tick's features, for other consumers) and have the worker
   * publish to it. @default the `featuresStream` context flag (`cdk deploy -c featuresStream=true`), else false
   */
  readonly featuresStream?: boolean;
}

/** A context value as a flag: `-c featuresStream=true` arrives as the string "true". */
function contextFlag(scope: Construct, key: string): boolean {
  const v: unknown = scope.node.tryGetContext(key);
  return v === true || v === 'true';
}

/** The whole deployed QuoteWatch: stream, storage, ingestor + worker on Fargate, API, training, observability. */
export class QuoteWatchStack extends Stack {
  readonly marketStream: MarketStream;
  readonly storage: Storage;
  readonly services: ServiceCluster;
  readonly ingestor: IngestorService;
  readonly worker: WorkerService;
  readonly api: PredictionApi;
  readonly training: TrainingPipeline;
  readonly observability: Observability;
  readonly lakeCatalog: LakeCatalog;
  /** The optional features stream; undefined unless enabled. */
  readonly featuresStream: MarketStream | undefined;

  constructor(scope: Construct, id: string, props: QuoteWatchStackProps = {}) {
    const core = props.core ?? DEFAULT_CORE;
    requireCoreSettings('QuoteWatchStack', core);
    super(scope, id, props);

    this.marketStream = new MarketStream(this, 'Stream');
    this.storage = new Storage(this, 'Storage');
    const { latestTable, registryTable, checkpointTable, lakeBucket, modelBucket } = this.storage;
    this.lakeCatalog = new LakeCatalog(this, 'LakeCatalog', { lakeBucket, products: core.symbols });
    this.services = new ServiceCluster(this, 'Services');
    const cluster = this.services.cluster;
    this.ingestor = new IngestorService(this, 'Ingestor', {
      cluster,
      core,
      stream: this.marketStream.stream,
      lakeBucket,
      feedUrl: props.feedUrl,
    });
    this.worker = new WorkerService(this, 'Worker', {
      cluster,
      core,
      cpu: 512,
      memoryMiB: 1024,
      stream: this.marketStream.stream,
      latestTable,
      checkpointTable,
      registryTable,
      lakeBucket,
      modelBucket,
    });
    this.featuresStream =
      (props.featuresStream ?? contextFlag(this, 'featuresStream')) ? this.addFeaturesStream() : undefined;
    this.api = new PredictionApi(this, 'Api', {
      core,
      latestTable,
      registryTable,
      modelBucket,
      buildSha: props.buildSha,
    });
    this.training = new TrainingPipeline(this, 'Training', {
      cluster,
      image: this.worker.image,
      lakeBucket,
      modelBucket,
      registryTable,
    });
    this.observability = new Observability(this, 'Observability', {
      stream: this.marketStream,
      ingestor: this.ingestor,
      worker: this.worker,
      api: this.api,
      training: this.training,
      alarmEmails: props.alarmEmails,
    });

    new CfnOutput(this, 'ApiUrl', {
      value: this.api.url,
      description: 'Dashboard at /, API at /latest etc.',
    });
    new CfnOutput(this, 'ModelUri', { value: this.storage.modelUri });
    new CfnOutput(this, 'TrainingStateMachine', { value: this.training.stateMachine.stateMachineArn });
    if (this.featuresStream) {
      new CfnOutput(this, 'FeaturesStreamName', { value: this.featuresStream.stream.streamName });
    }
  }

  /** The features stream, written by the worker only (PutRecord(s), nothing else), named in its FEATURES_STREAM. */
  private addFeaturesStream(): MarketStream {
    // No alarms: nobody is required to read it, and a lagging reader is that reader's concern.
    const features = new MarketStream(this, 'Features', {
      definition: FEATURES_STREAM,
      alarmsEnabled: false,
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
