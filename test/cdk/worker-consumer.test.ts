/**
 * The deployed worker reads the market stream with enhanced fan-out: CONSUMER_MODE=fanout in its container, and a
 * task role that can register its stream consumer and subscribe through it, read the stream the polling way
 * (crash-recovery replays), and nothing more. Synthesized once; Lambda code is not bundled (test/cdk/stack.test.ts
 * covers it); cdk-nag (AWS Solutions) over the stack.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { readConsumerConfig } from '../../src/config.js';
import {
  containerEnv,
  logicalIdIn,
  nagFindings,
  resourcesOf,
  type Statement,
  unbundledApp,
} from './support.js';

const { app, nag } = unbundledApp('qw-cdk-consumer-');
const stack = new QuoteWatchStack(app, 'QuoteWatch');
const resources = resourcesOf(Template.fromStack(stack));
const idOf = logicalIdIn(stack);

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
    const env = containerEnv(task);
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
    expect(nagFindings(nag, stack)).toEqual([]);
  });
});
