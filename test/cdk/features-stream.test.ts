/**
 * The optional features stream (src/resources.ts FEATURES_STREAM) in the deployed stack: absent by default,
 * present when the `featuresStream` context flag is set, with the worker allowed to write it (and only that)
 * and told its name. One app, synthesized once: the default stack at the root, the flagged one in a Stage whose
 * context sets the flag (as `cdk deploy -c featuresStream=true` would), cdk-nag over both. Lambda code is
 * not bundled here (test/cdk/stack.test.ts covers it).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App, type CfnElement, Stage, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, describe, expect, it } from 'vitest';
import { QuoteWatchStack } from '../../lib/quotewatch-stack.js';
import { FEATURES_STREAM, STREAM } from '../../src/resources.js';

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

const outdir = mkdtempSync(path.join(tmpdir(), 'qw-cdk-features-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

const cdkJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
  context: Record<string, unknown>;
};
// Lambda bundling is skipped (no stack listed in aws:cdk:bundling-stacks): this file checks no Lambda code.
const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
const plain = new QuoteWatchStack(app, 'QuoteWatch');
const flagged = new Stage(app, 'Flagged');
flagged.node.setContext('featuresStream', 'true');
const withFeatures = new QuoteWatchStack(flagged, 'QuoteWatch');
const nag = new AwsSolutionsChecks(app);
Validations.of(app).addPlugins(nag);

const resourcesOf = (t: Template) => t.toJSON().Resources as Record<string, CfnResource>;
const plainResources = resourcesOf(Template.fromStack(plain));
const resources = resourcesOf(Template.fromStack(withFeatures));
const streams = (r: Record<string, CfnResource>) =>
  Object.entries(r).filter(([, v]) => v.Type === 'AWS::Kinesis::Stream');
const idOf = (c: { node: { defaultChild?: unknown } }) =>
  withFeatures.getLogicalId(c.node.defaultChild as CfnElement);

describe('features stream (CDK)', () => {
  it('is absent by default: one stream, and the worker has no FEATURES_STREAM', () => {
    expect(streams(plainResources).map(([id]) => id)).toEqual([
      plain.getLogicalId(plain.marketStream.stream.node.defaultChild as CfnElement),
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
    const [container] = task.Properties.ContainerDefinitions as {
      Environment: { Name: string; Value: unknown }[];
    }[];
    const env = Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
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
    const report = nag.validateScope(withFeatures);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
    );
    expect(findings).toEqual([]);
  });
});
