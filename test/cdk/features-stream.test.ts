/**
 * The optional features stream (src/resources.ts FEATURES_STREAM) in the deployed stack: absent by default,
 * present when the `featuresStream` context flag is set, with the worker allowed to write it (and only that)
 * and told its name. One app, synthesized once: the default stack at the root, the flagged one in a Stage whose
 * context sets the flag (as `cdk deploy -c featuresStream=true` would), cdk-nag over both. Lambda code is
 * not bundled here (test/cdk/stack.test.ts covers it).
 */
import { Stage } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { FEATURES_STREAM, STREAM } from '../../src/resources.js';
import {
  type CfnResource,
  containerEnv,
  logicalIdIn,
  nagFindings,
  resourcesOf,
  type Statement,
  unbundledApp,
} from './support.js';

const { app, nag } = unbundledApp('qw-cdk-features-');
const plain = new QuoteWatchStack(app, 'QuoteWatch');
const flagged = new Stage(app, 'Flagged');
flagged.node.setContext('featuresStream', 'true');
const withFeatures = new QuoteWatchStack(flagged, 'QuoteWatch');

const plainResources = resourcesOf(Template.fromStack(plain));
const resources = resourcesOf(Template.fromStack(withFeatures));
const streams = (r: Record<string, CfnResource>) =>
  Object.entries(r).filter(([, v]) => v.Type === 'AWS::Kinesis::Stream');
const idOf = logicalIdIn(withFeatures);

describe('features stream (CDK)', () => {
  it('is absent by default: one stream, and the worker has no FEATURES_STREAM', () => {
    expect(streams(plainResources).map(([id]) => id)).toEqual([
      logicalIdIn(plain)(plain.marketStream.stream),
    ]);
    expect(plain.featuresStream).toBeUndefined();
    expect(JSON.stringify(plainResources)).not.toContain(FEATURES_STREAM.env);
  });

  it('is created by the featuresStream context flag, as src/resources.ts defines it', () => {
    const features = withFeatures.featuresStream;
    expect(features).toBeDefined();
    const stream = resources[idOf(features!.stream)];
    expect(stream?.Type).toBe('AWS::Kinesis::Stream');
    expect(stream?.Properties).toMatchObject({
      ShardCount: FEATURES_STREAM.shardCount,
      RetentionPeriodHours: FEATURES_STREAM.retentionHours,
      StreamEncryption: { EncryptionType: 'KMS' },
    });
    expect(streams(resources)).toHaveLength(2);
  });

  it('tells the worker its name and lets it write there, nothing more', () => {
    const featuresId = idOf(withFeatures.featuresStream!.stream);
    const task = resources[idOf(withFeatures.worker.taskDefinition)]!;
    const env = containerEnv(task);
    expect(env[FEATURES_STREAM.env]).toEqual({ Ref: featuresId });
    expect(env[STREAM.env]).toEqual({ Ref: idOf(withFeatures.marketStream.stream) });

    const refersToFeatures = (s: Statement) => JSON.stringify(s.Resource).includes(`"${featuresId}"`);
    const policies = Object.values(resources).filter((r) => r.Type === 'AWS::IAM::Policy');
    const roleOf = (p: CfnResource) => JSON.stringify(p.Properties.Roles);
    const taskRoleId = idOf(withFeatures.worker.taskDefinition.taskRole);
    const grants = policies.flatMap((p) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.filter(refersToFeatures).map(
        (s) => ({ role: roleOf(p), actions: [s.Action].flat().sort(), effect: s.Effect }),
      ),
    );
    // Only the worker's task role, only writes.
    expect(grants).toEqual([
      {
        role: JSON.stringify([{ Ref: taskRoleId }]),
        actions: ['kinesis:PutRecord', 'kinesis:PutRecords'],
        effect: 'Allow',
      },
    ]);
  });

  it('passes cdk-nag (AWS Solutions) with the stream enabled', () => {
    expect(nagFindings(nag, withFeatures)).toEqual([]);
  });
});
