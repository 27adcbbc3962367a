/**
 * The training job's steps, in pipeline order. main.ts runs one per process; `quotewatch train <step>` names one.
 * Kept apart from the steps' code so the CLI can check a step name without loading onnxruntime.
 */
export const TRAINING_STEPS = ['train', 'evaluate', 'promote'] as const;
export type TrainingStep = (typeof TRAINING_STEPS)[number];

export const isTrainingStep = (name: unknown): name is TrainingStep =>
  (TRAINING_STEPS as readonly unknown[]).includes(name);
