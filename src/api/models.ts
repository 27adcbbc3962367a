/**
 * The active model per target, loaded lazily once per container and swapped when the registry's active
 * pointer moves. The pointer (pk=<target>, sk="active", attribute `version`) is re-read at most every
 * `checkEveryMs`, so a warm handler picks up a promotion within seconds without a redeploy.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { s3Client } from '../aws/clients.js';
import { readCoreConfig } from '../config.js';
import { loadActive, parseModelUri } from '../model/registry.js';

export { readActiveVersion } from '../model/pointer.js';

import type { LoadedModel, ModelMetrics, Target } from '../model/types.js';
import { DependencyError } from './errors.js';

type Env = Record<string, string | undefined>;

/** A loaded model plus what the API reports about it from its metrics.json. */
export interface ServedModel extends LoadedModel {
  /** vol_spike_60s: τ in bps from metrics.json `threshold`; absent when the metrics carry none. */
  threshold?: number;
}

/**
 * metrics.json of a registry version: `<prefix>/<target>/<version>/metrics.json` in S3, or
 * `<dir>/<target>/metrics.json` for a file:// MODEL_URI (the layout src/model/registry.ts writes).
 */
export async function readModelMetrics(
  target: Target,
  version: string,
  env: Env = process.env,
): Promise<Partial<ModelMetrics>> {
  const location = parseModelUri(readCoreConfig(env).modelUri);
  let text: string;
  if (location.kind === 'file') {
    text = await readFile(join(location.dir, target, 'metrics.json'), 'utf8');
  } else {
    const key = [location.prefix, target, version, 'metrics.json'].filter(Boolean).join('/');
    const res = await s3Client(env).send(new GetObjectCommand({ Bucket: location.bucket, Key: key }));
    text = await res.Body!.transformToString();
  }
  // Publishing checked this is JSON; a broken file only costs the extras, not the model.
  try {
    return JSON.parse(text) as Partial<ModelMetrics>;
  } catch {
    return {};
  }
}

/** The active model of `target` with its threshold (if its metrics have one), as /predict serves it. */
export async function loadServed(target: Target, env: Env = process.env): Promise<ServedModel> {
  const model = await loadActive(target, env);
  let metrics: Partial<ModelMetrics>;
  try {
    metrics = await readModelMetrics(target, model.version, env);
  } catch (err) {
    await model.release().catch(() => {});
    throw err;
  }
  const threshold = metrics.threshold;
  return typeof threshold === 'number' && Number.isFinite(threshold)
    ? Object.assign(model, { threshold })
    : model;
}

/** The registry's active version of `target`, or undefined when none is active. */
export interface ActiveModelCacheOptions<M extends LoadedModel = LoadedModel> {
  load: (target: Target) => Promise<M>;
  activeVersion: (target: Target) => Promise<string | undefined>;
  checkEveryMs: number;
  now?: () => number;
  /** A replaced model is released this long after the swap, so predictions already running on it finish. */
  releaseAfterMs?: number;
}

interface Slot<M> {
  model?: M;
  checkedAtMs: number;
  /** The one load or pointer check in flight; concurrent callers share it. */
  pending?: Promise<M>;
}

/** One slot per target: each target's model loads, refreshes and swaps independently of the others. */
export class ActiveModelCache<M extends LoadedModel = LoadedModel> {
  private readonly slots = new Map<Target, Slot<M>>();
  private readonly now: () => number;

  constructor(private readonly opts: ActiveModelCacheOptions<M>) {
    this.now = opts.now ?? Date.now;
  }

  async get(target: Target): Promise<M> {
    let slot = this.slots.get(target);
    if (!slot) {
      slot = { checkedAtMs: 0 };
      this.slots.set(target, slot);
    }
    if (slot.pending) return slot.pending;
    if (slot.model && this.now() - slot.checkedAtMs < this.opts.checkEveryMs) return slot.model;
    const s = slot;
    s.pending = (s.model ? this.refresh(target, s, s.model) : this.loadInto(target, s)).finally(() => {
      s.pending = undefined;
    });
    return s.pending;
  }

  private async loadInto(target: Target, slot: Slot<M>): Promise<M> {
    try {
      const model = await this.opts.load(target);
      slot.model = model;
      slot.checkedAtMs = this.now();
      return model;
    } catch (cause) {
      throw new DependencyError(`model for ${target} is unavailable`, { cause });
    }
  }

  private async refresh(target: Target, slot: Slot<M>, current: M): Promise<M> {
    let active: string | undefined;
    try {
      active = await this.opts.activeVersion(target);
    } catch (err) {
      // The registry being unreachable must not stop predictions with the model already in memory.
      console.log(
        JSON.stringify({ level: 'warn', msg: 'active model check failed', target, error: String(err) }),
      );
      slot.checkedAtMs = this.now();
      return current;
    }
    slot.checkedAtMs = this.now();
    if (active === undefined || active === current.version) return current;
    let next: M;
    try {
      next = await this.opts.load(target);
    } catch (err) {
      console.log(
        JSON.stringify({
          level: 'warn',
          msg: 'loading new active model failed',
          target,
          active,
          error: String(err),
        }),
      );
      return current;
    }
    slot.model = next;
    console.log(
      JSON.stringify({
        level: 'info',
        msg: 'active model swapped',
        target,
        from: current.version,
        to: next.version,
      }),
    );
    const timer = setTimeout(
      () => void current.release().catch(() => {}),
      this.opts.releaseAfterMs ?? 30_000,
    );
    timer.unref();
    return next;
  }
}
