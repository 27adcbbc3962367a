/**
 * The active model per target, loaded lazily once per container and swapped when the registry's active
 * pointer moves. The pointer (pk=<target>, sk="active", attribute `version`) is re-read at most every
 * `checkEveryMs`, so a warm handler picks up a promotion within seconds without a redeploy.
 */
import { type DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { LoadedModel, Target } from '../model/types.js';
import { DependencyError } from './errors.js';

/** The registry's active version of `target`, or undefined when none is active. */
export async function readActiveVersion(
  client: DynamoDBDocumentClient,
  table: string,
  target: Target,
): Promise<string | undefined> {
  const out = await client.send(new GetCommand({ TableName: table, Key: { pk: target, sk: 'active' } }));
  const version = out.Item?.version;
  return typeof version === 'string' ? version : undefined;
}

export interface ActiveModelCacheOptions {
  load: (target: Target) => Promise<LoadedModel>;
  activeVersion: (target: Target) => Promise<string | undefined>;
  checkEveryMs: number;
  now?: () => number;
  /** A replaced model is released this long after the swap, so predictions already running on it finish. */
  releaseAfterMs?: number;
}

interface Slot {
  model?: LoadedModel;
  checkedAtMs: number;
  /** The one load or pointer check in flight; concurrent callers share it. */
  pending?: Promise<LoadedModel>;
}

export class ActiveModelCache {
  private readonly slots = new Map<Target, Slot>();
  private readonly now: () => number;

  constructor(private readonly opts: ActiveModelCacheOptions) {
    this.now = opts.now ?? Date.now;
  }

  async get(target: Target): Promise<LoadedModel> {
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

  private async loadInto(target: Target, slot: Slot): Promise<LoadedModel> {
    try {
      const model = await this.opts.load(target);
      slot.model = model;
      slot.checkedAtMs = this.now();
      return model;
    } catch (cause) {
      throw new DependencyError(`model for ${target} is unavailable`, { cause });
    }
  }

  private async refresh(target: Target, slot: Slot, current: LoadedModel): Promise<LoadedModel> {
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
    let next: LoadedModel;
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
