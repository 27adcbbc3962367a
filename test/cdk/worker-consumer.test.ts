/**
 * The deployed worker reads the market stream with enhanced fan-out: CONSUMER_MODE=fanout in its container, and a
 * task role that can register its stream consumer and subscribe through it, read the stream the polling way
 * (crash-recovery replays), and nothing more. Synthesized once; Lambda code is not bundled (test/cdk/stack.test.ts
 * covers it); cdk-nag (AWS Solutions) over the stack.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App, type CfnElement, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { readConsumerConfig } from '../../src/config.js';

type Json = Record<string, unknown>;
interface CfnResource {
  Type: string;
  Properties: Json;
}
interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

const outdir = mkdtempSync(path.join(tmpdir(), 'qw-cdk-consumer-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

const cdkJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
  context: Record<string, unknown>;
};
const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
const stack = new QuoteWatchStack(app, 'QuoteWatch');
const nag = new AwsSolutionsChecks(app);
Validations.of(app).addPlugins(nag);
const resources = Template.fromStack(stack).toJSON().Resources as Record<string, CfnResource>;
const idOf = (c: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(c.node.defaultChild as CfnElement);

const streamId = idOf(stack.marketStream.stream);
const streamArn = { 'Fn::GetAtt': [streamId, 'Arn'] };
const taskRoleId = idOf(stack.worker.taskDefinition.taskRole);
/** Every statement of a policy attached to the worker's task role. */
const workerStatements = Object.values(resources)
  .filter((r) => r.Type === 'AWS::IAM::Policy')
  .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: taskRoleId }]))
  .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
const kinesisStatements = workerStatements.filter((s) =>
  [s.Action].flat().some((a) => a.startsWith('kinesis:')),
);
/** The Kinesis actions allowed on exactly `resource`. */
const actionsOn = (resource: unknown) =>
  kinesisStatements
    .filter((s) => JSON.stringify([s.Resource].flat()) === JSON.stringify([resource]))
    .flatMap((s) => [s.Action].flat())
    .sort();

describe('worker consumer (CDK)', () => {
  it('runs the worker with enhanced fan-out, as readConsumerConfig reads it', () => {
    const task = resources[idOf(stack.worker.taskDefinition)]!;
    const [container] = task.Properties.ContainerDefinitions as {
      Environment: { Name: string; Value: unknown }[];
    }[];
    const env = Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
    expect(env.CONSUMER_MODE).toBe('fanout');
    const config = readConsumerConfig(
      Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string')),
    );
    expect(config.mode).toBe('fanout');
    expect(config.consumerName).toBe(env.CONSUMER_NAME);
  });

  it('lets the task role register, describe and subscribe through its stream consumer and read the stream', () => {
    expect(actionsOn(streamArn)).toEqual([
      'kinesis:DescribeStreamSummary',
      'kinesis:GetRecords',
      'kinesis:GetShardIterator',
      'kinesis:ListShards',
      'kinesis:RegisterStreamConsumer',
    ]);
    const consumerArn = {
      'Fn::Join': ['', [streamArn, `/consumer/${stack.worker.consumerName}:*`]],
    };
    expect(actionsOn(consumerArn)).toEqual(['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard']);
    // Nothing else on Kinesis: no writes to the market stream, no stream-wide listing, no deregistering.
    const all = kinesisStatements.flatMap((s) => [s.Action].flat());
    expect(all.filter((a) => /Put|ListStreams|DescribeStream$|Deregister|\*/.test(a))).toEqual(
      stack.featuresStream ? ['kinesis:PutRecord', 'kinesis:PutRecords'] : [],
    );
    expect(kinesisStatements.every((s) => s.Effect === 'Allow')).toBe(true);
  });

  it('passes cdk-nag (AWS Solutions): the consumer ARN wildcard is acknowledged with a reason', () => {
    const report = nag.validateScope(stack);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
    );
    expect(findings).toEqual([]);
  });
});
