/**
 * The `promote` step: activates the candidate only if its AUC beats the active one's (or none is active), as a
 * compare-and-set on the active version it was evaluated against. Deployed, the state machine does this step
 * itself with the same rule (lib/training-pipeline.ts).
 */
import { readTrainingConfig } from '../../src/config.js';
import { componentLogger, type Logger } from '../../src/log.js';
import { activate } from '../../src/model/registry.js';
import { type Evaluation, readEvaluation } from './candidate.js';

type Env = Record<string, string | undefined>;

/** The promotion rule (the state machine's Choice state applies the same one): strictly better AUC, or no active. */
export function shouldPromote(evaluation: Pick<Evaluation, 'candidate' | 'active'>): boolean {
  return evaluation.active === null || evaluation.candidate.auc > evaluation.active.auc;
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
    log('info', 'candidate kept inactive: not better than the active model', {
      target,
      version,
      candidateAuc: evaluation.candidate.auc,
      active: evaluation.active,
    });
    return { promoted: false, version, active: evaluation.active?.version };
  }
  // Compare-and-set: if the pointer moved since evaluation, the comparison is stale (ActivationConflictError).
  await activate(target, version, env, { ifCurrent: evaluation.active?.version ?? null });
  log('info', 'candidate promoted', { target, version, replaced: evaluation.active?.version ?? null });
  return { promoted: true, version, active: version };
}
