/**
 * `npm run train`: the training state machine, run locally. The definition is THE one the CDK app synthesizes
 * (lib/training-pipeline.ts inside the QuoteWatch stack, cdk.json's context), taken from the template; only its
 * CloudFormation references are filled in (bucket and table names with the local ones, other ARNs with
 * placeholders). aws-local-stepfunctions executes it; each Task state is bound to the same code it runs deployed:
 *
 *   ecs:runTask.sync        the trainer entry (models/train/main.ts <step>) as a child process, with the
 *                           container override's command and environment (what the Fargate task would get)
 *   aws-sdk:s3:getObject, aws-sdk:s3:putObject  on the local S3 (src/aws/clients.ts): evaluation.json read,
 *                           a failed run's failure.json written
 *   dynamodb:putItem/updateItem  on the local DynamoDB, conditions and returned values included (the version
 *                           tag claim, the compare-and-set promotion)
 *   sns:publish             NO emulator runs SNS locally: the notification is printed in the progress output and,
 *                           given a file (`npm run train`: <QW_DATA_DIR>/training-notifications.jsonl), appended
 *                           to it as one JSON line {topic, subject, attributes, message}
 *
 * Progress: each state as it is entered, retries, the trainer's log lines, and the notifications.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  PutItemCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { App, type CfnResource, Stack } from 'aws-cdk-lib';
import { type RunOptions, StateMachine, type StateMachineDefinition } from 'aws-local-stepfunctions';
import { QuoteWatchStack } from '../lib/quotewatch-stack.js';
import { dynamoClient, s3Client } from '../src/aws/clients.js';
import { readLocalConfig, readResourceNames } from '../src/config.js';
import { QuoteWatchError } from '../src/errors.js';
import { parseModelUri } from '../src/model/registry.js';
import { type FeatureSetName, MODEL_SETS, slotKey } from '../src/model/types.js';

type Env = Record<string, string | undefined>;
type Json = Record<string, unknown>;

export class LocalTrainingError extends QuoteWatchError {}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TRAINING_ENTRY = join(ROOT, 'models/train/main.ts');

/** A CloudFormation reference in the definition: {Ref: id} or {"Fn::GetAtt": [id, attribute]}. */
export type Reference = { Ref: string } | { 'Fn::GetAtt': [string, string] };

export interface SynthesizedDefinition {
  /** DefinitionString's Fn::Join parts: strings and references. */
  parts: (string | Reference)[];
  /** Logical ids of the resources the local run binds by name. */
  modelBucket: string;
  registryTable: string;
}

/** The training state machine's definition parts in a synthesized template of `stack`. */
export function trainingDefinition(stack: QuoteWatchStack, template: unknown): SynthesizedDefinition {
  const id = (construct: { node: { defaultChild?: unknown } }) =>
    Stack.of(stack).getLogicalId(construct.node.defaultChild as CfnResource);
  const resources = (template as { Resources: Record<string, { Properties: Json }> }).Resources;
  const definition = resources[id(stack.training.stateMachine)]?.Properties.DefinitionString as
    | { 'Fn::Join': [string, (string | Reference)[]] }
    | undefined;
  if (!definition) throw new LocalTrainingError('the synthesized template has no training state machine');
  return {
    parts: definition['Fn::Join'][1],
    modelBucket: id(stack.storage.modelBucket),
    registryTable: id(stack.storage.registryTable),
  };
}

/** Synthesizes the stack as `cdk synth` does (cdk.json's context) and returns the training definition. */
export function synthesizeTrainingDefinition(): SynthesizedDefinition {
  const outdir = mkdtempSync(join(tmpdir(), 'qw-synth-'));
  try {
    const cdkJson = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')) as { context: Json };
    const app = new App({ outdir, context: cdkJson.context });
    const stack = new QuoteWatchStack(app, 'QuoteWatch');
    return trainingDefinition(stack, app.synth().getStackArtifact(stack.artifactId).template);
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

/** The definition with every reference replaced by `bind(reference)`. */
export function resolveDefinition(
  parts: readonly (string | Reference)[],
  bind: (r: Reference) => string,
): Json {
  return JSON.parse(parts.map((p) => (typeof p === 'string' ? p : bind(p))).join('')) as Json;
}

const referenceId = (r: Reference) => ('Ref' in r ? r.Ref : r['Fn::GetAtt'][0]);

/** Local names for the resources the run touches; everything else (cluster, task definition) a placeholder. */
export function localBinding(synth: SynthesizedDefinition, env: Env): (r: Reference) => string {
  const names = readResourceNames(env);
  const models = parseModelUri(env.MODEL_URI ?? '');
  if (models.kind !== 's3') throw new LocalTrainingError('the local training run needs MODEL_URI=s3://...');
  return (r) => {
    const id = referenceId(r);
    if (id === 'AWS::Partition') return 'aws';
    if (id === 'AWS::Region') return 'us-east-1';
    if (id === 'AWS::AccountId') return '000000000000';
    if ('Ref' in r && id === synth.modelBucket) return models.bucket;
    if ('Ref' in r && id === synth.registryTable) return names.registryTable;
    return `local-${id}`;
  };
}

/** Runs one trainer step as the ECS task would: the override's command's last word and its environment. */
async function runTrainerTask(input: Json, env: Env, progress: (line: string) => void): Promise<Json> {
  const override = (input.Overrides as { ContainerOverrides: Json[] }).ContainerOverrides[0] as {
    Command: string[];
    Environment: { Name: string; Value: string }[];
  };
  const step = override.Command.at(-1)!;
  const taskEnv = {
    ...process.env,
    ...env,
    ...Object.fromEntries(override.Environment.map((e) => [e.Name, e.Value])),
  };
  const child = spawn(process.execPath, ['--import', 'tsx', TRAINING_ENTRY, step], {
    cwd: ROOT,
    env: taskEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      progress(`  ${step} | ${line}`);
    });
  }
  const code = await new Promise<number>((done) => child.on('close', (c) => done(c ?? 1)));
  if (code !== 0) {
    const error = new Error(`trainer ${step} exited ${code}: ${lines.at(-1) ?? ''}`);
    error.name = 'States.TaskFailed';
    throw error;
  }
  return { ExitCode: code };
}

async function getObject(input: Json, env: Env): Promise<Json> {
  const res = await s3Client(env).send(
    new GetObjectCommand({ Bucket: String(input.Bucket), Key: String(input.Key) }),
  );
  return { Body: await res.Body!.transformToString() };
}

async function putObject(input: Json, env: Env): Promise<Json> {
  const res = await s3Client(env).send(
    new PutObjectCommand({
      Bucket: String(input.Bucket),
      Key: String(input.Key),
      // A JSON object given as the body is written as its JSON text, as Step Functions does.
      Body: typeof input.Body === 'string' ? input.Body : JSON.stringify(input.Body),
      ContentType: input.ContentType as string | undefined,
    }),
  );
  return { ETag: res.ETag ?? null };
}

/**
 * PutItem or UpdateItem with the state's parameters (the SDK's names, as the service integration takes them); the
 * result is the API's response, as the optimized integration returns it (an UpdateItem's `Attributes`).
 */
async function writeItem(kind: 'put' | 'update', input: Json, env: Env): Promise<Json> {
  const common = {
    TableName: String(input.TableName),
    ConditionExpression: input.ConditionExpression as string | undefined,
    ExpressionAttributeValues: input.ExpressionAttributeValues as Record<string, AttributeValue> | undefined,
  };
  try {
    const db = dynamoClient(env);
    if (kind === 'put') {
      await db.send(new PutItemCommand({ ...common, Item: input.Item as Record<string, AttributeValue> }));
      return {};
    }
    const out = await db.send(
      new UpdateItemCommand({
        ...common,
        Key: input.Key as Record<string, AttributeValue>,
        UpdateExpression: String(input.UpdateExpression),
        ReturnValues: input.ReturnValues as UpdateItemCommandInput['ReturnValues'],
      }),
    );
    return out.Attributes ? { Attributes: out.Attributes } : {};
  } catch (err) {
    if (err instanceof ConditionalCheckFailedException) {
      // The error name the state machine sees deployed (a taken version tag, a moved pointer).
      const error = new Error(`${kind} on ${common.TableName}: ${common.ConditionExpression} did not hold`);
      error.name = 'DynamoDB.ConditionalCheckFailedException';
      throw error;
    }
    throw err;
  }
}

/** A notification the state machine published (deployed: to its SNS topic). */
export interface Notification {
  topic: string;
  subject: string | null;
  /** The message attributes' string values (outcome, target). */
  attributes: Record<string, string>;
  /** The message: what a subscriber receives as JSON text. */
  message: unknown;
}

/**
 * sns:publish, locally: there is no SNS emulator, so the notification goes to the progress output and, with a
 * file, one JSON line appended to it.
 */
function publish(input: Json, sink: (n: Notification) => void): Json {
  const attributes = Object.fromEntries(
    Object.entries((input.MessageAttributes ?? {}) as Record<string, { StringValue?: string }>).map(
      ([name, v]) => [name, String(v.StringValue ?? '')],
    ),
  );
  sink({
    topic: String(input.TopicArn),
    subject: typeof input.Subject === 'string' ? input.Subject : null,
    attributes,
    message: input.Message,
  });
  return { MessageId: randomUUID() };
}

/** The local binding of each Task state, by its resource. */
export function taskHandlers(
  definition: Json,
  env: Env,
  progress: (line: string) => void,
  notify: (n: Notification) => void = () => {},
): Record<string, (input: Json) => Promise<Json>> {
  const handlers: Record<string, (input: Json) => Promise<Json>> = {};
  for (const [name, state] of Object.entries(definition.States as Record<string, Json>)) {
    if (state.Type !== 'Task') continue;
    const resource = String(state.Resource);
    if (resource.endsWith(':ecs:runTask.sync'))
      handlers[name] = (input) => runTrainerTask(input, env, progress);
    else if (resource.endsWith(':aws-sdk:s3:getObject')) handlers[name] = (input) => getObject(input, env);
    else if (resource.endsWith(':aws-sdk:s3:putObject')) handlers[name] = (input) => putObject(input, env);
    else if (resource.endsWith(':dynamodb:putItem')) handlers[name] = (input) => writeItem('put', input, env);
    else if (resource.endsWith(':dynamodb:updateItem'))
      handlers[name] = (input) => writeItem('update', input, env);
    else if (resource.endsWith(':sns:publish')) handlers[name] = async (input) => publish(input, notify);
    else throw new LocalTrainingError(`state ${name}: no local binding for ${resource}`);
  }
  return handlers;
}

export interface LocalRun {
  /** The execution's output, or the failure. */
  status: 'SUCCEEDED' | 'FAILED';
  output?: unknown;
  error?: string;
  /** The execution's name: the version given, else a UUID (as a scheduled execution's). */
  execution: string;
  /** The candidate version: the one given, or the tag the execution claimed; undefined if it got none. */
  version?: string;
  /** States in the order they were entered. */
  states: string[];
  /** Task attempts retried after a failure (the definition's Retry). */
  retries: number;
  /** What the execution published, in order. */
  notifications: Notification[];
  definition: Json;
}

export interface LocalRunOptions {
  /** A file each notification is appended to as one JSON line (created with its folder). @default none */
  notificationsFile?: string;
  /**
   * The input's `set`: the model slot to train and promote. @default none in the input, which the definition
   * takes as l2
   */
  set?: FeatureSetName;
}

/** Where `npm run train` appends the notifications: beside the local system's data. */
export const localNotificationsFile = (env: Env) =>
  join(readLocalConfig(env).dataDir, 'training-notifications.jsonl');

/**
 * One execution of the training state machine for `target`. With `version` its input is {target, version} and
 * the execution is named after it; without, its input is {target} and its name a UUID, as a scheduled
 * execution's: the state machine claims the next version tag itself. `options.set` adds {set} to the input (the
 * slot; without it the definition trains the l2 slot). Progress lines name the slot (slotKey) and the version.
 */
export async function runTrainingStateMachine(
  target: string,
  version: string | undefined,
  env: Env,
  progress: (line: string) => void = (line) => console.error(line),
  synth: SynthesizedDefinition = synthesizeTrainingDefinition(),
  options: LocalRunOptions = {},
): Promise<LocalRun> {
  const definition = resolveDefinition(synth.parts, localBinding(synth, env));
  const machine = new StateMachine(definition as unknown as StateMachineDefinition, {
    validationOptions: { checkArn: false },
  });
  const startedAt = new Date().toISOString();
  const name = version ?? randomUUID();
  const input: Record<string, string> = {
    target,
    ...(options.set === undefined ? {} : { set: options.set }),
    ...(version === undefined ? {} : { version }),
  };
  const slot = slotKey(target, options.set);
  let label = version ?? `${name} (claiming a version tag)`;
  const notifications: Notification[] = [];
  const notify = (n: Notification) => {
    notifications.push(n);
    progress(`[${slot} ${label}] notification ${n.subject ?? ''}: ${JSON.stringify(n.message)}`);
    if (options.notificationsFile) {
      mkdirSync(dirname(options.notificationsFile), { recursive: true });
      appendFileSync(options.notificationsFile, `${JSON.stringify(n)}\n`);
    }
  };
  const execution = machine.run(input, {
    overrides: {
      taskResourceLocalHandlers: taskHandlers(definition, env, progress, notify) as NonNullable<
        RunOptions['overrides']
      >['taskResourceLocalHandlers'],
      // Retry pauses are the deployed backoff's; locally a failed attempt is retried at once.
      retryIntervalOverrides: Object.fromEntries(Object.keys(definition.States as Json).map((s) => [s, 0])),
    },
    context: {
      Execution: {
        Id: `arn:aws:states:us-east-1:000000000000:execution:local-training:${name}`,
        Name: name,
        Input: input,
        StartTime: startedAt,
      },
      State: { EnteredTime: startedAt },
    },
  });
  const states: string[] = [];
  let retries = 0;
  let runVersion = version;
  const watch = (async () => {
    for await (const event of execution.eventLogs) {
      const e = event as { type: string; state?: { name: string; output?: unknown } };
      if (e.type === 'StateEntered' && e.state) {
        states.push(e.state.name);
        progress(`[${slot} ${label}] ${e.state.name}`);
      } else if (e.type === 'StateRetried' && e.state) {
        retries++;
        progress(`[${slot} ${label}] ${e.state.name} failed: retrying`);
      } else if (e.type === 'StateExited' && runVersion === undefined) {
        // The claimed tag, once a state's output carries it (UseVersionTag).
        const claimed = (e.state?.output as { version?: unknown } | undefined)?.version;
        if (typeof claimed === 'string') {
          runVersion = claimed;
          label = claimed;
          progress(`[${slot} ${label}] claimed version ${claimed}`);
        }
      }
    }
  })();
  const run = { execution: name, states, notifications, definition };
  try {
    const output = await execution.result;
    await watch;
    return { status: 'SUCCEEDED', output, version: runVersion, retries, ...run };
  } catch (err) {
    await watch.catch(() => {});
    return {
      status: 'FAILED',
      error: `${(err as Error).name}: ${(err as Error).message}`,
      version: runVersion,
      retries,
      ...run,
    };
  }
}

/**
 * `node --import tsx bin/localTraining.ts TARGET [VERSION] [--set l2|ticker]` (what `quotewatch pipeline` runs
 * per target): without a version the execution claims the next tag; without --set the input has no set (the l2
 * slot). Notifications are appended to localNotificationsFile(env).
 */
async function main(args: string[]): Promise<number> {
  const usage = `usage: node --import tsx bin/localTraining.ts TARGET [VERSION] [--set ${MODEL_SETS.join('|')}]`;
  let parsed: { values: { set?: string }; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: { set: { type: 'string' } }, allowPositionals: true, strict: true });
  } catch (err) {
    console.error(`${(err as Error).message}\n${usage}`);
    return 2;
  }
  const [target, version, ...rest] = parsed.positionals;
  const set = parsed.values.set;
  if (!target || rest.length > 0 || (set !== undefined && !MODEL_SETS.includes(set as FeatureSetName))) {
    console.error(usage);
    return 2;
  }
  const notificationsFile = localNotificationsFile(process.env);
  const run = await runTrainingStateMachine(target, version, process.env, undefined, undefined, {
    notificationsFile,
    ...(set === undefined ? {} : { set: set as FeatureSetName }),
  });
  const slot = slotKey(target, set as FeatureSetName | undefined);
  console.log(`${slot} ${run.version ?? run.execution}: ${run.status} via ${run.states.join(' -> ')}`);
  if (run.error) console.log(`  ${run.error}`);
  if (run.notifications.length > 0) console.log(`  notified (locally: appended to ${notificationsFile})`);
  return run.status === 'SUCCEEDED' ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exit(await main(process.argv.slice(2)));
}
