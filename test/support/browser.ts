/**
 * Browser tests drive Debian's Chromium (playwright cannot download a browser here). They skip with a message
 * without /usr/bin/chromium, and must run when CI is set (.ci/run installs it): a missing browser then fails.
 */
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { describe } from 'vitest';

export const CHROMIUM = '/usr/bin/chromium';
export const NEEDS_CHROMIUM = '[needs chromium]';
export const browserRuns = Boolean(process.env.CI) || existsSync(CHROMIUM);

/** Where browser tests leave what a person may want to look at after a run (screenshots); not committed. */
export function artifactPath(name: string): string {
  const dir = path.resolve(import.meta.dirname, '../../.artifacts');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}

/** A suite that needs the browser: runs when it can, reported as skipped (one warning) when it cannot. */
export function describeBrowser(title: string, body: () => void): void {
  if (!browserRuns) {
    console.warn(`skipped "${title}": ${CHROMIUM} not found (install chromium, or set CI to force)`);
  }
  describe.skipIf(!browserRuns)(`${title} ${NEEDS_CHROMIUM}`, body);
}

/** Headless Chromium as this machine allows it (no sandbox as root, no background network). */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
