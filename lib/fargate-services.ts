import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { FlowLogDestination, GatewayVpcEndpointAwsService, SubnetType, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import {
  Cluster,
  ContainerImage,
  ContainerInsights,
  CpuArchitecture,
  Secret as EcsSecret,
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IStream, IStreamConsumer } from 'aws-cdk-lib/aws-kinesis';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { type ISecret, Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import {
  BOOK_CHECK_LEASE_PK,
  COINBASE_FEEDS,
  type CoreSettings,
  DEFAULT_BASE_IMAGE,
  type DeploymentSettings,
  deploymentHistory,
  FARGATE_SIZES,
  historyEnv,
  readFeedUrl,
  readWorkerConfig,
} from '../src/config.js';
import { BUCKETS, LAKE_PREFIXES, STREAM, TABLES } from '../src/resources.js';
import { NAMESPACE } from '../src/telemetry/catalog.js';
import { grantReadObjects, REPO_ROOT } from './house-function.js';
import { acknowledge, acknowledgeWildcardResource } from './nag.js';
import { InvalidPropError, requireConfig, requireCoreSettings, requireInt } from './validate.js';

/**
 * A container image built from the repository root for linux/arm64 (synth only stages the context; deploy builds
 * it, with buildx/QEMU on an x86 host). BASE_IMAGE is the Dockerfiles' base (`-c baseImage`, pinned by digest
 * in production).
 */
export function repoImage(dockerfile: string, baseImage: string = DEFAULT_BASE_IMAGE): ContainerImage {
  return ContainerImage.fromAsset(REPO_ROOT, {
    file: dockerfile,
    platform: Platform.LINUX_ARM64,
    buildArgs: { BASE_IMAGE: baseImage },
  });
}

export const ECR_AUTH_REASON =
  'Execution role: ecr:GetAuthorizationToken supports no resource-level permissions (image pulls are scoped).';

/**
 * The container health check both services run, with the component's name appended: its liveness file is fresh
 * (src/health/liveness.ts, containers/healthcheck.ts).
 */
export const HEALTH_CHECK = {
  command: ['CMD', 'node', 'dist/healthcheck.mjs'],
  interval: Duration.seconds(30),
  timeout: Duration.seconds(5),
  retries: 3,
} as const;

export interface ServiceClusterProps {
  /** @default 2 */
  readonly maxAzs?: number;
  /**
   * Container Insights (per-task metrics, RunningTaskCount): custom metrics billed per month. Without it the
   * alarms use the free AWS/ECS service metrics. @default false
   */
  readonly containerInsights?: boolean;
}

/**
 * The VPC and ECS cluster the long-running services share.
 *
 * Cost: no NAT gateway. The tasks only make outbound calls (the exchange WebSocket, Kinesis, DynamoDB, S3), so they
 * run in public subnets with a public IP and a security group without inbound rules. A NAT gateway would cost
 * ~$33/month per AZ plus per-GB processing for nothing this app needs; S3 and DynamoDB traffic goes through the
 * free gateway endpoints instead of the internet.
 */
export class ServiceCluster extends Construct {
  readonly vpc: Vpc;
  readonly cluster: Cluster;
  readonly containerInsights: boolean;

  constructor(scope: Construct, id: string, props: ServiceClusterProps = {}) {
    const maxAzs = requireInt('ServiceCluster', 'maxAzs', props.maxAzs ?? 2, 1, 6);
    super(scope, id);
    this.containerInsights = props.containerInsights ?? false;
    this.vpc = new Vpc(this, 'Vpc', {
      maxAzs,
      natGateways: 0,
      subnetConfiguration: [{ name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 24 }],
      gatewayEndpoints: {
        S3: { service: GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: GatewayVpcEndpointAwsService.DYNAMODB },
      },
      flowLogs: { rejected: { destination: FlowLogDestination.toCloudWatchLogs() } },
    });
    this.cluster = new Cluster(this, 'Cluster', {
      vpc: this.vpc,
      // FARGATE_SPOT for the worker (workerCapacity); the ingestor runs on demand.
      enableFargateCapacityProviders: true,
      containerInsightsV2: this.containerInsights ? ContainerInsights.ENABLED : ContainerInsights.DISABLED,
    });
    if (!this.containerInsights) {
      acknowledge(
        this.cluster,
        'AwsSolutions-ECS4',
        'Container Insights is opt-in (-c containerInsights=true): its per-task metrics are billed as custom ' +
          'metrics; the services alarm on the free AWS/ECS CPU and memory metrics, and on their absence.',
      );
    }
  }
}

export interface QuoteWatchServiceProps {
  readonly cluster: Cluster;
  readonly core: CoreSettings;
  /** Task sizes, counts, base image, log retention. @default the deployment of an empty context */
  readonly deployment: DeploymentSettings;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** CPU and memory utilization (%) that raise the alarms. @default 80 */
  readonly utilizationThresholdPercent?: number;
}

interface ServiceShape {
  readonly name: string;
  readonly dockerfile: string;
  readonly cpu: number;
  readonly memoryMiB: number;
  readonly desiredCount: number;
  readonly environment: Record<string, string>;
  readonly secrets?: Record<string, EcsSecret>;
  /** Fargate Spot (interruptible, src/config.ts DeploymentSettings.workerCapacity) or on demand. */
  readonly spot: boolean;
  /** Time the process may take to start before failed health checks count (the worker replays its recovery). */
  readonly healthStartPeriod: Duration;
  // Deployment bounds: see the two services for why they differ.
  readonly minHealthyPercent: number;
  readonly maxHealthyPercent: number;
}

/**
 * One Fargate service (ARM64) with logs, a container health check, a least-privilege task role and
 * CPU/memory/no-task alarms.
 */
abstract class QuoteWatchService extends Construct {
  readonly taskDefinition: FargateTaskDefinition;
  readonly service: FargateService;
  readonly logGroup: LogGroup;
  readonly image: ContainerImage;
  readonly alarms: Alarm[] = [];
  readonly desiredCount: number;
  private readonly containerInsights: boolean;

  protected constructor(scope: Construct, id: string, props: QuoteWatchServiceProps, shape: ServiceShape) {
    const coreEnv = requireCoreSettings(id, props.core);
    const memories = FARGATE_SIZES[shape.cpu];
    if (!memories) {
      throw new InvalidPropError(
        id,
        'cpu',
        `expected one of ${Object.keys(FARGATE_SIZES).join(', ')}, got ${shape.cpu}`,
      );
    }
    if (!memories.includes(shape.memoryMiB)) {
      throw new InvalidPropError(
        id,
        'memoryMiB',
        `with cpu ${shape.cpu} expected one of ${memories.join(', ')}`,
      );
    }
    requireInt(id, 'desiredCount', shape.desiredCount, 1, 100);
    const threshold = requireInt(
      id,
      'utilizationThresholdPercent',
      props.utilizationThresholdPercent ?? 80,
      1,
      100,
    );
    super(scope, id);
    this.desiredCount = shape.desiredCount;
    this.containerInsights = props.deployment.containerInsights;

    this.image = repoImage(shape.dockerfile, props.deployment.baseImage);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.deployment.logRetentionDays,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu: shape.cpu,
      memoryLimitMiB: shape.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.ARM64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    this.taskDefinition.addContainer(shape.name, {
      image: this.image,
      logging: LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: shape.name }),
      environment: {
        ...coreEnv,
        // Metrics reach CloudWatch by PutMetricData (src/telemetry/cloudwatch.ts): awslogs does not mark EMF.
        METRICS_SINK: 'cloudwatch',
        ...shape.environment,
      },
      secrets: shape.secrets,
      // A hung loop stops refreshing the liveness file: ECS marks the container unhealthy and replaces the task.
      healthCheck: {
        ...HEALTH_CHECK,
        command: [...HEALTH_CHECK.command, shape.name],
        startPeriod: shape.healthStartPeriod,
      },
      // The processes exit cleanly on SIGTERM; give them time to flush their last batch.
      stopTimeout: Duration.seconds(30),
    });
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['cloudwatch:PutMetricData'],
        // PutMetricData has no resource ARN; the namespace condition keeps the task to QuoteWatch's metrics.
        resources: ['*'],
        conditions: { StringEquals: { 'cloudwatch:namespace': NAMESPACE } },
      }),
    );
    this.service = new FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: shape.desiredCount,
      assignPublicIp: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      minHealthyPercent: shape.minHealthyPercent,
      maxHealthyPercent: shape.maxHealthyPercent,
      circuitBreaker: { enable: true, rollback: true },
      ...(shape.spot
        ? { capacityProviderStrategies: [{ capacityProvider: 'FARGATE_SPOT', weight: 1 }] }
        : {}),
    });
    acknowledge(
      this.taskDefinition,
      'AwsSolutions-ECS2',
      'Environment holds only resource names and settings; the CDP key arrives as container secrets.',
    );
    acknowledge(this.taskDefinition, 'AwsSolutions-IAM5[Resource::*]', ECR_AUTH_REASON);

    if (props.alarmsEnabled ?? true) {
      const period = Duration.minutes(1);
      this.alarms.push(
        new Alarm(this, 'CpuAlarm', {
          alarmDescription: `${shape.name} CPU above ${threshold}%`,
          metric: this.service.metricCpuUtilization({ period }),
          threshold,
          evaluationPeriods: 5,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        }),
        new Alarm(this, 'MemoryAlarm', {
          alarmDescription: `${shape.name} memory above ${threshold}%`,
          metric: this.service.metricMemoryUtilization({ period }),
          threshold,
          evaluationPeriods: 5,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
        }),
        new Alarm(this, 'RunningTasksAlarm', {
          alarmDescription: this.containerInsights
            ? `${shape.name} runs fewer than ${shape.desiredCount} task(s)`
            : `${shape.name} has no running task (no CPU datapoint)`,
          metric: this.metricRunningTasks({ period }),
          threshold: this.containerInsights ? shape.desiredCount : 1,
          evaluationPeriods: 3,
          comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
          // No datapoint means no task reports at all.
          treatMissingData: TreatMissingData.BREACHING,
        }),
      );
    }
  }

  /**
   * Running tasks: Container Insights' RunningTaskCount when it is on; otherwise the sample count of the free
   * service CPU metric, which is 0 (no datapoint) exactly when no task runs.
   */
  metricRunningTasks(opts: { period?: Duration } = {}): Metric {
    const period = opts.period ?? Duration.minutes(1);
    const dimensionsMap = {
      ClusterName: this.service.cluster.clusterName,
      ServiceName: this.service.serviceName,
    };
    return this.containerInsights
      ? new Metric({
          namespace: 'ECS/ContainerInsights',
          metricName: 'RunningTaskCount',
          dimensionsMap,
          statistic: 'Minimum',
          period,
        })
      : new Metric({
          namespace: 'AWS/ECS',
          metricName: 'CPUUtilization',
          dimensionsMap,
          statistic: 'SampleCount',
          period,
          label: 'CPU samples (0 = no task)',
        });
  }
}

export interface IngestorServiceProps extends QuoteWatchServiceProps {
  readonly stream: IStream;
  readonly lakeBucket: IBucket;
  /** The book check's verdicts (read) and its lease item (put): src/storage/bookVerdicts.ts, src/ingest/bookCheckLease.ts. */
  readonly latestTable: ITable;
  /** @default COINBASE_FEEDS.advancedTrade (wss://advanced-trade-ws.coinbase.com) */
  readonly feedUrl?: string;
}

/** Object key prefixes the ingestor writes in the lake: claim-checked book snapshots and the raw archive. */
export const INGESTOR_LAKE_PREFIXES = [LAKE_PREFIXES.snapshots, LAKE_PREFIXES.archive] as const;

/** The CDP API key secret's JSON fields, injected as the two variables readFeedConfig reads. */
export const COINBASE_SECRET_FIELDS = {
  COINBASE_API_KEY_NAME: 'name',
  COINBASE_API_PRIVATE_KEY: 'privateKey',
} as const;

/**
 * Exchange WebSocket -> Kinesis. It may only put records (and snapshots and the raw archive into the lake), read the
 * worker's book verdicts and put the book-check lease item of the latest table.
 */
export class IngestorService extends QuoteWatchService {
  /** The CDP API key secret (`-c coinbaseKeySecret`), when the feed is authenticated. */
  readonly coinbaseKey: ISecret | undefined;

  constructor(scope: Construct, id: string, props: IngestorServiceProps) {
    const feedUrl = requireConfig(id, 'feedUrl', () =>
      readFeedUrl({ FEED_URL: props.feedUrl ?? COINBASE_FEEDS.advancedTrade }),
    );
    const d = props.deployment;
    // Created in the parent scope: `this` does not exist before super(), and the secrets go into the container.
    const coinbaseKey = d.coinbaseKeySecret
      ? d.coinbaseKeySecret.startsWith('arn:')
        ? Secret.fromSecretCompleteArn(scope, `${id}CoinbaseKey`, d.coinbaseKeySecret)
        : Secret.fromSecretNameV2(scope, `${id}CoinbaseKey`, d.coinbaseKeySecret)
      : undefined;
    super(scope, id, props, {
      name: 'ingestor',
      dockerfile: 'containers/ingestor/Dockerfile',
      cpu: d.ingestorTask.cpu,
      memoryMiB: d.ingestorTask.memoryMiB,
      desiredCount: d.ingestors,
      spot: false,
      environment: {
        FEED_URL: feedUrl,
        [STREAM.env]: props.stream.streamName,
        [BUCKETS.lake.env]: props.lakeBucket.bucketName,
        [TABLES.latest.env]: props.latestTable.tableName,
        // The raw frame archive: the only record from which a mapper bug can be corrected or a day replayed.
        ARCHIVE: d.archive,
      },
      secrets: coinbaseKey
        ? Object.fromEntries(
            Object.entries(COINBASE_SECRET_FIELDS).map(([variable, field]) => [
              variable,
              EcsSecret.fromSecretsManager(coinbaseKey, field),
            ]),
          )
        : undefined,
      healthStartPeriod: Duration.seconds(60),
      // A new task starts before the old one stops, so the feed has no gap; its events carry the same ids (from the
      // exchange's data), so the worker keeps one copy (src/worker/arbiter.ts). `-c ingestors=2` keeps a hot standby.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
    });
    this.coinbaseKey = coinbaseKey;
    // Spelled out instead of stream.grantWrite(), which would also allow ListShards and the KMS key.
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['kinesis:PutRecord', 'kinesis:PutRecords'],
        resources: [props.stream.streamArn],
      }),
    );
    // The book check: the worker's verdicts are read (src/storage/bookVerdicts.ts), and of the table's items only
    // the lease that picks the fetching ingestor may be written (src/ingest/bookCheckLease.ts).
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem'],
        resources: [props.latestTable.tableArn],
      }),
    );
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['dynamodb:PutItem'],
        resources: [props.latestTable.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [BOOK_CHECK_LEASE_PK] } },
      }),
    );
    // Only its own prefixes: the ingestor cannot overwrite the worker's Parquet zones.
    const objects = INGESTOR_LAKE_PREFIXES.map((prefix) => props.lakeBucket.arnForObjects(`${prefix}*`));
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({ actions: ['s3:PutObject'], resources: objects }),
    );
    for (const arn of objects) {
      acknowledgeWildcardResource(
        this.taskDefinition,
        arn,
        'PutObject only, under the prefix of keys generated per snapshot/archive object.',
      );
    }
  }
}

export interface WorkerServiceProps extends QuoteWatchServiceProps {
  readonly stream: IStream;
  /** The enhanced fan-out consumer (a CloudFormation resource) when the worker reads by fan-out. */
  readonly consumer?: IStreamConsumer;
  readonly latestTable: ITable;
  readonly checkpointTable: ITable;
  readonly registryTable: ITable;
  readonly lakeBucket: IBucket;
  readonly modelBucket: IBucket;
  /** @default 'registry' */
  readonly modelPrefix?: string;
}

/** The enhanced fan-out consumer's name on the market stream (CONSUMER_NAME's default in src/config.ts too). */
export const WORKER_CONSUMER_NAME = 'quotewatch-worker';

/** Lake prefixes the worker writes (the Parquet zones, undecodable records) and reads (claim-checked books). */
export const WORKER_LAKE_PREFIXES = {
  writes: [
    LAKE_PREFIXES.raw,
    LAKE_PREFIXES.features,
    LAKE_PREFIXES.labels,
    LAKE_PREFIXES.predictions,
    LAKE_PREFIXES.corrections,
    LAKE_PREFIXES.deadletter,
  ],
  reads: [LAKE_PREFIXES.snapshots],
} as const;

/** Kinesis (polling or enhanced fan-out) -> book -> features -> model -> latest table + Parquet lake. */
export class WorkerService extends QuoteWatchService {
  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    const prefix = props.modelPrefix ?? 'registry';
    if (!/^[a-z0-9][a-z0-9/_-]*$/.test(prefix))
      throw new InvalidPropError(id, 'modelPrefix', `invalid: ${prefix}`);
    const d = props.deployment;
    const lakeObjectTicks = String((d.lakeObjectMinutes * 60_000) / props.core.tickMs);
    // The worker's own reader: the window must be whole ticks that divide the hour.
    requireConfig(id, 'lakeObjectMinutes', () =>
      readWorkerConfig({ TICK_MS: String(props.core.tickMs), LAKE_OBJECT_TICKS: lakeObjectTicks }),
    );
    if ((d.consumer === 'fanout') !== (props.consumer !== undefined)) {
      throw new InvalidPropError(id, 'consumer', `a stream consumer is needed exactly when consumer=fanout`);
    }
    super(scope, id, props, {
      name: 'worker',
      dockerfile: 'containers/worker/Dockerfile',
      cpu: d.workerTask.cpu,
      memoryMiB: d.workerTask.memoryMiB,
      desiredCount: d.workers,
      spot: d.workerCapacity === 'spot',
      environment: {
        [STREAM.env]: props.stream.streamName,
        [TABLES.latest.env]: props.latestTable.tableName,
        [TABLES.checkpoints.env]: props.checkpointTable.tableName,
        [TABLES.registry.env]: props.registryTable.tableName,
        [BUCKETS.lake.env]: props.lakeBucket.bucketName,
        [BUCKETS.models.env]: props.modelBucket.bucketName,
        MODEL_URI: `s3://${props.modelBucket.bucketName}/${prefix}`,
        LATEST_WRITE_MS: String(d.latestWriteMs),
        LAKE_OBJECT_TICKS: lakeObjectTicks,
        ...historyEnv(deploymentHistory(d)),
        // polling: GetRecords (~200 ms average propagation); fanout: SubscribeToShard (~70 ms) at a price.
        CONSUMER_MODE: d.consumer,
        ...(props.consumer
          ? {
              CONSUMER_NAME: WORKER_CONSUMER_NAME,
              CONSUMER_ARN: props.consumer.streamConsumerArn,
            }
          : {}),
      },
      // A restart replays up to RECOVERY_LOOKBACK_MS of the stream before the loop runs at the live edge.
      healthStartPeriod: Duration.seconds(180),
      // Several workers split the shards by lease; during a deployment the old tasks stop first so that two
      // generations do not trade leases back and forth.
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
    });
    const role = this.taskDefinition.taskRole;
    // Spelled out instead of stream.grantRead() (which adds DescribeStream and ListStreams). Polling reads stay
    // with fan-out too: crash-recovery replays and the end-of-shard check use GetShardIterator/GetRecords. The
    // stream uses the AWS-managed key: no KMS grant needed.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: [
          'kinesis:DescribeStreamSummary',
          'kinesis:ListShards',
          'kinesis:GetShardIterator',
          'kinesis:GetRecords',
        ],
        resources: [props.stream.streamArn],
      }),
    );
    if (props.consumer) {
      // The consumer is a CloudFormation resource: its exact ARN, nothing to register at run time.
      role.addToPrincipalPolicy(
        new PolicyStatement({
          actions: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
          resources: [props.consumer.streamConsumerArn],
        }),
      );
    }
    props.latestTable.grantReadWriteData(role);
    props.checkpointTable.grantReadWriteData(role);
    props.registryTable.grantReadData(role);
    // Its own lake prefixes only: it cannot touch the archive, and reads back only the ingestor's snapshots.
    const writes = WORKER_LAKE_PREFIXES.writes.map((p) => props.lakeBucket.arnForObjects(`${p}*`));
    const reads = WORKER_LAKE_PREFIXES.reads.map((p) => props.lakeBucket.arnForObjects(`${p}*`));
    role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:PutObject'], resources: writes }));
    role.addToPrincipalPolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: reads }));
    for (const arn of writes) {
      acknowledgeWildcardResource(
        this.taskDefinition,
        arn,
        'PutObject of lake objects the worker names per product, time window and shard under its own prefix.',
      );
    }
    for (const arn of reads) {
      acknowledgeWildcardResource(
        this.taskDefinition,
        arn,
        'GetObject of the claim-checked book snapshots whose keys arrive in the stream.',
      );
    }
    grantReadObjects(
      role,
      this.taskDefinition,
      props.modelBucket,
      `${prefix}/*`,
      'Loads any model version under the registry prefix.',
    );
  }
}
