/**
 * The runs `quotewatch runs` lists: the trainer's run records (models/eval/runRecord.ts listRuns) together with
 * the failure records the training state machine writes beside a run's files when it catches a failure
 * (EXECUTION_FAILURE_RECORD, `<prefix>/<target>/<version>/failure.json`: lib/training-pipeline.ts, the
 * DescribeFailure and RecordFailure states). The trainer writes a failed run record itself when its step throws;
 * when ECS could not start the task, the task timed out, or a later state failed (reading evaluation.json, the
 * promotion's compare-and-set), only the state machine's record says so.
 */
import { findVersionFile, parseJson, versionsWithRecord } from '../src/model/registry.js';
import { TARGETS } from '../src/model/types.js';
import { EXECUTION_FAILURE_RECORD } from '../src/resources.js';
import { formatRuns, listRuns, type RunRecord } from './eval/runRecord.js';

type Env = Record<string, string | undefined>;

/** failure.json, as the state machine's DescribeFailure state builds it (also the failure's notification). */
export interface ExecutionFailure {
  outcome: 'failed';
  target: string;
  version: string;
  /** The execution's ARN. */
  execution: string;
  /** When the failure path was entered (ISO 8601). */
  failedAt: string;
  /** The error and cause the state machine caught (States.TaskFailed, DynamoDB.ConditionalCheckFailedException...). */
  error: string;
  cause: string;
}

/** A listed run: a run record, or one made from a failure record alone (which knows no parameters). */
export type ListedRun = Omit<RunRecord, 'parameters'> & { parameters?: RunRecord['parameters'] };

/** The error line a failure record gives: its error name, and its cause's first 300 characters. */
function failureError(f: ExecutionFailure): NonNullable<RunRecord['error']> {
  const cause = String(f.cause ?? '');
  return {
    step: 'state machine',
    name: f.error,
    message: cause.length > 300 ? `${cause.slice(0, 300)}...` : cause,
  };
}

/**
 * A run's listing from its run record and its failure record, either possibly absent:
 * - only the failure record: a failed run with the state machine's error;
 * - a run record that says failed: kept as it is (the trainer's error names the step and is the more exact);
 * - a passed or rejected run record older than the failure record (a later state failed, e.g. the pointer
 *   moved before Promote): failed with the state machine's error, the evaluation kept;
 * - a failure record older than the run record (the version was run again since): the run record.
 */
export function mergeFailure(
  record: RunRecord | undefined,
  failure: ExecutionFailure | undefined,
): ListedRun | undefined {
  if (!failure) return record;
  if (!record) {
    return {
      target: failure.target,
      version: failure.version,
      status: 'failed',
      recordedAt: failure.failedAt,
      gitSha: null,
      featureSpecHash: null,
      error: failureError(failure),
    };
  }
  if (record.status === 'failed' || failure.failedAt < record.recordedAt) return record;
  return { ...record, status: 'failed', recordedAt: failure.failedAt, error: failureError(failure) };
}

/** The runs of `targets` (all by default), newest first, at most `limit`, failure records merged in. */
export async function listRunsWithFailures(
  env: Env,
  targets: readonly string[] = TARGETS,
  limit = 50,
): Promise<ListedRun[]> {
  // Every run record (listRuns' limit is per call, over all targets: ask for all of them).
  const records = await listRuns(env, targets, Number.MAX_SAFE_INTEGER);
  const byKey = new Map<string, RunRecord>(records.map((r) => [`${r.target}/${r.version}`, r]));
  const out: ListedRun[] = [];
  const seen = new Set<string>();
  for (const target of targets) {
    for (const version of await versionsWithRecord(target, EXECUTION_FAILURE_RECORD, env)) {
      const bytes = await findVersionFile(target, version, EXECUTION_FAILURE_RECORD, env);
      if (!bytes) continue;
      const failure = parseJson<ExecutionFailure>(bytes, `${target}/${version}/${EXECUTION_FAILURE_RECORD}`);
      const key = `${target}/${version}`;
      seen.add(key);
      // The key is the version's: a record claiming another is read as this version's.
      out.push(mergeFailure(byKey.get(key), { ...failure, target, version })!);
    }
  }
  for (const [key, record] of byKey) if (!seen.has(key)) out.push(record);
  return out.sort((a, b) => b.recordedAt.localeCompare(a.recordedAt)).slice(0, limit);
}

/**
 * `quotewatch runs`' table (formatRuns' one line per run). formatRuns reads a run's time, target, version, status,
 * decision and error, never its parameters, which a run known only from its failure record does not have.
 */
export function formatListedRuns(runs: readonly ListedRun[]): string {
  return formatRuns(runs as readonly RunRecord[]);
}
