/**
 * How the deployed worker reads the market stream, by `-c consumer`: polling GetRecords (the default), or enhanced
 * fan-out through a stream consumer that is a CloudFormation resource (AWS::Kinesis::StreamConsumer, removed by
 * `cdk destroy` with the stream), its exact ARN handed to the worker (CONSUMER_ARN) so nothing is registered at
 * run time. The task role can read the stream the polling way (crash-recovery replays) and, with fan-out,
 * subscribe through that one consumer, and nothing more. The consumer-lag alarm watches the metric Kinesis
 * reports for the chosen way. Lambda code is not bundled (test/cdk/stack.test.ts covers it); cdk-nag over both.
 */
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { WORKER_CONSUMER_NAME } from '../../lib/fargate-services.js';
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

function synth(consumer: 'polling' | 'fanout') {
  const { app, nag } = unbundledApp(`qw-cdk-consumer-${consumer}-`);
  app.node.setContext('consumer', consumer);
  const stack = new QuoteWatchStack(app, 'QuoteWatch');
  const template = Template.fromStack(stack);
  const resources = resourcesOf(template);
  const idOf = logicalIdIn(stack);
  const streamArn = { 'Fn::GetAtt': [idOf(stack.marketStream.stream), 'Arn'] };
  const taskRoleId = idOf(stack.worker.taskDefinition.taskRole);
  const kinesisStatements = Object.values(resources)
    .filter((r) => r.Type === 'AWS::IAM::Policy')
    .filter((p) => JSON.stringify(p.Properties.Roles) === JSON.stringify([{ Ref: taskRoleId }]))
    .flatMap((p) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
    .filter((s) => [s.Action].flat().some((a) => a.startsWith('kinesis:')));
  /** The Kinesis actions allowed on exactly `resource`. */
  const actionsOn = (resource: unknown) =>
    kinesisStatements
      .filter((s) => JSON.stringify([s.Resource].flat()) === JSON.stringify([resource]))
      .flatMap((s) => [s.Action].flat())
      .sort();
  const env = containerEnv(resources[idOf(stack.worker.taskDefinition)]!);
  const stringEnv = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => typeof e[1] === 'string'),
  );
  return { stack, template, resources, nag, idOf, streamArn, kinesisStatements, actionsOn, env, stringEnv };
}

const POLLING_READS = [
  'kinesis:DescribeStreamSummary',
  'kinesis:GetRecords',
  'kinesis:GetShardIterator',
  'kinesis:ListShards',
];

describe('worker consumer (CDK): polling, the default', () => {
  const s = synth('polling');

  it('runs the worker in polling mode, as readConsumerConfig reads it, and registers no consumer', () => {
    expect(readConsumerConfig(s.stringEnv).mode).toBe('polling');
    expect(s.stack.streamConsumer).toBeUndefined();
    s.template.resourceCountIs('AWS::Kinesis::StreamConsumer', 0);
  });

  it('lets the task role read the stream the polling way and nothing else on Kinesis', () => {
    expect(s.actionsOn(s.streamArn)).toEqual(POLLING_READS);
    expect(s.kinesisStatements.flatMap((st) => [st.Action].flat()).sort()).toEqual(POLLING_READS);
  });

  it("alarms on GetRecords' iterator age", () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'GetRecords.IteratorAgeMilliseconds',
      Namespace: 'AWS/Kinesis',
    });
  });

  it('passes cdk-nag (AWS Solutions)', () => {
    expect(nagFindings(s.nag, s.stack)).toEqual([]);
  });
});

describe('worker consumer (CDK): -c consumer=fanout', () => {
  const s = synth('fanout');
  const consumer = s.stack.streamConsumer!;
  const consumerId = s.idOf(consumer as never);
  const consumerArn = { 'Fn::GetAtt': [consumerId, 'ConsumerARN'] };

  it('declares the consumer as a CloudFormation resource on the market stream', () => {
    s.template.resourceCountIs('AWS::Kinesis::StreamConsumer', 1);
    expect(s.resources[consumerId]).toMatchObject({
      Type: 'AWS::Kinesis::StreamConsumer',
      Properties: { StreamARN: s.streamArn, ConsumerName: WORKER_CONSUMER_NAME },
    });
  });

  it('hands the worker the consumer ARN: fan-out mode, nothing to register', () => {
    const config = readConsumerConfig({
      ...s.stringEnv,
      CONSUMER_ARN: 'arn:aws:kinesis:us-east-1:123456789012:stream/s/consumer/c:1',
    });
    expect(config.mode).toBe('fanout');
    expect(s.env.CONSUMER_ARN).toEqual(consumerArn);
    expect(s.env.CONSUMER_NAME).toBe(WORKER_CONSUMER_NAME);
    expect(config.consumerName).toBe(WORKER_CONSUMER_NAME);
  });

  it('subscribes through exactly that consumer, reads the stream, registers nothing', () => {
    expect(s.actionsOn(s.streamArn)).toEqual(POLLING_READS);
    expect(s.actionsOn(consumerArn)).toEqual(['kinesis:DescribeStreamConsumer', 'kinesis:SubscribeToShard']);
    const all = s.kinesisStatements.flatMap((st) => [st.Action].flat());
    expect(all.filter((a) => /Put|ListStreams|DescribeStream$|Register|Deregister|\*/.test(a))).toEqual([]);
    expect(s.kinesisStatements.every((st) => st.Effect === 'Allow')).toBe(true);
  });

  it("alarms on the consumer's MillisBehindLatest (GetRecords' iterator age never arrives for fan-out)", () => {
    s.template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'SubscribeToShardEvent.MillisBehindLatest',
      Namespace: 'AWS/Kinesis',
    });
    const metrics = Object.values(s.resources)
      .filter((r) => r.Type === 'AWS::CloudWatch::Alarm')
      .map((r) => r.Properties.MetricName);
    expect(metrics).not.toContain('GetRecords.IteratorAgeMilliseconds');
  });

  it('passes cdk-nag (AWS Solutions) with no wildcard left to acknowledge for the consumer', () => {
    expect(nagFindings(s.nag, s.stack)).toEqual([]);
  });
});
