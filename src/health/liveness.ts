/**
 * Container liveness. A long-running process (ingestor, worker) reports the progress of its loop; every
 * `everyMs` a timer writes a small JSON file saying when it last did. The container's health check (ECS runs
 * `node dist/healthcheck.mjs <component>`, containers/healthcheck.ts) passes while the file is fresh and the
 * loop progressed recently, so a hung process is replaced:
 * - a blocked event loop or a dead process stops the timer: the file gets old (maxAgeMs);
 * - a loop stuck on a promise that never settles keeps the timer but stops progressing (stuckAfterMs).
 * A file, not a port: nothing listens, nothing can be reached from outside, and the check needs no network.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { LivenessConfig } from '../config.js';

/** The liveness file's content. */
export interface LivenessRecord {
  /** When the file was written (wall clock, ms). */
  atMs: number;
  /** When the loop last progressed. */
  progressMs: number;
  /** progressMs is recent enough (within stuckAfterMs of atMs). */
  ok: boolean;
  pid: number;
}

export interface LivenessOptions extends LivenessConfig {
  /**
   * Called on every tick: true when the loop progressed since the previous call (e.g. frames arrived, or the
   * feed is reconnecting). Optional: progress can also be reported with beat().
   */
  progress?: () => boolean;
  now?: () => number;
}

export class Liveness {
  private progressMs: number;
  private timer: NodeJS.Timeout | undefined;
  private written: LivenessRecord | undefined;
  private readonly now: () => number;

  constructor(private readonly o: LivenessOptions) {
    this.now = o.now ?? Date.now;
    // Starting counts as progress: the start period of the health check covers the rest of the start-up.
    this.progressMs = this.now();
  }

  /** The loop made progress (a batch handled, the stream found idle). */
  beat(): void {
    this.progressMs = this.now();
  }

  /** The record write() puts in the file now. */
  record(): LivenessRecord {
    if (this.o.progress?.()) this.progressMs = this.now();
    const atMs = this.now();
    return {
      atMs,
      progressMs: this.progressMs,
      ok: atMs - this.progressMs <= this.o.stuckAfterMs,
      pid: process.pid,
    };
  }

  /** Writes the file (atomically: a reader never sees half of it). */
  write(): LivenessRecord {
    const record = this.record();
    const tmp = `${this.o.path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(record));
    renameSync(tmp, this.o.path);
    this.written = record;
    return record;
  }

  /** The record last written (what the health check reads), for a probe that must not count as a tick. */
  last(): LivenessRecord | undefined {
    return this.written;
  }

  start(): this {
    this.write();
    this.timer = setInterval(() => {
      try {
        this.write();
      } catch {
        // A full or read-only disk fails the health check through the file's age: that is the report.
      }
    }, this.o.everyMs);
    this.timer.unref();
    return this;
  }

  /** Stops writing and removes the file: a stopping process is no longer live. */
  stop(): void {
    clearInterval(this.timer);
    rmSync(this.o.path, { force: true });
  }
}

export interface LivenessVerdict {
  ok: boolean;
  reason: string;
}

/** The health check: the file exists, is at most maxAgeMs old and says the loop progressed. */
export async function checkLiveness(
  config: Pick<LivenessConfig, 'path' | 'maxAgeMs'>,
  nowMs: number = Date.now(),
): Promise<LivenessVerdict> {
  let record: Partial<LivenessRecord>;
  try {
    record = JSON.parse(await readFile(config.path, 'utf8')) as Partial<LivenessRecord>;
  } catch (err) {
    return { ok: false, reason: `no readable liveness file at ${config.path}: ${(err as Error).message}` };
  }
  if (typeof record.atMs !== 'number' || typeof record.progressMs !== 'number') {
    return { ok: false, reason: `${config.path} is not a liveness record` };
  }
  const age = nowMs - record.atMs;
  if (age > config.maxAgeMs) {
    return {
      ok: false,
      reason: `liveness file is ${age} ms old (> ${config.maxAgeMs}): the process is hung or gone`,
    };
  }
  if (record.ok !== true) {
    return {
      ok: false,
      reason: `the loop has not progressed for ${record.atMs - record.progressMs} ms (pid ${record.pid})`,
    };
  }
  return {
    ok: true,
    reason: `progressed ${record.atMs - record.progressMs} ms before a ${age} ms old report`,
  };
}
