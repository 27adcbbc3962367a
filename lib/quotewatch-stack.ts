import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { IngestorService, ServiceCluster, WorkerService } from './fargate-services.js';
import { LakeCatalog } from './lake-catalog.js';
import { MarketStream } from './market-stream.js';
import { Observability } from './observability.js';
import { type CoreSettings, PredictionApi } from './prediction-api.js';
import { Storage } from './storage.js';
import { TrainingPipeline } from './training-pipeline.js';
import { requireInt, requireNonEmpty } from './validate.js';

export interface QuoteWatchStackProps extends StackProps {
  /** @default BTC-USD, ETH-USD; tick 100 ms; label horizon 500 ms (the src/config.ts defaults) */
  readonly core?: CoreSettings;
  /** @default wss://advanced-trade-ws.coinbase.com */
  readonly feedUrl?: string;
  readonly alarmEmails?: readonly string[];
  /** Commit the API reports on GET /version. */
  readonly buildSha?: string;
}

export const DEFAULT_CORE: CoreSettings = { symbols: ['BTC-USD', 'ETH-USD'], tickMs: 100, deltaMs: 500 };

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

  constructor(scope: Construct, id: string, props: QuoteWatchStackProps = {}) {
    const core = props.core ?? DEFAULT_CORE;
    requireNonEmpty('QuoteWatchStack', 'core.symbols', core.symbols);
    requireInt('QuoteWatchStack', 'core.tickMs', core.tickMs, 10, 60_000);
    requireInt('QuoteWatchStack', 'core.deltaMs', core.deltaMs, 10, 600_000);
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
  }
}
