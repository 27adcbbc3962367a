/**
 * One step of the training job with its run record: a step that throws leaves run.json (status "failed", the step
 * and the error) and report.html beside the candidate's files before the error goes on, so `quotewatch runs`
 * shows failed runs too. main.ts (the entry the state machine runs) calls this.
 */
import { readTrainingConfig } from '../../src/config.js';
import { describeError, type Logger } from '../../src/log.js';
import { gitSha, writeRunRecord } from '../eval/runRecord.js';
import { evaluate } from './evaluate.js';
import { promote } from './promote.js';
import type { TrainingStep } from './steps.js';
import { train } from './train.js';

type Env = Record<string, string | undefined>;

const STEPS: Record<TrainingStep, (env: Env, log: Logger) => Promise<unknown>> = { train, evaluate, promote };

export async function runStep(step: TrainingStep, env: Env, log: Logger): Promise<unknown> {
  try {
    return await STEPS[step](env, log);
  } catch (err) {
    const cfg = readTrainingConfig(env);
    const error = err instanceof Error ? err : new Error(String(err));
    try {
      await writeRunRecord(
        {
          target: cfg.target,
          version: cfg.candidateVersion,
          status: 'failed',
          recordedAt: new Date().toISOString(),
          gitSha: gitSha(),
          featureSpecHash: null,
          parameters: { training: cfg },
          error: { step, name: error.name, message: error.message },
        },
        env,
      );
    } catch (recordErr) {
      // The step's own error is the one to report; a registry that cannot take the record is logged beside it.
      log('error', 'could not write the failed run record', { error: describeError(recordErr) });
    }
    throw err;
  }
}
