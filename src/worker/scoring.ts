/**
 * The models the worker serves: one per target of TARGETS that has an active version. refresh() follows the
 * registry's active pointers (hot reload): a new version is loaded, warmed up and sanity-checked (loadModel)
 * while the current one keeps serving; it replaces the current one only when all of that succeeded. A target
 * without an active version is simply not scored.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from '../aws/clients.js';
import { readCoreConfig } from '../config.js';
import { describeError } from '../ingest/log.js';
import { activeVersion, loadActive, parseModelUri } from '../model/registry.js';
import { type LoadedModel, type ModelMetrics, TARGETS, type Target } from '../model/types.js';
import type { WorkerLog } from './worker.js';

type Env = Record<string, string | undefined>;

/** A model being served, with the label threshold τ of a continuous target (from its metrics.json). */
export interface ServingModel {
  model: LoadedModel;
  /** Labels > threshold (isSpike, as in training) count as positive for live quality; undefined = the labels are already 0/1. */
  threshold?: number;
}

/** Where models come from: the registry (registrySource) or, in tests, anything with the same shape. */
export interface ModelSource {
  /** The active version of target; undefined = none active. */
  activeVersion(target: Target): Promise<string | undefined>;
  /** No pointers at all (file://): every target's model is loaded once, if it exists. */
  pointerless?: boolean;
  /** Loads (and warms up) the active model of target; throws when it cannot be served. */
  load(target: Target): Promise<ServingModel>;
}

/** τ of a continuous target: the first of these metrics.json fields that is a finite number. */
export function thresholdFromMetrics(metrics: Partial<ModelMetrics> | undefined): number | undefined {
  if (!metrics) return undefined;
  for (const key of ['threshold', 'tau', 'labelThreshold']) {
    const v = metrics[key];
    if (typeof v === 'number' && Number.isFinite(v)) return v;
  }
  return undefined;
}

async function readMetrics(target: Target, version: string, env: Env): Promise<Partial<ModelMetrics>> {
  const location = parseModelUri(readCoreConfig(env).modelUri);
  let bytes: Uint8Array;
  if (location.kind === 'file') {
    bytes = await readFile(join(location.dir, target, 'metrics.json'));
  } else {
    const key = [location.prefix, target, version, 'metrics.json'].filter(Boolean).join('/');
    const out = await s3Client(env).send(new GetObjectCommand({ Bucket: location.bucket, Key: key }));
    bytes = await out.Body!.transformToByteArray();
  }
  return JSON.parse(new TextDecoder().decode(bytes)) as Partial<ModelMetrics>;
}

/** The MODEL_URI registry of `env`; the model's feature spec must match the code at tickMs. */
export function registrySource(env: Env, tickMs: number): ModelSource {
  const fileUri = readCoreConfig(env).modelUri.startsWith('file://');
  return {
    pointerless: fileUri,
    activeVersion: (target) => (fileUri ? Promise.resolve(undefined) : activeVersion(target, env)),
    async load(target) {
      const model = await loadActive(target, env, { tickMs });
      try {
        return { model, threshold: thresholdFromMetrics(await readMetrics(target, model.version, env)) };
      } catch (err) {
        await model.release();
        throw err;
      }
    },
  };
}

export class ModelSet {
  private readonly serving = new Map<Target, ServingModel>();
  /** The version that last failed to load per target: not retried until the pointer moves. */
  private readonly failed = new Map<Target, string>();
  private refreshing: Promise<void> | undefined;

  constructor(
    private readonly source: ModelSource,
    private readonly log: WorkerLog,
    readonly targets: readonly Target[] = TARGETS,
  ) {}

  /** The models being served, in TARGETS order. */
  models(): ServingModel[] {
    return this.targets.flatMap((t) => this.serving.get(t) ?? []);
  }

  get(target: Target): ServingModel | undefined {
    return this.serving.get(target);
  }

  /** Follows every target's active pointer once; concurrent calls share one refresh. */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshAll().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async refreshAll(): Promise<void> {
    for (const target of this.targets) await this.refreshOne(target);
  }

  private async refreshOne(target: Target): Promise<void> {
    const current = this.serving.get(target);
    let active: string | undefined;
    try {
      active = await this.source.activeVersion(target);
    } catch (err) {
      this.log('warn', 'model pointer unreadable; keeping the current model', {
        target,
        version: current?.model.version,
        error: describeError(err),
      });
      return;
    }
    if (active === undefined && !(this.source.pointerless && !current)) return; // nothing (new) to serve
    if (current && active === current.model.version) return;
    const attempt = active ?? 'pointerless';
    if (this.failed.get(target) === attempt) return;
    let next: ServingModel;
    try {
      next = await this.source.load(target);
    } catch (err) {
      this.failed.set(target, attempt);
      this.log('error', 'model not loaded; keeping the current one (if any)', {
        target,
        version: active,
        keeping: current?.model.version,
        error: describeError(err),
      });
      return;
    }
    this.failed.delete(target);
    this.serving.set(target, next);
    this.log('info', current ? 'model reloaded' : 'model loaded', {
      target,
      version: next.model.version,
      previous: current?.model.version,
      threshold: next.threshold,
    });
    await current?.model.release().catch(() => {});
  }

  async release(): Promise<void> {
    for (const s of this.serving.values()) await s.model.release().catch(() => {});
    this.serving.clear();
  }
}
