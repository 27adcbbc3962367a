import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import {
  type Cluster,
  type ContainerImage,
  CpuArchitecture,
  FargateTaskDefinition,
  LogDrivers,
  OperatingSystemFamily,
} from 'aws-cdk-lib/aws-ecs';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import {
  Choice,
  Condition,
  DefinitionBody,
  Fail,
  IntegrationPattern,
  JsonPath,
  LogLevel,
  Pass,
  StateMachine,
  Succeed,
} from 'aws-cdk-lib/aws-stepfunctions';
import {
  CallAwsService,
  DynamoAttributeValue,
  DynamoPutItem,
  DynamoUpdateItem,
  EcsFargateLaunchTarget,
  EcsRunTask,
} from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { MEASURED_TRAINING } from '../src/config.js';
import { TARGETS } from '../src/model/types.js';
import { ACTIVE_PARTITION_PREFIX, BUCKETS, LAKE_PREFIXES, REGISTRY_KEYS, TABLES } from '../src/resources.js';
import { ECR_AUTH_REASON } from './fargate-services.js';
import { grantReadObjects } from './house-function.js';
import { acknowledge, acknowledgeWildcardResource } from './nag.js';
import { InvalidPropError, requireInt } from './validate.js';

/** The family ARN EcsRunTask grants RunTask on (same construction as aws-stepfunctions-tasks). */
function taskDefinitionFamilyArn(scope: Construct, taskDefinitionArn: string): string {
  const stack = Stack.of(scope);
  const c = stack.splitArn(taskDefinitionArn, ArnFormat.SLASH_RESOURCE_NAME);
  return stack.formatArn({
    partition: c.partition,
    service: c.service,
    account: c.account,
    region: c.region,
    resource: c.resource,
    arnFormat: c.arnFormat,
    resourceName: c.resourceName?.split(':')[0],
  });
}

/**
 * What the state machine role's `Resource: *` statements allow, every action of them named (test/cdk checks the
 * list against the synthesized policy): none of these support resource-level permissions.
 */
export const STATE_MACHINE_WILDCARD_ACTIONS = [
  'ecs:DescribeTasks',
  'ecs:StopTask',
  'logs:CreateLogDelivery',
  'logs:DeleteLogDelivery',
  'logs:DescribeLogGroups',
  'logs:DescribeResourcePolicies',
  'logs:GetLogDelivery',
  'logs:ListLogDeliveries',
  'logs:PutResourcePolicy',
  'logs:UpdateLogDelivery',
  'xray:GetSamplingRules',
  'xray:GetSamplingTargets',
  'xray:PutTelemetryRecords',
  'xray:PutTraceSegments',
] as const;

const STATE_MACHINE_WILDCARD_REASON =
  `No resource-level permissions for ${STATE_MACHINE_WILDCARD_ACTIONS.join(', ')}: X-Ray tracing, CloudWatch ` +
  'Logs vended-log delivery of the execution logs, and the .sync RunTask integration watching and stopping ' +
  'trainer tasks whose ARNs exist only at run time.';

export interface TrainingPipelineProps {
  readonly cluster: Cluster;
  /** The worker image: it carries the trainer bundle next to the worker's. */
  readonly image: ContainerImage;
  readonly lakeBucket: IBucket;
  readonly modelBucket: IBucket;
  readonly registryTable: ITable;
  /** @default 'registry' */
  readonly modelPrefix?: string;
  /** The trainer CLI in the image; `train` or `evaluate` is appended. @default ['node', 'dist/train.mjs'] */
  readonly trainerCommand?: string[];
  /** @default 1024 */
  readonly cpu?: number;
  /** @default 4096 */
  readonly memoryMiB?: number;
  /**
   * Each trainer task's (Train, Evaluate) timeout. @default trainerTaskTimeout(cpu, memoryMiB): a multiple of
   * the measured time to train as many rows as the task's memory holds
   */
  readonly taskTimeout?: Duration;
  /**
   * Attempts per trainer task the state machine definition may make (its Retry's MaxAttempts + 1): the state
   * machine's timeout covers both tasks times this. @default 3
   */
  readonly taskAttempts?: number;
  /** @default one month */
  readonly logRetentionDays?: RetentionDays;
  /** @default true */
  readonly alarmsEnabled?: boolean;
}

/** Time for the state machine's own steps besides the two tasks: reading evaluation.json, promoting. */
export const TRAINING_OVERHEAD = Duration.minutes(10);

/**
 * The trainer task's timeout, from the measured training cost (MEASURED_TRAINING): the largest job the task's
 * memory can hold (70% of it for rows), on its vCPUs, times 5 for Fargate start-up, S3 reads and a slower CPU;
 * at least 15 minutes; rounded up to 5 minutes.
 */
export function trainerTaskTimeout(cpu: number, memoryMiB: number): Duration {
  const rows = (memoryMiB * 1024 * 1024 * 0.7) / MEASURED_TRAINING.bytesPerRow;
  const seconds = (5 * rows * MEASURED_TRAINING.cpuUsPerRow) / 1e6 / Math.max(1, cpu / 1024);
  return Duration.minutes(Math.max(15, Math.ceil(seconds / 300) * 5));
}

/**
 * Retrain -> evaluate -> promote only if the gate passes (better beyond noise), as a Step Functions state machine.
 *
 * Train and Evaluate run the trainer CLI from the worker image as one-off Fargate tasks (ECS RunTask, .sync):
 * training reads the Parquet lake and can outgrow a Lambda's 15 minutes and 10 GB, and one image keeps feature
 * code identical between serving and training. The contract with the trainer (models/train/main.ts bundled to
 * dist/train.mjs):
 *   env TARGET, CANDIDATE_VERSION, MODEL_URI, LAKE_BUCKET, REGISTRY_TABLE
 *   `train`    writes <prefix>/<target>/<version>/{model.onnx,feature_spec.json,metrics.json} and
 *              publishes the candidate NOT active; its metrics.json records the held-out window
 *   `evaluate` scores the candidate and the active model on that same held-out window and writes
 *              <prefix>/<target>/<version>/evaluation.json =
 *              {"candidate":{"version":s,...},"active":{"version":s,...}|null,"decision":{"promote":b,...}, ...}
 * Promotion itself needs no code: the state machine reads evaluation.json and flips the registry's active
 * pointer (pk="active#<target>", sk="active", version, activatedAt) with a conditional DynamoDB write (PutItem
 * when there is no pointer yet, else UpdateItem keeping its history), the same compare-and-set as the trainer's
 * `promote` (registry activate with ifCurrent): if the pointer moved since
 * evaluation, the comparison is stale and the execution fails instead of overwriting it.
 *
 * Start it with {"target": "<target>"}; the execution name becomes the candidate version.
 */
export class TrainingPipeline extends Construct {
  readonly stateMachine: StateMachine;
  readonly taskDefinition: FargateTaskDefinition;
  readonly logGroup: LogGroup;
  readonly alarms: Alarm[] = [];
  readonly taskTimeout: Duration;
  readonly taskAttempts: number;

  constructor(scope: Construct, id: string, props: TrainingPipelineProps) {
    const prefix = props.modelPrefix ?? 'registry';
    if (!/^[a-z0-9][a-z0-9/_-]*$/.test(prefix)) {
      throw new InvalidPropError('TrainingPipeline', 'modelPrefix', `invalid: ${prefix}`);
    }
    const command = props.trainerCommand ?? ['node', 'dist/train.mjs'];
    if (command.length === 0)
      throw new InvalidPropError('TrainingPipeline', 'trainerCommand', 'must not be empty');
    const cpu = props.cpu ?? 1024;
    if (![256, 512, 1024, 2048, 4096, 8192, 16384].includes(cpu)) {
      throw new InvalidPropError('TrainingPipeline', 'cpu', `not a Fargate CPU size: ${cpu}`);
    }
    const memoryMiB = requireInt('TrainingPipeline', 'memoryMiB', props.memoryMiB ?? 4096, 512, 122_880);
    const timeout = props.taskTimeout ?? trainerTaskTimeout(cpu, memoryMiB);
    requireInt('TrainingPipeline', 'taskTimeout (minutes)', timeout.toMinutes(), 1, 12 * 60);
    const attempts = requireInt('TrainingPipeline', 'taskAttempts', props.taskAttempts ?? 3, 1, 10);
    const retention = props.logRetentionDays ?? RetentionDays.ONE_MONTH;
    super(scope, id);
    this.taskTimeout = timeout;
    this.taskAttempts = attempts;

    this.logGroup = new LogGroup(this, 'Logs', {
      retention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.taskDefinition = new FargateTaskDefinition(this, 'TrainerTask', {
      cpu,
      memoryLimitMiB: memoryMiB,
      runtimePlatform: {
        cpuArchitecture: CpuArchitecture.ARM64,
        operatingSystemFamily: OperatingSystemFamily.LINUX,
      },
    });
    const container = this.taskDefinition.addContainer('trainer', {
      image: props.image,
      command: [...command, 'train'],
      logging: LogDrivers.awsLogs({ logGroup: this.logGroup, streamPrefix: 'trainer' }),
      environment: {
        MODEL_URI: `s3://${props.modelBucket.bucketName}/${prefix}`,
        [BUCKETS.lake.env]: props.lakeBucket.bucketName,
        [TABLES.registry.env]: props.registryTable.tableName,
      },
    });
    const role = this.taskDefinition.taskRole;
    for (const zone of [LAKE_PREFIXES.features, LAKE_PREFIXES.labels, LAKE_PREFIXES.corrections]) {
      grantReadObjects(
        role,
        this.taskDefinition,
        props.lakeBucket,
        `${zone}*`,
        `Training reads every partition of the lake's ${zone} zone.`,
      );
    }
    grantReadObjects(
      role,
      this.taskDefinition,
      props.modelBucket,
      `${prefix}/*`,
      'Reads the active model to compare.',
    );
    // Writes the candidate's files; promotion (the active pointer) is the state machine's job, not the trainer's.
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.modelBucket.arnForObjects(`${prefix}/*`)],
      }),
    );
    // Reads the registry (versions, the active pointer); writes only version rows, whose partition key is a target
    // (REGISTRY_KEYS): the active pointer's partition "active#<target>" is out of its reach. Only the state
    // machine's Promote states move the pointer.
    props.registryTable.grantReadData(role);
    role.addToPrincipalPolicy(
      new PolicyStatement({
        actions: ['dynamodb:PutItem'],
        resources: [props.registryTable.tableArn],
        conditions: { 'ForAllValues:StringEquals': { 'dynamodb:LeadingKeys': [...TARGETS] } },
      }),
    );
    acknowledge(
      this.taskDefinition,
      'AwsSolutions-ECS2',
      'Environment holds only resource names; there are no secrets.',
    );
    acknowledge(this.taskDefinition, 'AwsSolutions-IAM5[Resource::*]', ECR_AUTH_REASON);

    // One security group for both trainer runs (EcsRunTask would make one per state); outbound only.
    const securityGroup = new SecurityGroup(this, 'TrainerSecurityGroup', {
      vpc: props.cluster.vpc,
      description: 'QuoteWatch trainer tasks: outbound only',
    });
    const runTrainer = (stateId: string, subcommand: 'train' | 'evaluate') =>
      new EcsRunTask(this, stateId, {
        integrationPattern: IntegrationPattern.RUN_JOB,
        cluster: props.cluster,
        taskDefinition: this.taskDefinition,
        launchTarget: new EcsFargateLaunchTarget(),
        assignPublicIp: true,
        subnets: { subnetType: SubnetType.PUBLIC },
        securityGroups: [securityGroup],
        containerOverrides: [
          {
            containerDefinition: container,
            command: [...command, subcommand],
            environment: [
              { name: 'TARGET', value: JsonPath.stringAt('$.target') },
              { name: 'CANDIDATE_VERSION', value: JsonPath.stringAt('$.version') },
            ],
          },
        ],
        resultPath: JsonPath.DISCARD,
        taskTimeout: { seconds: timeout.toSeconds() },
      });

    const prepare = new Pass(this, 'Prepare', {
      comment: 'The execution name is the candidate version.',
      parameters: { 'target.$': '$.target', 'version.$': '$$.Execution.Name' },
    });
    const train = runTrainer('Train', 'train');
    const evaluate = runTrainer('Evaluate', 'evaluate');
    // A failed task (the trainer exits 1 having written a failed run record; or ECS could not start it) is
    // retried with backoff, up to taskAttempts in all; then the execution fails naming the error and cause.
    const failed = new Fail(this, 'TrainingFailed', {
      errorPath: JsonPath.stringAt('$.failure.Error'),
      causePath: JsonPath.stringAt('$.failure.Cause'),
    });
    for (const task of [train, evaluate]) {
      if (attempts > 1) {
        task.addRetry({
          errors: ['States.TaskFailed', 'ECS.AmazonECSException', 'States.Timeout'],
          interval: Duration.seconds(30),
          backoffRate: 2,
          maxAttempts: attempts - 1,
        });
      }
      task.addCatch(failed, { errors: ['States.ALL'], resultPath: '$.failure' });
    }
    const readEvaluation = new CallAwsService(this, 'ReadEvaluation', {
      service: 's3',
      action: 'getObject',
      parameters: {
        Bucket: props.modelBucket.bucketName,
        Key: JsonPath.format(
          `${prefix}/{}/{}/evaluation.json`,
          JsonPath.stringAt('$.target'),
          JsonPath.stringAt('$.version'),
        ),
      },
      iamResources: [props.modelBucket.arnForObjects(`${prefix}/*`)],
      resultSelector: { 'result.$': 'States.StringToJson($.Body)' },
      resultPath: '$.evaluation',
    });
    readEvaluation.addRetry({
      errors: ['States.TaskFailed', 'S3.SdkClientException'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 2,
    });
    readEvaluation.addCatch(failed, { errors: ['States.ALL'], resultPath: '$.failure' });
    // Compare-and-set on the pointer, as the registry's activate(ifCurrent) does.
    // REGISTRY_KEYS.active(target): the pointer's own partition, "active#<target>".
    const pointerKey = {
      pk: DynamoAttributeValue.fromString(
        JsonPath.format(`${ACTIVE_PARTITION_PREFIX}{}`, JsonPath.stringAt('$.target')),
      ),
      sk: DynamoAttributeValue.fromString(REGISTRY_KEYS.active('').sk),
    };
    const newVersion = DynamoAttributeValue.fromString(JsonPath.stringAt('$.version'));
    const enteredAt = DynamoAttributeValue.fromString(JsonPath.stringAt('$$.State.EnteredTime'));
    // Compare-and-set on the pointer, as the registry's activate(ifCurrent) does, keeping its history (the
    // replaced version first in `previous`) so `quotewatch models rollback` can go back.
    const promoteFirst = new DynamoPutItem(this, 'PromoteFirst', {
      table: props.registryTable,
      item: {
        ...pointerKey,
        version: newVersion,
        activatedAt: enteredAt,
        previous: DynamoAttributeValue.fromList([]),
      },
      conditionExpression: 'attribute_not_exists(pk)',
      resultPath: JsonPath.DISCARD,
    });
    const promote = new DynamoUpdateItem(this, 'Promote', {
      table: props.registryTable,
      key: pointerKey,
      updateExpression:
        'SET version = :new, activatedAt = :at, previous = list_append(:replaced, if_not_exists(previous, :none))',
      conditionExpression: 'version = :current',
      expressionAttributeValues: {
        ':new': newVersion,
        ':at': enteredAt,
        ':current': DynamoAttributeValue.fromString(JsonPath.stringAt('$.evaluation.result.active.version')),
        ':replaced': DynamoAttributeValue.fromList([
          DynamoAttributeValue.fromString(JsonPath.stringAt('$.evaluation.result.active.version')),
        ]),
        ':none': DynamoAttributeValue.fromList([]),
      },
      resultPath: JsonPath.DISCARD,
    });
    const promoted = new Succeed(this, 'Promoted');
    // The promotion rule itself is the evaluate step's (models/eval/gate.ts): it writes the decision, with its
    // figures and reasons, into evaluation.json; this state only follows it.
    const passes = Condition.booleanEquals('$.evaluation.result.decision.promote', true);
    const isBetter = new Choice(this, 'PassesGate?')
      .when(
        Condition.and(passes, Condition.isNull('$.evaluation.result.active')),
        promoteFirst.next(promoted),
      )
      .when(passes, promote.next(promoted))
      .otherwise(
        new Succeed(this, 'KeptActive', {
          comment: 'The candidate stays registered but inactive; evaluation.json says why.',
        }),
      );

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      comment: `Retrain and promote-if-better for targets: ${TARGETS.join(', ')}`,
      definitionBody: DefinitionBody.fromChainable(
        prepare.next(train).next(evaluate).next(readEvaluation).next(isBetter),
      ),
      // Both tasks at their timeout on every attempt, plus the steps around them.
      timeout: Duration.seconds(2 * attempts * timeout.toSeconds()).plus(TRAINING_OVERHEAD),
      tracingEnabled: true,
      logs: {
        destination: new LogGroup(this, 'ExecutionLogs', {
          retention,
          removalPolicy: RemovalPolicy.DESTROY,
        }),
        level: LogLevel.ALL,
      },
    });

    const smRole = this.stateMachine.role;
    acknowledge(smRole, 'AwsSolutions-IAM5[Resource::*]', STATE_MACHINE_WILDCARD_REASON);
    acknowledgeWildcardResource(
      smRole,
      props.modelBucket.arnForObjects(`${prefix}/*`),
      'GetObject of evaluation.json, whose key holds the run version.',
    );
    acknowledgeWildcardResource(
      smRole,
      `${taskDefinitionFamilyArn(this, this.taskDefinition.taskDefinitionArn)}:*`,
      'RunTask on any revision of the trainer task family (what EcsRunTask grants).',
    );

    if (props.alarmsEnabled ?? true) {
      this.alarms.push(
        new Alarm(this, 'FailedAlarm', {
          alarmDescription: 'A training run failed, timed out or was aborted',
          metric: this.stateMachine.metricFailed({ statistic: 'Sum', period: Duration.hours(1) }),
          threshold: 1,
          evaluationPeriods: 1,
          comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
    }
  }
}
