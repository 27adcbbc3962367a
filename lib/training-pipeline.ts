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
import { Alias } from 'aws-cdk-lib/aws-kms';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { StepFunctionsStartExecution } from 'aws-cdk-lib/aws-scheduler-targets';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
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
  TaskInput,
  type TaskStateBase,
} from 'aws-cdk-lib/aws-stepfunctions';
import {
  CallAwsService,
  DynamoAttributeValue,
  DynamoPutItem,
  DynamoReturnValues,
  DynamoUpdateItem,
  EcsFargateLaunchTarget,
  EcsRunTask,
  SnsPublish,
} from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { MEASURED_TRAINING, scheduleExpressionProblem } from '../src/config.js';
import { FEATURE_VERSION } from '../src/features/spec.js';
import { MODEL_SETS, slotKey, TARGETS } from '../src/model/types.js';
import {
  BUCKETS,
  EXECUTION_FAILURE_RECORD,
  LAKE_PREFIXES,
  REGISTRY_KEYS,
  TABLES,
  VERSION_TAGS,
} from '../src/resources.js';
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
  /**
   * An EventBridge Scheduler expression (`rate(1 day)`, `cron(0 3 * * ? *)`) starting one execution per model
   * slot (target x feature set, MODEL_SETS) with input {"target": ..., "set": ...}. @default no schedule: runs
   * start on demand only
   */
  readonly schedule?: string;
  /** Addresses subscribed to the notification topic. @default none */
  readonly notificationEmails?: readonly string[];
}

/** How a training run ends; each end publishes one notification saying which (its `outcome`). */
export const TRAINING_OUTCOMES = ['promoted', 'kept', 'failed'] as const;
export type TrainingOutcome = (typeof TRAINING_OUTCOMES)[number];

/** DynamoDB errors that mean the request was not applied: safe to send again. */
const DYNAMO_THROTTLED = [
  'DynamoDB.ProvisionedThroughputExceededException',
  'DynamoDB.RequestLimitExceeded',
  'DynamoDB.ThrottlingException',
];
/** The error a failed DynamoDB condition raises in a state (a taken version tag, a moved pointer). */
const CONDITION_FAILED = 'DynamoDB.ConditionalCheckFailedException';

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
 *   env TARGET, TRAIN_SET, CANDIDATE_VERSION, MODEL_URI, LAKE_BUCKET, REGISTRY_TABLE
 *   `train`    writes <prefix>/<target>/<version>/{model.onnx,feature_spec.json,metrics.json} and
 *              publishes the candidate NOT active; its metrics.json records the held-out window
 *   `evaluate` scores the candidate and the active model on that same held-out window and writes
 *              <prefix>/<target>/<version>/evaluation.json =
 *              {"candidate":{"version":s,...},"active":{"version":s,...}|null,"decision":{"promote":b,...}, ...}
 * Promotion itself needs no code: the state machine reads evaluation.json and flips the active pointer of the
 * run's slot (REGISTRY_KEYS.active(target, set): pk="active#<target>" for l2, "active#<target>.ticker";
 * sk="active", version, activatedAt) with a conditional DynamoDB write (PutItem
 * when there is no pointer yet, else UpdateItem keeping its history), the same compare-and-set as the trainer's
 * `promote` (registry activate with ifCurrent): if the pointer moved since
 * evaluation, the comparison is stale and the execution fails instead of overwriting it. Promote and
 * PromoteFirst are the only states that write the pointer.
 *
 * Start it with {"target": "<target>", "set": "<l2|ticker>", "version": "<version>"} (on demand), or without
 * `version` (on demand, or the schedule's executions): then the next version tag, qs-<feature version>.0.<n>, is
 * claimed in the registry table as the CLI's claimNextVersion claims it. `set` picks the model slot (the
 * registry's slot per target and feature set, src/model/types.ts slotKey): absent, `l2`, as before sets
 * existed; the trainer gets it as TRAIN_SET, and the Promote states write that slot's pointer. Another value
 * fails the execution (notified) before anything is claimed or trained. Every end publishes to the notification
 * topic: promoted, kept with the gate's reasons, or failed with the error and cause, which the failure path first
 * writes beside the run's files as failure.json (the trainer's run record exists only when the trainer itself got
 * to write it).
 *
 *   WhichSlot? -> Slot-l2 | Slot-ticker (unknown set: UnknownSet -> DescribeClaimFailure ...) -> HasVersion?
 *   HasVersion? -> Prepare -> ReserveVersion ----------------------------.
 *              `-> NextVersionTag -> ClaimVersionTag -> UseVersionTag --+-> Train -> Evaluate -> ReadEvaluation
 *                  ^ taken tag: next n ---------'                          -> PassesGate? -> Promote(First)
 *   -> NotifyPromoted -> Promoted | NotifyKept -> KeptActive;  any failure: DescribeFailure -> RecordFailure
 *   -> NotifyFailed -> TrainingFailed (a failed claim: DescribeClaimFailure -> NotifyFailed -> TrainingFailed)
 */
export class TrainingPipeline extends Construct {
  readonly stateMachine: StateMachine;
  readonly taskDefinition: FargateTaskDefinition;
  readonly logGroup: LogGroup;
  readonly alarms: Alarm[] = [];
  readonly taskTimeout: Duration;
  readonly taskAttempts: number;
  /** Every run's end: promoted, kept (with the gate's reasons) or failed (with the error and cause). */
  readonly notificationTopic: Topic;
  /** One per model slot (target x feature set) when a schedule is given, else none. */
  readonly schedules: Schedule[] = [];

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
    const scheduleProblem =
      props.schedule === undefined ? undefined : scheduleExpressionProblem(props.schedule);
    if (scheduleProblem) throw new InvalidPropError('TrainingPipeline', 'schedule', scheduleProblem);
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
              { name: 'TRAIN_SET', value: JsonPath.stringAt('$.slot.set') },
              { name: 'CANDIDATE_VERSION', value: JsonPath.stringAt('$.version') },
            ],
          },
        ],
        resultPath: JsonPath.DISCARD,
        taskTimeout: { seconds: timeout.toSeconds() },
      });

    // The run's version: the input's `version` when it has one (an on-demand run given a version), else the next
    // version tag, claimed here as the CLI's claimNextVersion claims it (src/model/registry.ts; the keys and the
    // tag's form are src/resources.ts REGISTRY_KEYS and VERSION_TAGS): the series' counter advanced by an atomic
    // ADD, then the tag's claim row put on condition that it does not exist, taking the next n when it does (a
    // run given that version by hand claimed it). A scheduled execution (input {"target", "set"}) claims its tag
    // so: one tag series per target, shared by its slots (their versions share the target's partition and files).
    const series = VERSION_TAGS.series(FEATURE_VERSION);
    const targetKey = DynamoAttributeValue.fromString(JsonPath.stringAt('$.target'));
    const claimKey = (tag: string) => ({
      pk: targetKey,
      sk: DynamoAttributeValue.fromString(JsonPath.format(REGISTRY_KEYS.tagClaim('', '{}').sk, tag)),
    });
    const enteredAt = DynamoAttributeValue.fromString(JsonPath.stringAt('$$.State.EnteredTime'));
    const retryThrottled = (task: TaskStateBase) =>
      task.addRetry({
        errors: DYNAMO_THROTTLED,
        interval: Duration.seconds(1),
        backoffRate: 2,
        maxAttempts: 3,
      });
    const prepare = new Pass(this, 'Prepare', {
      comment: "The input's version is the candidate version.",
      parameters: { 'target.$': '$.target', 'slot.$': '$.slot', 'version.$': '$.version' },
    });
    // Unconditional: re-running a version by hand is allowed; the row only keeps claims from handing it out.
    const reserveVersion = new DynamoUpdateItem(this, 'ReserveVersion', {
      comment: 'The claim row of a version given by hand, so that no claimed tag takes it.',
      table: props.registryTable,
      key: claimKey(JsonPath.stringAt('$.version')),
      updateExpression: 'SET claimedAt = if_not_exists(claimedAt, :at)',
      expressionAttributeValues: { ':at': enteredAt },
      resultPath: JsonPath.DISCARD,
    });
    const nextTag = new DynamoUpdateItem(this, 'NextVersionTag', {
      comment: `The next n of the target's ${series}.<n> tags.`,
      table: props.registryTable,
      key: {
        pk: targetKey,
        sk: DynamoAttributeValue.fromString(REGISTRY_KEYS.tagCounter('', series).sk),
      },
      updateExpression: 'ADD n :one',
      expressionAttributeValues: { ':one': DynamoAttributeValue.fromNumber(1) },
      returnValues: DynamoReturnValues.UPDATED_NEW,
      resultSelector: {
        tag: JsonPath.format(VERSION_TAGS.tag(series, '{}'), JsonPath.stringAt('$.Attributes.n.N')),
      },
      resultPath: '$.claim',
    });
    const claimTag = new DynamoPutItem(this, 'ClaimVersionTag', {
      table: props.registryTable,
      item: {
        ...claimKey(JsonPath.stringAt('$.claim.tag')),
        claimedAt: enteredAt,
        execution: DynamoAttributeValue.fromString(JsonPath.executionId),
      },
      conditionExpression: 'attribute_not_exists(sk)',
      resultPath: JsonPath.DISCARD,
    });
    const useTag = new Pass(this, 'UseVersionTag', {
      comment: 'The claimed tag is the candidate version.',
      parameters: { 'target.$': '$.target', 'slot.$': '$.slot', 'version.$': '$.claim.tag' },
    });
    const train = runTrainer('Train', 'train');
    const evaluate = runTrainer('Evaluate', 'evaluate');

    // Every end notifies the topic: promoted, kept (with the gate's reasons) and failed (error and cause).
    this.notificationTopic = new Topic(this, 'NotificationTopic', {
      displayName: 'QuoteWatch training',
      enforceSSL: true,
      // Only the state machine publishes, with its role: the AWS-managed SNS key serves it (cdk-nag SNS2).
      masterKey: Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns'),
    });
    for (const email of props.notificationEmails ?? []) {
      this.notificationTopic.addSubscription(new EmailSubscription(email));
    }
    const notify = (stateId: string, outcome: TrainingOutcome, message: TaskInput, target: string) => {
      const task = new SnsPublish(this, stateId, {
        topic: this.notificationTopic,
        subject: `QuoteWatch training: ${outcome}`,
        message,
        messageAttributes: { outcome: { value: outcome }, target: { value: target } },
        resultPath: JsonPath.DISCARD,
      });
      task.addRetry({
        errors: ['States.TaskFailed'],
        interval: Duration.seconds(2),
        backoffRate: 2,
        maxAttempts: 3,
      });
      return task;
    };
    // What the gate decided, from evaluation.json (models/eval/gate.ts): both models' figures, the gain in the
    // main metric with its interval, and the reasons the active model is kept (none when promoting).
    const evaluated = (outcome: TrainingOutcome) =>
      TaskInput.fromObject({
        outcome,
        target: JsonPath.stringAt('$.target'),
        set: JsonPath.stringAt('$.slot.set'),
        version: JsonPath.stringAt('$.version'),
        execution: JsonPath.executionId,
        candidate: JsonPath.objectAt('$.evaluation.result.candidate'),
        active: JsonPath.objectAt('$.evaluation.result.active'),
        mainMetric: JsonPath.stringAt('$.evaluation.result.decision.mainMetric'),
        reference: JsonPath.stringAt('$.evaluation.result.decision.reference'),
        gain: JsonPath.objectAt('$.evaluation.result.decision.gain'),
        reasons: JsonPath.listAt('$.evaluation.result.decision.reasons'),
      });
    const targetPath = JsonPath.stringAt('$.target');
    const notifyPromoted = notify('NotifyPromoted', 'promoted', evaluated('promoted'), targetPath);
    const notifyKept = notify('NotifyKept', 'kept', evaluated('kept'), targetPath);
    // A failure's notification is its record (below): outcome "failed", target, version (none when claiming a
    // tag failed), execution, error and cause.
    const notifyFailed = notify(
      'NotifyFailed',
      'failed',
      TaskInput.fromJsonPathAt('$.record'),
      JsonPath.stringAt('$.record.target'),
    );

    // A failure caught after the version is known (the trainer tasks after their retries: the trainer exited 1
    // having written its failed run record, or ECS could not start the task, or it timed out; reading
    // evaluation.json; the promotion's compare-and-set) is recorded beside the run's files as failure.json
    // (`quotewatch runs` shows the run failed with it), then notified; then the execution fails naming it.
    const failed = new Fail(this, 'TrainingFailed', {
      errorPath: JsonPath.stringAt('$.failure.Error'),
      causePath: JsonPath.stringAt('$.failure.Cause'),
    });
    // The record (models/runs.ts ExecutionFailure reads it): no version when claiming a tag failed.
    const failureRecord = (version?: string) => ({
      outcome: 'failed' satisfies TrainingOutcome,
      target: JsonPath.stringAt('$.target'),
      ...(version === undefined ? {} : { version }),
      execution: JsonPath.executionId,
      failedAt: JsonPath.stateEnteredTime,
      error: JsonPath.stringAt('$.failure.Error'),
      cause: JsonPath.stringAt('$.failure.Cause'),
    });
    const describeFailure = new Pass(this, 'DescribeFailure', {
      parameters: failureRecord(JsonPath.stringAt('$.version')),
      resultPath: '$.record',
    });
    const recordFailure = new CallAwsService(this, 'RecordFailure', {
      service: 's3',
      action: 'putObject',
      parameters: {
        Bucket: props.modelBucket.bucketName,
        Key: JsonPath.format(
          `${prefix}/{}/{}/${EXECUTION_FAILURE_RECORD}`,
          JsonPath.stringAt('$.record.target'),
          JsonPath.stringAt('$.record.version'),
        ),
        // The record as a JSON object: Step Functions writes it as its JSON text (so does the local binding).
        // Not States.JsonToString: aws-local-stepfunctions 3.0.0 strips every backslash from an intrinsic
        // function's result, which breaks the JSON of any string holding a quote (a cause always does).
        Body: JsonPath.objectAt('$.record'),
        ContentType: 'application/json',
      },
      iamResources: [props.modelBucket.arnForObjects(`${prefix}/*/${EXECUTION_FAILURE_RECORD}`)],
      resultPath: JsonPath.DISCARD,
    });
    recordFailure.addRetry({
      errors: ['States.TaskFailed', 'S3.SdkClientException'],
      interval: Duration.seconds(5),
      backoffRate: 2,
      maxAttempts: 2,
    });
    // Not recorded, the failure is still notified and fails the execution.
    recordFailure.addCatch(notifyFailed, { errors: ['States.ALL'], resultPath: '$.recordError' });
    describeFailure.next(recordFailure).next(notifyFailed);
    // A notification that cannot be sent does not hide the failure it was about.
    notifyFailed.addCatch(failed, { errors: ['States.ALL'], resultPath: '$.notifyError' });
    notifyFailed.next(failed);
    // Claiming a tag failed (not a taken tag: that takes the next one): no version, so nothing to record beside.
    const describeClaimFailure = new Pass(this, 'DescribeClaimFailure', {
      parameters: failureRecord(),
      resultPath: '$.record',
    });
    describeClaimFailure.next(notifyFailed);

    retryThrottled(reserveVersion);
    reserveVersion.addCatch(describeFailure, { errors: ['States.ALL'], resultPath: '$.failure' });
    retryThrottled(nextTag);
    nextTag.addCatch(describeClaimFailure, { errors: ['States.ALL'], resultPath: '$.failure' });
    retryThrottled(claimTag);
    claimTag.addCatch(nextTag, { errors: [CONDITION_FAILED], resultPath: JsonPath.DISCARD });
    claimTag.addCatch(describeClaimFailure, { errors: ['States.ALL'], resultPath: '$.failure' });

    // A failed task (the trainer exits 1 having written a failed run record; or ECS could not start it) is
    // retried with backoff, up to taskAttempts in all; then the failure is recorded and notified.
    for (const task of [train, evaluate]) {
      if (attempts > 1) {
        task.addRetry({
          errors: ['States.TaskFailed', 'ECS.AmazonECSException', 'States.Timeout'],
          interval: Duration.seconds(30),
          backoffRate: 2,
          maxAttempts: attempts - 1,
        });
      }
      task.addCatch(describeFailure, { errors: ['States.ALL'], resultPath: '$.failure' });
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
    readEvaluation.addCatch(describeFailure, { errors: ['States.ALL'], resultPath: '$.failure' });
    // The pointer of the run's slot: its partition key as the Slot-<set> state computed it from
    // REGISTRY_KEYS.active(target, set) (below), its sort key the same for every slot.
    const pointerKey = {
      pk: DynamoAttributeValue.fromString(JsonPath.stringAt('$.slot.pointer')),
      sk: DynamoAttributeValue.fromString(REGISTRY_KEYS.active('').sk),
    };
    const newVersion = DynamoAttributeValue.fromString(JsonPath.stringAt('$.version'));
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
    // The pointer moved since evaluation (a stale comparison): recorded and notified as a failure, not retried.
    for (const task of [promoteFirst, promote]) {
      retryThrottled(task);
      task.addCatch(describeFailure, { errors: ['States.ALL'], resultPath: '$.failure' });
    }
    const promoted = notifyPromoted.next(new Succeed(this, 'Promoted'));
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
        notifyKept.next(
          new Succeed(this, 'KeptActive', {
            comment: 'The candidate stays registered but inactive; evaluation.json says why.',
          }),
        ),
      );
    const run = train.next(evaluate).next(readEvaluation).next(isBetter);
    const hasVersion = new Choice(this, 'HasVersion?')
      .when(Condition.isPresent('$.version'), prepare.next(reserveVersion).next(run))
      .otherwise(nextTag.next(claimTag).next(useTag).next(train));

    // The run's model slot, from the input's `set` (absent: l2, so {"target"} inputs train the l2 slot as before):
    // one state per feature set (MODEL_SETS) puts $.slot = {set, pointer}, where pointer is the partition key of
    // the slot's active pointer rendered by the registry's own REGISTRY_KEYS.active(target, set) (the l2 key and
    // the others differ in form: "active#<target>", "active#<target>.<set>"). The input cannot choose the key:
    // $.slot is written here, after the input. Another set fails the run before anything is claimed.
    const unknownSet = new Pass(this, 'UnknownSet', {
      comment: `The input's set is none of ${MODEL_SETS.join(', ')}.`,
      parameters: {
        Error: 'QuoteWatch.UnknownSet',
        Cause: `the input's set must be one of: ${MODEL_SETS.join(', ')} (absent: l2)`,
      },
      resultPath: '$.failure',
    });
    unknownSet.next(describeClaimFailure);
    const whichSlot = new Choice(this, 'WhichSlot?', {
      comment: 'The model slot (target, feature set) the run trains and promotes.',
    });
    const slots = MODEL_SETS.map((set) => {
      const slot = new Pass(this, `Slot-${set}`, {
        comment: `The ${slotKey('<target>', set)} slot: TRAIN_SET=${set}, its active pointer.`,
        parameters: {
          set,
          pointer: JsonPath.format(REGISTRY_KEYS.active('{}', set).pk, JsonPath.stringAt('$.target')),
        },
        resultPath: '$.slot',
      });
      slot.next(hasVersion);
      return { set, slot };
    });
    // Absent first: a comparison on a missing $.set would be a runtime error, not a mismatch.
    whichSlot.when(Condition.not(Condition.isPresent('$.set')), slots.find((s) => s.set === 'l2')!.slot);
    for (const { set, slot } of slots) whichSlot.when(Condition.stringEquals('$.set', set), slot);
    whichSlot.otherwise(unknownSet);

    this.stateMachine = new StateMachine(this, 'StateMachine', {
      comment: `Retrain and promote-if-better for targets: ${TARGETS.join(', ')}; feature sets: ${MODEL_SETS.join(', ')}`,
      definitionBody: DefinitionBody.fromChainable(whichSlot),
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

    // On a schedule (off unless given): one execution per model slot (target x feature set), whose input has no
    // version, so it claims the next tag. The l2 slots keep their schedules' construct ids from before sets.
    if (props.schedule !== undefined) {
      for (const target of TARGETS) {
        for (const set of MODEL_SETS) {
          this.schedules.push(
            new Schedule(this, `Schedule-${slotKey(target, set)}`, {
              description: `QuoteWatch training of ${slotKey(target, set)}`,
              schedule: ScheduleExpression.expression(props.schedule),
              target: new StepFunctionsStartExecution(this.stateMachine, {
                input: ScheduleTargetInput.fromObject({ target, set }),
              }),
            }),
          );
        }
      }
    }

    const smRole = this.stateMachine.role;
    acknowledge(smRole, 'AwsSolutions-IAM5[Resource::*]', STATE_MACHINE_WILDCARD_REASON);
    acknowledgeWildcardResource(
      smRole,
      props.modelBucket.arnForObjects(`${prefix}/*`),
      'GetObject of evaluation.json, whose key holds the run version.',
    );
    acknowledgeWildcardResource(
      smRole,
      props.modelBucket.arnForObjects(`${prefix}/*/${EXECUTION_FAILURE_RECORD}`),
      `PutObject of a failed run's ${EXECUTION_FAILURE_RECORD} only, whose key holds the target and run version.`,
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
