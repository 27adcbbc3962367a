/**
 * The models being served, one per target: THE cache that the worker and /predict share, so both follow the
 * registry the same way. Each target's slot loads its active version (loading warms it up and checks it against
 * the contract, src/model/runtime.ts), follows the active pointer (hot reload), swaps only to a version that
 * loaded, and releases a replaced model after a grace period so predictions already running on it finish.
 *
 * - `get(target)` (/predict): loads on first use, re-reads the pointer at most every `checkEveryMs`, and throws
 *   ModelUnavailableError when nothing can be served.
 * - `refresh()` (the worker's timer) checks every target now; `served()` is what is loaded, in TARGETS order.
 * A pointer that cannot be read keeps the current model. A version that fails to load is retried only after
 * `retryFailedMs` (or as soon as the pointer names another version): a corrupt model is not downloaded on
 * every check, and a transient failure still heals. With `waitOutTransient` (the worker) a slot with nothing to serve
 * waits out a transient failure of the registry or the store (src/aws/retry.ts: S3 or DynamoDB restarting) instead of
 * giving up until the next check or `retryFailedMs`: a worker restarted while the stores come back would otherwise
 * emit its first ticks without predictions. /predict does not wait (a request has seconds, not a minute).
 */
import { logRetries, retryTransient } from '../aws/retry.js';
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { ModelLoadError } from './runtime.js';
import { type FeatureSetName, type LoadedModel, MODEL_SETS, slotKey, TARGETS, type Target } from './types.js';

/** Where models come from: the registry (registrySource, src/model/registry.ts) or, in tests, their own. */
export interface ModelSource {
  /** The active version of a target's slot (its feature set); undefined = none active. */
  activeVersion(target: Target, set: FeatureSetName): Promise<string | undefined>;
  /** Loads (and warms up) the active model of a slot; throws when it cannot be served. */
  load(target: Target, set: FeatureSetName): Promise<LoadedModel>;
  /** No pointers (a file:// registry): each target's model is loaded once, if it exists. */
  pointerless?: boolean;
}

export interface ActiveModelsOptions {
  source: ModelSource;
  log: Logger;
  targets?: readonly Target[];
  /** The feature sets served per target (default both: l2 and ticker). */
  sets?: readonly FeatureSetName[];
  /** get() re-reads a target's pointer when its last check is this old. Default 5000. */
  checkEveryMs?: number;
  /** A version that failed to load is tried again after this long. Default 60 s. */
  retryFailedMs?: number;
  /** A replaced model is released this long after the swap. Default 30 s. */
  releaseAfterMs?: number;
  /** Clock for the periods above (ms). */
  now?: () => number;
  /** A slot with no model waits out transient failures of the pointer read and the load (see the header). */
  waitOutTransient?: boolean;
}

export class ModelUnavailableError extends ModelLoadError {}

interface Slot {
  target: Target;
  set: FeatureSetName;
  model?: LoadedModel;
  checkedAtMs: number;
  /** The one check in flight; concurrent callers share it. */
  pending?: Promise<void>;
  failed?: { version: string; atMs: number; error: unknown };
}

export class ActiveModels {
  readonly targets: readonly Target[];
  readonly sets: readonly FeatureSetName[];
  /** One slot per target and feature set (slotKey), in TARGETS then MODEL_SETS order. */
  private readonly slots = new Map<string, Slot>();
  private readonly now: () => number;
  /** Replaced models waiting out their grace period. */
  private readonly retiring = new Map<NodeJS.Timeout, LoadedModel>();

  constructor(private readonly opts: ActiveModelsOptions) {
    this.targets = opts.targets ?? TARGETS;
    this.sets = opts.sets ?? MODEL_SETS;
    this.now = opts.now ?? Date.now;
    for (const target of this.targets) {
      for (const set of this.sets) {
        this.slots.set(slotKey(target, set), { target, set, checkedAtMs: Number.NEGATIVE_INFINITY });
      }
    }
  }

  /** The models being served, in target then feature-set order. */
  served(): LoadedModel[] {
    return [...this.slots.values()].flatMap((s) => s.model ?? []);
  }

  /** The served model of a target's slot (l2 by default), checking the pointer first when the last check is stale. */
  async get(target: Target, set: FeatureSetName = 'l2'): Promise<LoadedModel> {
    const slot = this.slot(target, set);
    if (slot.pending || !slot.model || this.now() - slot.checkedAtMs >= (this.opts.checkEveryMs ?? 5000)) {
      await this.check(slot);
    }
    if (slot.model) return slot.model;
    const why = slot.failed ? `: ${describeError(slot.failed.error)}` : ' (no active version)';
    throw new ModelUnavailableError(`no servable model for ${slotKey(target, set)}${why}`, {
      cause: slot.failed?.error,
    });
  }

  /** Follows every slot's pointer now (the worker calls this periodically). */
  async refresh(): Promise<void> {
    // Together: a slot waiting out a transient failure (waitOutTransient) must not hold the others back.
    await Promise.all([...this.slots.values()].map((slot) => this.check(slot)));
  }

  /** Releases every model, the retiring ones too. */
  async release(): Promise<void> {
    for (const [timer, model] of this.retiring) {
      clearTimeout(timer);
      await model.release().catch(() => {});
    }
    this.retiring.clear();
    for (const slot of this.slots.values()) {
      await slot.model?.release().catch(() => {});
      slot.model = undefined;
    }
  }

  private slot(target: Target, set: FeatureSetName): Slot {
    const slot = this.slots.get(slotKey(target, set));
    if (!slot)
      throw new ModelUnavailableError(
        `${slotKey(target, set)} is not served here (slots: ${[...this.slots.keys()].join(', ')})`,
      );
    return slot;
  }

  private check(slot: Slot): Promise<void> {
    slot.pending ??= this.follow(slot).finally(() => {
      slot.pending = undefined;
    });
    return slot.pending;
  }

  private async follow(slot: Slot): Promise<void> {
    const { source, log } = this.opts;
    const { target, set } = slot;
    const current = slot.model;
    let attempt: string;
    if (source.pointerless) {
      slot.checkedAtMs = this.now();
      if (current) return;
      attempt = 'pointerless';
    } else {
      let active: string | undefined;
      try {
        active = await this.attempt(current, () => source.activeVersion(target, set), 'model pointer', slot);
      } catch (err) {
        // The registry being unreachable must not stop predictions with the model already in memory.
        log('warn', 'model pointer unreadable; keeping the current model', {
          target,
          set,
          version: current?.version,
          error: describeError(err),
        });
        slot.checkedAtMs = this.now();
        return;
      }
      slot.checkedAtMs = this.now();
      if (active === undefined || active === current?.version) return;
      attempt = active;
    }
    const failed = slot.failed;
    if (failed?.version === attempt && this.now() - failed.atMs < (this.opts.retryFailedMs ?? 60_000)) return;
    let next: LoadedModel;
    try {
      next = await this.attempt(current, () => source.load(target, set), 'model load', slot);
    } catch (error) {
      slot.failed = { version: attempt, atMs: this.now(), error };
      log('error', 'model not loaded; keeping the current one (if any)', {
        target,
        set,
        version: attempt,
        keeping: current?.version,
        error: describeError(error),
      });
      return;
    }
    slot.failed = undefined;
    slot.model = next;
    log('info', current ? 'model reloaded' : 'model loaded', {
      target,
      set,
      version: next.version,
      previous: current?.version,
      thresholds: next.thresholds ?? next.pooledThreshold,
    });
    if (current) this.releaseLater(current);
  }

  /** `fn`, with transient failures waited out when the slot has nothing to serve and the options ask for it. */
  private attempt<T>(
    current: LoadedModel | undefined,
    fn: () => Promise<T>,
    what: string,
    slot: Slot,
  ): Promise<T> {
    if (current || !this.opts.waitOutTransient) return fn();
    return retryTransient(fn, {
      onRetry: logRetries(this.opts.log, `${what} failed; retrying`, { target: slot.target, set: slot.set }),
    });
  }

  private releaseLater(model: LoadedModel): void {
    const timer = setTimeout(() => {
      this.retiring.delete(timer);
      void model.release().catch(() => {});
    }, this.opts.releaseAfterMs ?? 30_000);
    timer.unref();
    this.retiring.set(timer, model);
  }
}
