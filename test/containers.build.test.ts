/**
 * The container images without a Docker engine. Each Dockerfile's build stage runs `node containers/build.mjs
 * <image> /out --arch $TARGETARCH` and the runtime stage copies /out to /app and runs `node dist/<image>.mjs`; this
 * test checks the Dockerfiles say exactly that, runs the same script into a temp folder outside the checkout (so
 * no node_modules of ours can be found) and starts each image's entry there, in the runtime layout, against
 * real emulators and the simulator: the ingestor publishes, the worker scores with onnxruntime from the copied
 * package, and both pass their health check (`node dist/healthcheck.mjs <component>`, the command ECS runs)
 * while their loop progresses, and fail it once stopped. It also checks that an arm64 image carries only the
 * arm64 onnxruntime binary.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEALTH_CHECK } from '../lib/fargate-services.js';
import { dynamoClient } from '../src/aws/clients.js';
import { provision } from '../src/local/provision.js';
import { TABLES } from '../src/resources.js';
import { startSimulator } from '../src/simulator/server.js';
import { listLatest } from '../src/storage/latest.js';
import { type EmulatorFixture, withEmulators } from './support/system.js';
import { until } from './support/until.js';

const run = promisify(execFile);
const REPO = join(import.meta.dirname, '..');
const IMAGES = ['ingestor', 'worker'] as const;
const ORT_ARCH: Record<string, string> = { arm64: 'arm64', x64: 'x64' };
/** The Dockerfiles' base image reference, as written there (a build arg). */
const BASE = '$' + '{BASE_IMAGE}';

const root = mkdtempSync(join(tmpdir(), 'qw-images-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

async function build(image: string, arch: string): Promise<string> {
  const out = join(root, `${image}-${arch}`);
  await run(process.execPath, [join(REPO, 'containers/build.mjs'), image, out, '--arch', arch], {
    cwd: REPO,
  });
  return out;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function instructions(image: string): string[] {
  return readFileSync(join(REPO, `containers/${image}/Dockerfile`), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
}

describe('Dockerfiles', () => {
  for (const image of IMAGES) {
    it(`${image}: builds with containers/build.mjs for TARGETARCH and runs dist/${image}.mjs from /app`, () => {
      const lines = instructions(image);
      expect(lines).toContain('ARG BASE_IMAGE=node:22-slim');
      expect(lines.filter((l) => l.startsWith('FROM '))).toEqual([`FROM ${BASE} AS build`, `FROM ${BASE}`]);
      expect(lines).toContain(`RUN node containers/build.mjs ${image} /out --arch "\${TARGETARCH:-arm64}"`);
      const runtime = lines.slice(lines.indexOf(`FROM ${BASE}`));
      expect(runtime).toContain('WORKDIR /app');
      expect(runtime.filter((l) => l.startsWith('COPY'))).toEqual(['COPY --from=build /out/ ./']);
      expect(runtime).toContain(`CMD ["node", "dist/${image}.mjs"]`);
      // The same health check command as the ECS task definition's.
      const health = runtime.find((l) => l.startsWith('HEALTHCHECK'));
      expect(health).toContain(
        `CMD ${JSON.stringify([...HEALTH_CHECK.command.slice(1), image]).replace(/,/g, ', ')}`,
      );
    });
  }

  it('an arm64 worker image carries the arm64 onnxruntime binary and no other', async () => {
    const out = await build('worker', 'arm64');
    const linux = join(out, 'node_modules/onnxruntime-node/bin/napi-v6/linux');
    expect(readdirSync(linux)).toEqual(['arm64']);
    expect(readdirSync(join(out, 'node_modules/onnxruntime-node/bin/napi-v6'))).toEqual(['linux']);
    expect(
      readdirSync(join(out, 'dist'))
        .filter((f) => f.endsWith('.mjs'))
        .sort(),
    ).toEqual(['healthcheck.mjs', 'train.mjs', 'worker.mjs']);
  });

  it('an ingestor image has no node_modules at all', async () => {
    const out = await build('ingestor', 'arm64');
    expect(existsSync(join(out, 'node_modules'))).toBe(false);
    expect(
      readdirSync(join(out, 'dist'))
        .filter((f) => f.endsWith('.mjs'))
        .sort(),
    ).toEqual(['healthcheck.mjs', 'ingestor.mjs']);
  });

  it('rejects an unknown architecture, naming it', async () => {
    await expect(build('worker', 'mips')).rejects.toThrow(/unknown --arch "mips"/);
  });
});

describe('images started in their runtime layout (host architecture)', () => {
  const local: EmulatorFixture = withEmulators();
  const arch = ORT_ARCH[process.arch];
  const children: ChildProcess[] = [];
  let sim: Awaited<ReturnType<typeof startSimulator>>;
  const dirs: Record<string, string> = {};
  const liveness = (image: string) => join(root, `${image}.alive`);
  let env: Record<string, string>;

  beforeAll(async () => {
    if (!arch) throw new Error(`no onnxruntime binary for ${process.arch}`);
    await provision(local.env, { seed: true });
    sim = await startSimulator({ port: 0, seed: 3, mode: 'realtime' });
    for (const image of IMAGES) dirs[image] = await build(image, arch);
    env = {
      PATH: process.env.PATH ?? '',
      ...local.env,
      FEED_URL: sim.url,
      SYMBOLS: 'BTC-USD,ETH-USD',
      LIVENESS_EVERY_MS: '200',
      LIVENESS_STUCK_MS: '5000',
      POLL_IDLE_MS: '20',
      LATEST_WRITE_MS: '0',
    };
  }, 120_000);
  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
    await sim?.close();
  });

  /** `node dist/healthcheck.mjs <image>` in the image's folder, as ECS runs it. */
  const healthcheck = async (image: string) => {
    const child = spawn(process.execPath, ['dist/healthcheck.mjs', image], {
      cwd: dirs[image],
      env: { ...env, LIVENESS_FILE: liveness(image) },
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const [code] = (await once(child, 'exit')) as [number];
    return { code, output };
  };

  const start = (image: string) => {
    const child = spawn(process.execPath, [`dist/${image}.mjs`], {
      cwd: dirs[image],
      env: { ...env, LIVENESS_FILE: liveness(image), WORKER_ID: 'image-test' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    child.on('exit', (code) => {
      if (code !== 0 && code !== null) console.error(`${image} exited ${code}: ${stderr}`);
    });
    children.push(child);
    return child;
  };

  it('the ingestor and the worker run from dist/ alone, score with the copied onnxruntime and pass their health checks', async () => {
    // Outside the checkout: nothing of ours up the tree (Node would find node_modules in a parent folder).
    for (const dir of Object.values(dirs)) expect(dir.startsWith(REPO)).toBe(false);
    expect((await healthcheck('worker')).code).toBe(1); // not started: no liveness file

    const ingestor = start('ingestor');
    const worker = start('worker');
    await until('the ingestor healthy', async () => (await healthcheck('ingestor')).code === 0, 60_000);
    await until('the worker healthy', async () => (await healthcheck('worker')).code === 0, 60_000);
    const store = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const scored = await until(
      'a latest snapshot scored by both models',
      async () => {
        const [snap] = await listLatest(['BTC-USD'], store);
        return snap && Object.keys(snap.predictions).length === 2 ? snap : undefined;
      },
      90_000,
    );
    for (const p of Object.values(scored.predictions)) expect(p.probability).toBeGreaterThan(0);

    // A clean stop removes the liveness file: the check fails at once, naming why.
    for (const child of [ingestor, worker]) child.kill('SIGTERM');
    const codes = await Promise.all([ingestor, worker].map(async (c) => (await once(c, 'exit'))[0]));
    expect(codes).toEqual([0, 0]);
    const after = await healthcheck('worker');
    expect(after.code).toBe(1);
    expect(after.output).toMatch(/no readable liveness file/);
  }, 240_000);
});
