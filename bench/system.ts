/**
 * The whole local system as `npm start` runs it (fresh data folder, default ports), for the benchmarks that need it
 * running: started, waited on until /latest serves a prediction, stopped with SIGINT.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('../', import.meta.url));
export const GATEWAY = 'http://127.0.0.1:3000';
const LIMIT_MS = 120_000;

interface LatestBody {
  products?: { product: string; predictions?: Record<string, unknown> }[];
}

export interface RunningSystem {
  /** When the command was launched (Date.now()). */
  startedAt: number;
  /** The supervisor's process id (the components are its children). */
  pid: number;
  /** Resolves with the first product /latest serves with a prediction. */
  firstPrediction(): Promise<string>;
  stop(): Promise<void>;
}

export function startSystem(prefix: string, env: Record<string, string> = {}): RunningSystem {
  const dataDir = mkdtempSync(join(tmpdir(), prefix));
  const startedAt = Date.now();
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'bin/quotewatch.ts', 'start'], {
    cwd: REPO,
    env: { ...process.env, ...env, QW_DATA_DIR: dataDir },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  return {
    startedAt,
    pid: child.pid!,
    async firstPrediction() {
      const deadline = startedAt + LIMIT_MS;
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
    },
    async stop() {
      child.kill('SIGINT');
      await exited;
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
