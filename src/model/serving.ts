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
 * every check, and a transient failure still heals.
 */
import type { Logger } from '../log.js';
import { describeError } from '../log.js';
import { ModelLoadError } from './runtime.js';
import { type LoadedModel, TARGETS, type Target } from './types.js';

/** Where models come from: the registry (registrySource, src/model/registry.ts) or, in tests, their own. */
export interface ModelSource {
  /** The active version of `target`; undefined = none active. */
  activeVersion(target: Target): Promise<string | undefined>;
  /** Loads (and warms up) the active model of `target`; throws when it cannot be served. */
  load(target: Target): Promise<LoadedModel>;
  /** No pointers (a file:// registry): each target's model is loaded once, if it exists. */
  pointerless?: boolean;
}

export interface ActiveModelsOptions {
  source: ModelSource;
  log: Logger;
  targets?: readonly Target[];
  /** get() re-reads a target's pointer when its last check is this old. Default 5000. */
  checkEveryMs?: number;
  /** A version that failed to load is tried again after this long. Default 60 s. */
  retryFailedMs?: number;
  /** A replaced model is released this long after the swap. Default 30 s. */
  releaseAfterMs?: number;
  /** Clock for the periods above (ms). */
  now?: () => number;
}

export class ModelUnavailableError extends ModelLoadError {}

interface Slot {
  model?: LoadedModel;
  checkedAtMs: number;
  /** The one check in flight; concurrent callers share it. */
  pending?: Promise<void>;
  failed?: { version: string; atMs: number; error: unknown };
}

export class ActiveModels {
  readonly targets: readonly Target[];
  private readonly slots = new Map<Target, Slot>();
  private readonly now: () => number;
  /** Replaced models waiting out their grace period. */
  private readonly retiring = new Map<NodeJS.Timeout, LoadedModel>();

  constructor(private readonly opts: ActiveModelsOptions) {
    this.targets = opts.targets ?? TARGETS;
    this.now = opts.now ?? Date.now;
    for (const t of this.targets) this.slots.set(t, { checkedAtMs: Number.NEGATIVE_INFINITY });
  }

  /** The models being served, in target order. */
  served(): LoadedModel[] {
    return this.targets.flatMap((t) => this.slots.get(t)?.model ?? []);
  }

  /** The served model of `target`, checking the pointer first when the last check is stale. */
  async get(target: Target): Promise<LoadedModel> {
    const slot = this.slot(target);
    if (slot.pending || !slot.model || this.now() - slot.checkedAtMs >= (this.opts.checkEveryMs ?? 5000)) {
      await this.check(target, slot);
    }
    if (slot.model) return slot.model;
    const why = slot.failed ? `: ${describeError(slot.failed.error)}` : ' (no active version)';
    throw new ModelUnavailableError(`no servable model for ${target}${why}`, { cause: slot.failed?.error });
  }

  /** Follows every target's pointer now (the worker calls this periodically). */
  async refresh(): Promise<void> {
    for (const target of this.targets) await this.check(target, this.slot(target));
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

  private slot(target: Target): Slot {
    const slot = this.slots.get(target);
    if (!slot)
      throw new ModelUnavailableError(`${target} is not served here (targets: ${this.targets.join(', ')})`);
    return slot;
  }

  private check(target: Target, slot: Slot): Promise<void> {
    slot.pending ??= this.follow(target, slot).finally(() => {
      slot.pending = undefined;
    });
    return slot.pending;
  }

  private async follow(target: Target, slot: Slot): Promise<void> {
    const { source, log } = this.opts;
    const current = slot.model;
    let attempt: string;
    if (source.pointerless) {
      slot.checkedAtMs = this.now();
      if (current) return;
      attempt = 'pointerless';
    } else {
      let active: string | undefined;
      try {
        active = await source.activeVersion(target);
      } catch (err) {
        // The registry being unreachable must not stop predictions with the model already in memory.
        log('warn', 'model pointer unreadable; keeping the current model', {
          target,
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
      next = await source.load(target);
    } catch (error) {
      slot.failed = { version: attempt, atMs: this.now(), error };
      log('error', 'model not loaded; keeping the current one (if any)', {
        target,
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
      version: next.version,
      previous: current?.version,
      threshold: next.threshold,
    });
    if (current) this.releaseLater(current);
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
