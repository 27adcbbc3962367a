/**
 * The supervisor with real emulators and real child processes. The components are small stand-ins
 * (test/support/fixtures/) so this test checks the supervision itself, whatever state the real ones are in.
 */
import { fileURLToPath } from 'node:url';
import { ListStreamsCommand } from '@aws-sdk/client-kinesis';
import { describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { LOCAL_MODEL_URI, STREAM } from '../src/resources.js';
import { withSystem } from './support/system.js';

const fixture = (name: string) => fileURLToPath(new URL(`./support/fixtures/${name}.ts`, import.meta.url));
const output: string[] = [];
const local = withSystem({
  components: ['ingestor', 'worker', 'gateway'],
  componentFiles: { ingestor: fixture('stubborn'), worker: fixture('steady'), gateway: fixture('gateway') },
  seed: false,
  quiet: false,
  log: (line) => output.push(line),
  backoff: { initialMs: 50, maxMs: 200 },
  stopGraceMs: 500,
});

const pidOf = (line: string) => (JSON.parse(line) as { pid: number }).pid;
const isStarted = (line: string) => line.includes('"msg":"started"');
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('supervisor', () => {
  it('announces the dashboard and gives components the emulator environment', async () => {
    const { system } = local;
    expect(output).toContain(`QuoteWatch dashboard: ${system.urls.dashboard}`);
    expect(
      output.some((line) => line.startsWith('[gateway] {"level":"INFO","message":"gateway listening"')),
    ).toBe(true);

    const seen = (await (await fetch(system.urls.dashboard)).json()) as Record<string, unknown>;
    expect(seen.feedUrl).toBe(system.urls.feed);
    expect(system.urls.feed).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    expect(seen.modelUri).toBe(LOCAL_MODEL_URI);
    // Provisioned before the components started, and reached through the endpoints the supervisor passed on.
    expect(seen.StreamNames).toContain(STREAM.localName);
  });

  it('restarts a crashed component and says so', async () => {
    const { system } = local;
    const before = pidOf(system.logs('worker').filter(isStarted).at(-1)!);
    const restarted = system.waitForLog('worker', isStarted);
    await system.crash('worker');
    const after = pidOf(await restarted);

    expect(after).not.toBe(before);
    expect(alive(before)).toBe(false);
    expect(
      output.some((line) => line.startsWith('[supervisor] worker exited (SIGKILL); restarting in')),
    ).toBe(true);
  });

  it('keeps a killed component down until restart()', async () => {
    const { system } = local;
    const restartNotices = () =>
      output.filter((line) => line.startsWith('[supervisor] worker exited')).length;
    const noticesBefore = restartNotices();
    const pid = pidOf(system.logs('worker').filter(isStarted).at(-1)!);

    await system.kill('worker');
    expect(alive(pid)).toBe(false);
    expect(restartNotices()).toBe(noticesBefore);

    const started = system.waitForLog('worker', isStarted);
    await system.restart('worker');
    expect(alive(pidOf(await started))).toBe(true);
  });

  it('stops everything, SIGKILLing a component that ignores SIGTERM', async () => {
    const { system } = local;
    const pids = (['ingestor', 'worker'] as const).map((name) =>
      pidOf(system.logs(name).filter(isStarted).at(-1)!),
    );
    const gatewayPid = ((await (await fetch(system.urls.dashboard)).json()) as { pid: number }).pid;
    pids.push(gatewayPid);
    expect(pids.every(alive)).toBe(true);

    await system.stop();

    expect(pids.filter(alive)).toEqual([]);
    expect(output).toContain('[supervisor] ingestor still running 500 ms after SIGTERM; sending SIGKILL');
    await expect(kinesisClient(system.env).send(new ListStreamsCommand({}))).rejects.toThrow();
  });
});
