/**
 * Shared by the CDK tests that check the synthesized stack without its Lambda code: an App with cdk.json's
 * context and no bundling, cdk-nag over it, and small readers of the template.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App, type CfnElement, type Stack, Validations } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll } from 'vitest';

export type Json = Record<string, unknown>;
export interface CfnResource {
  Type: string;
  Properties: Json;
}
export interface Statement {
  Effect: string;
  Action: string | string[];
  Resource: unknown;
}

/**
 * An App with the feature flags of cdk.json (as `cdk synth` applies them) that synthesizes into a temp dir
 * removed after the test file, with cdk-nag (AWS Solutions) added. Lambda bundling is skipped (no stack listed
 * in aws:cdk:bundling-stacks): test/cdk/stack.test.ts checks the Lambda code.
 */
export function unbundledApp(tempPrefix: string): { app: App; nag: AwsSolutionsChecks } {
  const outdir = mkdtempSync(path.join(tmpdir(), tempPrefix));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));
  const cdkJson = JSON.parse(readFileSync(path.join(import.meta.dirname, '../../cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  };
  const app = new App({ outdir, context: { ...cdkJson.context, 'aws:cdk:bundling-stacks': [] } });
  const nag = new AwsSolutionsChecks(app);
  Validations.of(app).addPlugins(nag);
  return { app, nag };
}

export const resourcesOf = (t: Template) => t.toJSON().Resources as Record<string, CfnResource>;

/** The logical id, in `stack`, of an L2 construct's CloudFormation resource. */
export const logicalIdIn = (stack: Stack) => (c: { node: { defaultChild?: unknown } }) =>
  stack.getLogicalId(c.node.defaultChild as CfnElement);

/** The environment of the first container of a task definition resource. */
export function containerEnv(task: CfnResource): Record<string, unknown> {
  const [container] = task.Properties.ContainerDefinitions as {
    Environment: { Name: string; Value: unknown }[];
  }[];
  return Object.fromEntries(container!.Environment.map((e) => [e.Name, e.Value]));
}

/** cdk-nag's findings below `scope`, as "rule at path". */
export function nagFindings(nag: AwsSolutionsChecks, scope: IConstruct): string[] {
  const report = nag.validateScope(scope);
  return report.violations.flatMap((v) =>
    v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
  );
}
