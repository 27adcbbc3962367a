/**
 * startup.first_prediction_s: seconds from launching `npm start`'s command (fresh data folder, default ports)
 * to the first /latest answer that carries a prediction.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BenchGroup, machineContext } from './harness.js';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const GATEWAY = 'http://127.0.0.1:3000';
const LIMIT_MS = 120_000;

interface LatestBody {
  products?: { product: string; predictions?: Record<string, unknown> }[];
}

async function firstPrediction(deadline: number): Promise<string> {
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${GATEWAY}/latest`);
      if (res.ok) {
        const body = (await res.json()) as LatestBody;
        const scored = body.products?.find((p) => Object.keys(p.predictions ?? {}).length > 0);
        if (scored) return scored.product;
      }
    } catch {
      // gateway not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no prediction within ${LIMIT_MS / 1000} s`);
}

export const startupGroup: BenchGroup = {
  name: 'startup',
  description: '`npm start` (fresh data folder) to the first prediction served by /latest',
  async run() {
    const dataDir = mkdtempSync(join(tmpdir(), 'qw-bench-startup-'));
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/quotewatch.ts', 'start'], {
      cwd: REPO,
      env: { ...process.env, QW_DATA_DIR: dataDir },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    try {
      const product = await firstPrediction(started + LIMIT_MS);
      const seconds = (Date.now() - started) / 1000;
      return [
        {
          name: 'startup.first_prediction_s',
          value: seconds,
          unit: 's',
          context: {
            ...machineContext(),
            product,
            command: 'npm start (bin/quotewatch.ts start), fresh QW_DATA_DIR',
          },
        },
      ];
    } finally {
      child.kill('SIGINT');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
};
