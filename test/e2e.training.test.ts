/**
 * Issue 11's end to end, every part real and each its own process, as a user runs it: the local system runs
 * (simulator -> ingestor -> worker -> gateway), `quotewatch simulate` fills the lake, `npm run train`'s command
 * (`quotewatch pipeline`: the CDK app's state machine run locally) trains, evaluates, gates and promotes, and the
 * RUNNING worker serves the promoted model without a restart; a deliberately worse configuration is rejected and the
 * pointer stays; `quotewatch runs` lists both runs; `quotewatch models rollback` is the operator's way back.
 *
 * The shipped baseline learnt from 24 simulated hours: a candidate of 20 minutes cannot beat it by an interval's
 * lower bound (the gate's rule), so the story runs against a weak active model — the rejected run's flattened one,
 * put in place with the rollback command — which a model of 20 minutes does beat.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { listRuns } from '../models/eval/runRecord.js';
import { defaultComponents } from '../src/local/supervisor.js';
import { activeVersion } from '../src/model/registry.js';
import type { LatestSnapshot } from '../src/storage/latest.js';
import { withSimulatedSystem } from './support/system.js';
import { until } from './support/until.js';

const TARGET = 'quote_change_500ms';
const PRODUCTS = ['BTC-USD', 'ETH-USD'];
const fixture = await withSimulatedSystem({
  simulator: { seed: 11, products: PRODUCTS },
  components: defaultComponents({ ingestors: 1 }).filter((n) => n !== 'simulator'),
  // The worker looks for a new active model every second (5 s by default).
  env: { MODEL_CHECK_MS: '1000' },
});

/** `quotewatch ...` as its own process against the running system (async: the simulator runs in this process). */
async function quotewatch(args: string[], env: Record<string, string> = {}): Promise<string> {
  const { stdout, stderr } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'bin/quotewatch.ts', ...args],
    { env: { ...process.env, ...fixture.system.env, ...env }, maxBuffer: 64 * 1024 * 1024 },
  ).catch((e: { code?: number; stdout?: string; stderr?: string }) => {
    throw new Error(`quotewatch ${args.join(' ')} exited ${e.code}:\n${e.stdout}\n${e.stderr}`);
  });
  return `${stdout}${stderr}`;
}

/** The model version the worker's latest snapshots of every product were scored with, once they all agree. */
async function servedVersion(): Promise<string | undefined> {
  const res = await fetch(`${fixture.system.urls.dashboard}latest`);
  if (res.status !== 200) return undefined;
  const { products } = (await res.json()) as { products: LatestSnapshot[] };
  const versions = new Set(products.map((s) => s.predictions[TARGET]?.modelVersion));
  return products.length === PRODUCTS.length && versions.size === 1 ? [...versions][0] : undefined;
}

const servesVersion = (version: string) =>
  until(`the running worker scores with ${version}`, async () => (await servedVersion()) === version, 60_000);

/** The version a pipeline run claimed, from its progress lines. */
function claimed(output: string): string {
  const m = /\[quote_change_500ms (qs-\d+\.\d+\.\d+)\]/.exec(output);
  if (!m) throw new Error(`no claimed version in:\n${output}`);
  return m[1]!;
}

describe('simulate -> train -> promote -> served by the running worker, locally', () => {
  it('a worse run is rejected and changes nothing; a better one is promoted and picked up without a restart', async () => {
    const env = fixture.system.env;
    const shipped = await activeVersion(TARGET, env);
    expect(shipped).toBeDefined();
    await servesVersion(shipped!);
    // From here on a restarted worker would say so: it must not, whatever the models do (its lines then say why it
    // stopped). Not earlier: the system is ready when the gateway is, and a slow worker logs its first start later.
    let restarted: string[] | undefined;
    void fixture.system
      .waitForLog('worker', (l) => l.includes('worker starting'), 300_000)
      .then(
        () => {
          restarted = fixture.system.logs('worker').slice(-40);
        },
        () => {},
      );

    // 20 simulated minutes into the lake the worker writes too (its own minutes are still warming up).
    expect(await quotewatch(['simulate', '--hours', String(20 / 60), '--seed', '7'])).toMatch(/simulated/i);

    // A deliberately worse configuration: an L2 penalty that flattens the regression. Kept out, pointer unchanged.
    const worse = await quotewatch(['pipeline', '--target', TARGET], {
      TRAIN_ALGORITHM: 'logistic',
      TRAIN_L2: '1000',
    });
    const weak = claimed(worse);
    expect(worse).toMatch(/KeptActive/);
    expect(await activeVersion(TARGET, env)).toBe(shipped);
    expect(await servedVersion()).toBe(shipped);

    // The operator puts the weak model in place: the running worker picks it up.
    expect(await quotewatch(['models', 'rollback', TARGET, '--version', weak])).toContain(
      `${shipped} -> ${weak}`,
    );
    await servesVersion(weak);

    // The default configuration (the better of the trees and the regression) beats it: promoted, served.
    const better = await quotewatch(['pipeline', '--target', TARGET], {
      PROMOTE_BLOCK_S: '10',
      PROMOTE_MAX_ECE: '0.1',
    });
    const promoted = claimed(better);
    expect(better).toMatch(/Promoted/);
    expect(promoted).not.toBe(weak);
    expect(await activeVersion(TARGET, env)).toBe(promoted);
    await servesVersion(promoted);

    // One worker process all along: it reloaded the models in place.
    expect(restarted, `the worker restarted; its last lines:\n${restarted?.join('\n')}`).toBeUndefined();
    const reloaded = fixture.system.logs('worker').filter((l) => l.includes('model reloaded'));
    expect(reloaded.some((l) => l.includes(weak))).toBe(true);
    expect(reloaded.some((l) => l.includes(promoted))).toBe(true);

    // Both runs' records, with their decisions, listed by `quotewatch runs`.
    const runs = new Map((await listRuns(env, [TARGET])).map((r) => [r.version, r.status]));
    expect(runs.get(weak)).toBe('rejected');
    expect(runs.get(promoted)).toBe('passed');
    const listed = await quotewatch(['runs']);
    expect(listed).toContain(weak);
    expect(listed).toContain(promoted);
  }, 300_000);
});
