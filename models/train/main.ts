/**
 * The training job's entry, one step per process: `node --import tsx models/train/main.ts <step>` locally
 * (`quotewatch train <step>` runs it against the emulators), `node dist/train.mjs <train|evaluate>` in the worker
 * image, run by the training state machine (lib/training-pipeline.ts).
 *
 *   train     train.ts      trains on the lake's oldest rows and publishes CANDIDATE_VERSION, not active
 *   evaluate  evaluate.ts   scores the held-out rows with the candidate and the active model: evaluation.json
 *   promote   promote.ts    activates the candidate if it is better (deployed, the state machine does this)
 *
 * Settings: readTrainingConfig (TARGET, TRAIN_SET, CANDIDATE_VERSION, TRAIN_FRACTION, TRAIN_L2, TRAIN_MIN_ROWS,
 * TRAIN_ALGORITHM, TRAIN_KEEP_SUSPECT), readPromotionConfig (PROMOTE_*), readCoreConfig (MODEL_URI, TICK_MS,
 * DELTA_MS), readResourceNames (LAKE_BUCKET, REGISTRY_TABLE).
 * Exit code 0 when the step is done, 1 when it failed (one JSON log line with the cause chain), 2 for a usage or
 * configuration error. Importing this module runs it: import the step modules instead.
 */
import { orExit, readCoreConfig, readResourceNames, readTrainingConfig } from '../../src/config.js';
import { componentLogger, describeError } from '../../src/log.js';
import { TRAINING } from '../../src/telemetry/catalog.js';
import { componentTelemetry } from '../../src/telemetry/setup.js';
import type { Evaluation } from './candidate.js';
import { shouldPromote } from './promote.js';
import { runStep } from './run.js';
import { isTrainingStep, TRAINING_STEPS } from './steps.js';

async function main(args: string[]): Promise<number> {
  const [step, ...rest] = args;
  if (rest.length > 0 || !isTrainingStep(step)) {
    console.error(`usage: node --import tsx models/train/main.ts <${TRAINING_STEPS.join('|')}>`);
    return 2;
  }
  orExit(() => {
    readTrainingConfig();
    readCoreConfig();
    return readResourceNames();
  });
  const log = componentLogger('trainer');
  const { target } = readTrainingConfig();
  // Deployed (METRICS_SINK=cloudwatch) the step's metrics go out by PutMetricData before the process exits.
  const { telemetry, stop } = await componentTelemetry('trainer', log);
  const started = performance.now();
  try {
    const result = await runStep(step, process.env, log);
    if (step === 'train')
      telemetry.gauge(TRAINING.durationS, (performance.now() - started) / 1000, { Target: target });
    if (step === 'evaluate') {
      const decision = shouldPromote(result as Evaluation) ? 'promote' : 'keep';
      telemetry.count(TRAINING.runs, 1, { Target: target, Decision: decision });
    }
    return 0;
  } catch (err) {
    log('error', `${step} failed`, { error: describeError(err) });
    telemetry.count(TRAINING.runs, 1, { Target: target, Decision: 'failed' });
    return 1;
  } finally {
    await stop();
  }
}

process.exit(await main(process.argv.slice(2)));
