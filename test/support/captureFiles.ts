/**
 * The real Coinbase captures beside the checkout (../shared/data/coinbase, see its README), for the suite and the
 * benchmarks. A user's fresh clone has no ../shared: everything that needs a capture finds it here, and skips
 * with absentNote's message when it is missing (tests through captures.ts's describeCapture/itCapture, which the
 * skip audit recognizes by the NEEDS_CAPTURES mark). No vitest here: the benchmarks import this module too.
 */

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { QuoteWatchError } from '../../src/errors.js';
import type { ArchivedFrame } from '../../src/ingest/archive.js';
import { readRecording } from '../../src/replay/readers.js';

export const CAPTURES_DIR = resolve(import.meta.dirname, '../../../shared/data/coinbase');

export const CAPTURE_FILES = {
  /** Advanced Trade, BTC-USD + ETH-USD, 24.8 s: `{"t":"recv","ts","data"}` JSON lines. */
  advancedTrade: 'advanced-trade-btc-eth-2026-08-09.jsonl.gz',
  /** Legacy Exchange feed, ten pairs, 30.8 s: `<epoch>: <json>` lines. */
  exchange: 'exchange-l2-10pairs-2021-04-17.txt.gz',
} as const;
export type CaptureName = keyof typeof CAPTURE_FILES;

/** In the title of every suite or test that needs a capture. */
export const NEEDS_CAPTURES = '[needs ../shared]';

export class CaptureMissingError extends QuoteWatchError {
  constructor(path: string) {
    super(`${path} is absent: read captures only inside tests declared with describeCapture/itCapture`);
  }
}

export interface Capture {
  readonly name: CaptureName;
  readonly path: string;
  readonly present: boolean;
}

const cache = new Map<CaptureName, Capture>();
const framesCache = new Map<CaptureName, Promise<ArchivedFrame[]>>();

/**
 * The frames the exchange sent, in order, with their receive times: read by the same reader as
 * `quotewatch replay` (src/replay/readers.ts), once per process.
 */
export function receivedFrames(c: Capture): Promise<ArchivedFrame[]> {
  let frames = framesCache.get(c.name);
  if (!frames) {
    if (!c.present) return Promise.reject(new CaptureMissingError(c.path));
    frames = (async () => {
      const out: ArchivedFrame[] = [];
      for await (const f of readRecording(c.path)) out.push(f);
      return out;
    })();
    framesCache.set(c.name, frames);
  }
  return frames;
}

export function capture(name: CaptureName): Capture {
  let c = cache.get(name);
  if (c) return c;
  const path = join(CAPTURES_DIR, CAPTURE_FILES[name]);
  c = { name, path, present: existsSync(path) };
  cache.set(name, c);
  return c;
}

/** The one message for whatever a missing capture skips (tests, benchmark keys). */
export function absentNote(c: Capture, what: string): string {
  return `skipped ${what}: ${c.path} is absent (the real captures live in ../shared/, beside the checkout)`;
}
