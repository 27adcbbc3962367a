/**
 * cdk-nag v3 acknowledgements. Every acknowledgement carries its reason at the call site; IAM5 findings are
 * acknowledged one resource at a time, named the way cdk-nag names them (so a new wildcard still fails synth).
 */
import { Stack, Validations } from 'aws-cdk-lib';
import { flattenCfnReference } from 'cdk-nag/lib/utils/flatten-cfn-reference.js';
import type { IConstruct } from 'constructs';

export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** Acknowledges the AwsSolutions-IAM5 finding for one wildcard resource (a string that may hold tokens). */
export function acknowledgeWildcardResource(scope: IConstruct, resource: string, reason: string): void {
  const flat = flattenCfnReference(Stack.of(scope).resolve(resource));
  acknowledge(scope, `AwsSolutions-IAM5[Resource::${flat}]`, reason);
}

export const XRAY_REASON =
  'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions.';
