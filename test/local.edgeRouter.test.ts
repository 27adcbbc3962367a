/**
 * LocalStack stays true without LocalStack: localstack/env.sh sets exactly the variables the SDK clients read
 * (src/aws/clients.ts CLIENT_VARIABLES, plus the SDK's own checksum settings), every endpoint at LOCALSTACK_URL;
 * and with those variables pointed at a single-port router in front of the local emulators (src/local/edgeRouter.ts,
 * routing by SigV4 credential scope as LocalStack's edge port does), `quotewatch provision` and one ingest ->
 * worker pass run as they would against LocalStack. The credentials are the emulators' (s3rver accepts only
 * its own); LocalStack accepts any, so env.sh's test/test are not what is under test.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENT_VARIABLES, dynamoClient } from '../src/aws/clients.js';
import { type EdgeRouter, type EdgeService, startEdgeRouter } from '../src/local/edgeRouter.js';
import { LOCAL_MODEL_URI, TABLES } from '../src/resources.js';
import { startSimulator } from '../src/simulator/server.js';
import { listLatest } from '../src/storage/latest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

const REPO = join(import.meta.dirname, '..');
const run = promisify(execFile);

/** What `source localstack/env.sh` exports, with LOCALSTACK_URL as given. */
async function envSh(localstackUrl: string): Promise<Record<string, string>> {
  const { stdout } = await run(
    'bash',
    [
      '-c',
      'env -i LOCALSTACK_URL="$1" bash -c \'set -a; source localstack/env.sh; env -0\'',
      '_',
      localstackUrl,
    ],
    { cwd: REPO },
  );
  const all = Object.fromEntries(
    stdout
      .split('\0')
      .filter(Boolean)
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const { stdout: base } = await run('bash', ['-c', 'env -i bash -c "env -0"'], { cwd: REPO });
  for (const kv of base.split('\0').filter(Boolean)) delete all[kv.slice(0, kv.indexOf('='))];
  delete all.LOCALSTACK_URL;
  return all;
}

describe('localstack/env.sh', () => {
  it('sets exactly the endpoint and client variables src/aws/clients.ts reads, all at LOCALSTACK_URL', async () => {
    const env = await envSh('http://localhost:4566');
    const aws = Object.keys(env).filter((k) => k.startsWith('AWS_'));
    // The checksum settings are the SDK's own variables (some emulators store default CRC checksums wrongly).
    const sdk = ['AWS_REQUEST_CHECKSUM_CALCULATION', 'AWS_RESPONSE_CHECKSUM_VALIDATION'];
    expect(aws.sort()).toEqual([...CLIENT_VARIABLES, ...sdk].sort());
    for (const name of CLIENT_VARIABLES.filter((v) => v.startsWith('AWS_ENDPOINT_URL_')))
      expect(env[name], name).toBe('http://localhost:4566');
    expect(Object.keys(env).filter((k) => !k.startsWith('AWS_'))).toEqual(['MODEL_URI']);
    expect(env.MODEL_URI).toBe(LOCAL_MODEL_URI);
    // Defaults to LocalStack's port when LOCALSTACK_URL is not set.
    const { stdout } = await run('bash', ['-c', 'source localstack/env.sh; echo "$AWS_ENDPOINT_URL_S3"'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '' },
    });
    expect(stdout.trim()).toBe('http://localhost:4566');
  });
});

describe('through one LocalStack-style port', () => {
  const local = withEmulators();
  let router: EdgeRouter;
  const seen = new Map<string, number>();
  let env: Record<string, string>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    router = await startEdgeRouter({
      upstreams: {
        kinesis: local.env.AWS_ENDPOINT_URL_KINESIS!,
        dynamodb: local.env.AWS_ENDPOINT_URL_DYNAMODB!,
        s3: local.env.AWS_ENDPOINT_URL_S3!,
      },
      observe: (x) => {
        const op = String(x.headers['x-amz-target'] ?? `${x.method}`)
          .split('.')
          .pop();
        const key = `${x.service} ${op}`;
        seen.set(key, (seen.get(key) ?? 0) + 1);
      },
    });
    env = {
      ...(await envSh(router.url)),
      AWS_ACCESS_KEY_ID: local.env.AWS_ACCESS_KEY_ID!,
      AWS_SECRET_ACCESS_KEY: local.env.AWS_SECRET_ACCESS_KEY!,
    };
  });
  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    await router?.close();
  });

  const count = (service: EdgeService) =>
    [...seen].filter(([k]) => k.startsWith(`${service} `)).reduce((n, [, v]) => n + v, 0);

  it('quotewatch provision creates everything through the router', async () => {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'bin/quotewatch.ts', 'provision'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    expect(stdout).toContain(`endpoints: ${router.url}, ${router.url}, ${router.url}`);
    expect(stdout).toContain('created');
    expect(seen.get('kinesis CreateStream')).toBe(1);
    expect(seen.get('dynamodb CreateTable')).toBe(Object.keys(TABLES).length);
    expect(count('s3')).toBeGreaterThan(0);
    expect(router.unrouted).toBe(0);
  }, 120_000);

  it('an ingest -> worker pass runs through it: the feed reaches the latest table', async () => {
    const sim = await startSimulator({ port: 0, seed: 9, mode: 'realtime' });
    try {
      const componentEnv = {
        PATH: process.env.PATH ?? '',
        ...env,
        FEED_URL: sim.url,
        SYMBOLS: 'BTC-USD',
        POLL_IDLE_MS: '20',
        LATEST_WRITE_MS: '0',
        QW_DATA_DIR: join(local.dataDir, 'qw'),
      };
      for (const entry of ['containers/ingestor/main.ts', 'containers/worker/main.ts']) {
        children.push(
          spawn(process.execPath, ['--import', 'tsx', entry], {
            cwd: REPO,
            env: componentEnv,
            stdio: 'ignore',
          }),
        );
      }
      const store = { client: dynamoClient(env), table: TABLES.latest.localName };
      const snap = await until(
        'a latest snapshot through the router',
        async () => (await listLatest(['BTC-USD'], store))[0],
        90_000,
      );
      expect(snap.product).toBe('BTC-USD');
      expect(seen.get('kinesis PutRecords')).toBeGreaterThan(0);
      expect(seen.get('kinesis GetRecords')).toBeGreaterThan(0);
      expect(seen.get('dynamodb PutItem')).toBeGreaterThan(0);
      expect(seen.get('s3 PUT')).toBeGreaterThan(0); // the claim-checked book snapshot
      expect(router.unrouted).toBe(0);
    } finally {
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(
        children.map((c) => (c.exitCode === null ? new Promise((ok) => c.once('exit', ok)) : undefined)),
      );
      await sim.close();
    }
  }, 150_000);
});
