/**
 * The `promote` step: activates the candidate only if evaluate's gate decided so (models/eval/gate.ts: better
 * than the active model beyond noise), as a compare-and-set on the active version it was evaluated against. Deployed, the state machine does this step
 * itself with the same rule (lib/training-pipeline.ts).
 */
import { readTrainingConfig } from '../../src/config.js';
import { componentLogger, type Logger } from '../../src/log.js';
import { activate } from '../../src/model/registry.js';
import { type Evaluation, readEvaluation } from './candidate.js';

type Env = Record<string, string | undefined>;

/** The gate's decision, written by evaluate (models/eval/gate.ts); the state machine's Choice state reads it too. */
export function shouldPromote(evaluation: Pick<Evaluation, 'decision'>): boolean {
  return evaluation.decision.promote === true;
}

export interface PromoteResult {
  promoted: boolean;
  version: string;
  /** The active version after this step. */
  active: string | undefined;
}

export async function promote(
  env: Env = process.env,
  log: Logger = componentLogger('trainer'),
): Promise<PromoteResult> {
  const { target, candidateVersion: version } = readTrainingConfig(env);
  const evaluation = await readEvaluation(env, target, version);
  if (!shouldPromote(evaluation)) {
    log('info', 'candidate kept inactive: the promotion gate did not pass', {
      target,
      version,
      reasons: evaluation.decision.reasons,
      gain: evaluation.decision.gain,
      active: evaluation.active?.version ?? null,
    });
    return { promoted: false, version, active: evaluation.active?.version };
  }
  // Compare-and-set: if the pointer moved since evaluation, the comparison is stale (ActivationConflictError).
  await activate(target, version, env, { ifCurrent: evaluation.active?.version ?? null });
  log('info', 'candidate promoted', { target, version, replaced: evaluation.active?.version ?? null });
  return { promoted: true, version, active: version };
}
