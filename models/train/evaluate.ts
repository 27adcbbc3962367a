/**
 * The `evaluate` step: the held-out window the candidate was trained beside, scored with the candidate and with
 * the active model, written to <prefix>/<target>/<version>/evaluation.json (candidate.ts `Evaluation`) for
 * promote and the state machine's Choice state.
 */
import { readCoreConfig, readTrainingConfig } from '../../src/config.js';
import { featureSpec } from '../../src/features/spec.js';
import { componentLogger, type Logger } from '../../src/log.js';
import { rocAuc } from '../../src/model/metrics.js';
import { activeVersion } from '../../src/model/registry.js';
import { loadModel } from '../../src/model/runtime.js';
import { loadActive } from '../../src/model/source.js';
import type { LoadedModel } from '../../src/model/types.js';
import { type Evaluation, readCandidate, writeEvaluation } from './candidate.js';
import { assertBothClasses, DatasetError, type Example, selectWindow } from './dataset.js';
import { loadLakeExamples } from './lakeDataset.js';
import { binarize } from './targets.js';

type Env = Record<string, string | undefined>;

async function aucOf(model: LoadedModel, rows: Example[]): Promise<number> {
  const width = model.spec.features.length;
  const packed = new Float32Array(rows.length * width);
  rows.forEach((e, i) => {
    packed.set(e.x, i * width);
  });
  const p = await model.predict(packed, rows.length);
  return rocAuc(
    p,
    rows.map((e) => e.y),
  );
}

export async function evaluate(
  env: Env = process.env,
  log: Logger = componentLogger('trainer'),
): Promise<Evaluation> {
  const { target, candidateVersion: version } = readTrainingConfig(env);
  const { tickMs } = readCoreConfig(env);
  const candidateFiles = await readCandidate(env, target, version);
  const lake = await loadLakeExamples(env, target, featureSpec(tickMs));
  // The CANDIDATE's τ labels the held-out rows for both models: AUC only compares two models on the same 0/1
  // labels, and the question the promotion answers is "which model ranks the spikes better that we would
  // alarm on after promoting", i.e. spikes by the candidate's τ (fixed from its training rows, before these).
  // Each model's own τ would give each its own labels, and AUCs on different labels do not compare.
  const rows = binarize(selectWindow(lake.examples, candidateFiles.window), candidateFiles.threshold);
  if (rows.length === 0) {
    throw new DatasetError(
      `no labelled rows of ${target} in the held-out window ${JSON.stringify(candidateFiles.window)} ` +
        `of ${version}; was the lake emptied since training?`,
    );
  }
  assertBothClasses(rows, 'held-out rows');

  const models: LoadedModel[] = [];
  try {
    const candidate = await loadModel(candidateFiles.onnx, candidateFiles.spec, { target, version });
    models.push(candidate);
    // Loaded with the code's tick: an active model on other features cannot be compared (nor served).
    const active = (await activeVersion(target, env)) ? await loadActive(target, env, { tickMs }) : undefined;
    if (active) models.push(active);
    const evaluation: Evaluation = {
      target,
      candidate: { version, auc: await aucOf(candidate, rows) },
      active: active ? { version: active.version, auc: await aucOf(active, rows) } : null,
      rows: rows.length,
      positives: rows.reduce((n, e) => n + e.y, 0),
      window: candidateFiles.window,
      ...(candidateFiles.threshold === undefined ? {} : { threshold: candidateFiles.threshold }),
    };
    await writeEvaluation(env, evaluation);
    log('info', 'candidate evaluated', { ...evaluation });
    return evaluation;
  } finally {
    await Promise.all(models.map((m) => m.release()));
  }
}
