/**
 * How AWS errors are told apart, in one place. By name, not by class: lib-dynamodb may surface an exception
 * from another copy of client-dynamodb than ours, and emulators answer with the same names.
 */

/** A DynamoDB conditional write whose condition did not hold (a compare-and-set lost). */
export function isConditionFailure(err: unknown): boolean {
  return (err as { name?: string } | undefined)?.name === 'ConditionalCheckFailedException';
}

// Throttling and server-side failures heal by themselves; client errors (4xx) other than throttling do not.
const RETRYABLE_NAMES = new Set([
  'ProvisionedThroughputExceededException',
  'LimitExceededException',
  'ThrottlingException',
  'KMSThrottlingException',
  'InternalFailure',
  'InternalFailureException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
]);

/** Worth retrying: throttling, a server-side failure, or no answer at all (refused, reset, timed out). */
export function isRetryable(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number }; $retryable?: unknown };
  if (e?.name && RETRYABLE_NAMES.has(e.name)) return true;
  if (e?.$retryable) return true;
  const status = e?.$metadata?.httpStatusCode;
  return status === undefined || status >= 500;
}
