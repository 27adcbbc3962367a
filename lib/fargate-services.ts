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
  FargateService,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IStream } from 'aws-cdk-lib/aws-kinesis';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  COINBASE_FEEDS,
  type CoreSettings,
  DEFAULT_HISTORY,
  type HistorySettings,
  historyEnv,
  readFeedUrl,
} from '../src/config.js';
import { BUCKETS, STREAM, TABLES } from '../src/resources.js';
import { NAMESPACE } from '../src/telemetry/catalog.js';
import { grantReadObjects, REPO_ROOT } from './house-function.js';
import { acknowledge, acknowledgeWildcardResource } from './nag.js';
import { InvalidPropError, requireConfig, requireCoreSettings, requireInt } from './validate.js';

/** A container image built from the repository root (synth only stages the context; deploy builds it). */
export function repoImage(dockerfile: string): ContainerImage {
  return ContainerImage.fromAsset(REPO_ROOT, { file: dockerfile, platform: Platform.LINUX_ARM64 });
}

export const ECR_AUTH_REASON =
  'Execution role: ecr:GetAuthorizationToken supports no resource-level permissions (image pulls are scoped).';

export interface ServiceClusterProps {
  /** @default 2 */
  readonly maxAzs?: number;
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

  constructor(scope: Construct, id: string, props: ServiceClusterProps = {}) {
    const maxAzs = requireInt('ServiceCluster', 'maxAzs', props.maxAzs ?? 2, 1, 6);
    super(scope, id);
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
      // Needed for the RunningTaskCount metric the service alarms watch.
      containerInsightsV2: ContainerInsights.ENABLED,
    });
  }
}

export interface QuoteWatchServiceProps {
  readonly cluster: Cluster;
  readonly core: CoreSettings;
  /** @default 256 (.25 vCPU) */
  readonly cpu?: number;
  /** @default 512 */
  readonly memoryMiB?: number;
  /** @default true */
  readonly alarmsEnabled?: boolean;
  /** CPU and memory utilization (%) that raise the alarms. @default 80 */
  readonly utilizationThresholdPercent?: number;
}

interface ServiceShape {
  readonly name: string;
  readonly dockerfile: string;
  readonly environment: Record<string, string>;
  // Deployment bounds: see the two services for why they differ.
  readonly minHealthyPercent: number;
  readonly maxHealthyPercent: number;
}

/** One Fargate service (ARM64, one task) with logs, a least-privilege task role and CPU/memory/task-count alarms. */
abstract class QuoteWatchService extends Construct {
  readonly taskDefinition: FargateTaskDefinition;
  readonly service: FargateService;
  readonly logGroup: LogGroup;
  readonly image: ContainerImage;
  readonly alarms: Alarm[] = [];

  protected constructor(scope: Construct, id: string, props: QuoteWatchServiceProps, shape: ServiceShape) {
    const coreEnv = requireCoreSettings(id, props.core);
    const cpu = props.cpu ?? 256;
    if (![256, 512, 1024, 2048, 4096].includes(cpu)) {
      throw new InvalidPropError(id, 'cpu', `expected one of 256, 512, 1024, 2048, 4096, got ${cpu}`);
    }
    const memoryMiB = requireInt(id, 'memoryMiB', props.memoryMiB ?? 512, 512, 30_720);
    const threshold = requireInt(
      id,
      'utilizationThresholdPercent',
      props.utilizationThresholdPercent ?? 80,
      1,
      100,
    );
    super(scope, id);

    this.image = repoImage(shape.dockerfile);
    this.logGroup = new LogGroup(this, 'Logs', {
      retention: RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'Task', {
      cpu,
      memoryLimitMiB: memoryMiB,
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
      desiredCount: 1,
      assignPublicIp: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      minHealthyPercent: shape.minHealthyPercent,
      maxHealthyPercent: shape.maxHealthyPercent,
      circuitBreaker: { enable: true, rollback: true },
    });
    acknowledge(
      this.taskDefinition,
      'AwsSolutions-ECS2',
      'Environment holds only resource names and settings; there are no secrets.',
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
          alarmDescription: `${shape.name} has no running task`,
          metric: this.metricRunningTasks({ period }),
          threshold: 1,
          evaluationPeriods: 3,
          comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
          // No datapoint means Container Insights sees no task at all.
          treatMissingData: TreatMissingData.BREACHING,
        }),
      );
    }
  }

  metricRunningTasks(opts: { period?: Duration } = {}): Metric {
    return new Metric({
      namespace: 'ECS/ContainerInsights',
      metricName: 'RunningTaskCount',
      dimensionsMap: { ClusterName: this.service.cluster.clusterName, ServiceName: this.service.serviceName },
      statistic: 'Minimum',
      period: opts.period ?? Duration.minutes(1),
    });
  }
}

export interface IngestorServiceProps extends QuoteWatchServiceProps {
  readonly stream: IStream;
  readonly lakeBucket: IBucket;
  /** @default COINBASE_FEEDS.advancedTrade (wss://advanced-trade-ws.coinbase.com) */
  readonly feedUrl?: string;
  /**
   * Raw frame archive (ARCHIVE): 's3' keeps every frame as received under the lake's archive/ prefix, the only
   * record from which a mapper bug can be corrected or a day replayed (`quotewatch replay`). Small cost: gzip
   * objects of up to 16 MiB / 5 min, a few hundred PUTs a day, under the lake's IA/expiry lifecycle.
   * @default 's3'
   */
  readonly archive?: 'off' | 's3';
}

/** Object key prefixes the ingestor writes in the lake: claim-checked book snapshots and the raw archive. */
export const INGESTOR_LAKE_PREFIXES = ['snapshots/', 'archive/'] as const;

/** Exchange WebSocket -> Kinesis. It may only put records (and snapshots and the raw archive into the lake). */
export class IngestorService extends QuoteWatchService {
  constructor(scope: Construct, id: string, props: IngestorServiceProps) {
    const feedUrl = requireConfig(id, 'feedUrl', () =>
      readFeedUrl({ FEED_URL: props.feedUrl ?? COINBASE_FEEDS.advancedTrade }),
    );
    super(scope, id, props, {
      name: 'ingestor',
      dockerfile: 'containers/ingestor/Dockerfile',
      environment: {
        FEED_URL: feedUrl,
        [STREAM.env]: props.stream.streamName,
        [BUCKETS.lake.env]: props.lakeBucket.bucketName,
        ARCHIVE: props.archive ?? 's3',
      },
      // A new task starts before the old one stops, so the feed has no gap; duplicate records from the overlap
      // carry the same event ids and the worker drops them.
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
    });
    // Spelled out instead of stream.grantWrite(), which would also allow ListShards and the KMS key.
    this.taskDefinition.addToTaskRolePolicy(
      new PolicyStatement({
        actions: ['kinesis:PutRecord', 'kinesis:PutRecords'],
        resources: [props.stream.streamArn],
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
  /** The dashboard's history cadence (HISTORY_WRITE_MS, HISTORY_TTL_S). @default DEFAULT_HISTORY */
  readonly history?: HistorySettings;
  readonly stream: IStream;
  readonly latestTable: ITable;
  readonly checkpointTable: ITable;
  readonly registryTable: ITable;
  readonly lakeBucket: IBucket;
  readonly modelBucket: IBucket;
  /** @default 'registry' */
  readonly modelPrefix?: string;
  /** The enhanced fan-out stream consumer the worker registers and reads through. @default 'quotewatch-worker' */
  readonly consumerName?: string;
}

/** Kinesis (enhanced fan-out) -> book -> features -> model -> latest table + Parquet lake. */
export class WorkerService extends QuoteWatchService {
  /** The enhanced fan-out stream consumer's name (CONSUMER_NAME in the container). */
  readonly consumerName: string;

  constructor(scope: Construct, id: string, props: WorkerServiceProps) {
    const prefix = props.modelPrefix ?? 'registry';
    if (!/^[a-z0-9][a-z0-9/_-]*$/.test(prefix))
      throw new InvalidPropError(id, 'modelPrefix', `invalid: ${prefix}`);
    const consumerName = props.consumerName ?? 'quotewatch-worker';
    if (!/^[a-zA-Z0-9_.-]{1,128}$/.test(consumerName))
      throw new InvalidPropError(id, 'consumerName', `invalid: ${consumerName}`);
    super(scope, id, props, {
      name: 'worker',
      dockerfile: 'containers/worker/Dockerfile',
      environment: {
        [STREAM.env]: props.stream.streamName,
        [TABLES.latest.env]: props.latestTable.tableName,
        [TABLES.checkpoints.env]: props.checkpointTable.tableName,
        [TABLES.registry.env]: props.registryTable.tableName,
        [BUCKETS.lake.env]: props.lakeBucket.bucketName,
        [BUCKETS.models.env]: props.modelBucket.bucketName,
        MODEL_URI: `s3://${props.modelBucket.bucketName}/${prefix}`,
        // Deployed latency: SubscribeToShard pushes records (~70 ms) where polling averages ~200 ms.
        CONSUMER_MODE: 'fanout',
        CONSUMER_NAME: consumerName,
        ...historyEnv(props.history ?? DEFAULT_HISTORY),
      },
      // One consumer at a time: two workers would race on the shard checkpoints, so the old task stops first.
      minHealthyPercent: 0,
      maxHealthyPercent: 100,
    });
    const role = this.taskDefinition.taskRole;
    // Spelled out instead of stream.grantRead() (which adds DescribeStream and ListStreams and names the stream,
    // not the consumer, for SubscribeToShard). Polling reads stay: crash-recovery replays and the end-of-shard
    // check use GetShardIterator/GetRecords. The stream uses the AWS-managed key: no KMS grant needed.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: [
          'kinesis:DescribeStreamSummary',
          'kinesis:ListShards',
          'kinesis:GetShardIterator',
          'kinesis:GetRecords',
          'kinesis:RegisterStreamConsumer',
        ],
        resources: [props.stream.streamArn],
      }),
    );
    // A consumer's ARN ends in its creation time (`<stream-arn>/consumer/<name>:<epoch>`), unknown before it is
    // registered at run time: only that suffix is a wildcard.
    const consumerArn = `${props.stream.streamArn}/consumer/${consumerName}:*`;
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard'],
        resources: [consumerArn],
      }),
    );
    acknowledgeWildcardResource(
      this.taskDefinition,
      consumerArn,
      'The stream consumer ARN ends in its registration time, known only once the worker registered it.',
    );
    this.consumerName = consumerName;
    props.latestTable.grantReadWriteData(role);
    props.checkpointTable.grantReadWriteData(role);
    props.registryTable.grantReadData(role);
    // Reads back the snapshots the ingestor claim-checked; writes Parquet. No delete, no bucket settings.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:GetObject', 's3:PutObject'],
        resources: [props.lakeBucket.arnForObjects('*')],
      }),
    );
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['s3:ListBucket'], resources: [props.lakeBucket.bucketArn] }),
    );
    acknowledgeWildcardResource(
      this.taskDefinition,
      props.lakeBucket.arnForObjects('*'),
      'Get/PutObject on lake keys partitioned by product and time.',
    );
    grantReadObjects(
      role,
      this.taskDefinition,
      props.modelBucket,
      `${prefix}/*`,
      'Loads any model version under the registry prefix.',
    );
  }
}
