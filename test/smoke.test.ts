/**
 * `quotewatch smoke` against the local gateway, over the whole running system (simulator -> ingestor -> worker
 * -> DynamoDB, baseline models in the registry), with the local gateway's authorizers (src/gateway/auth.ts)
 * doing what the deployed API's do: a JWT authorizer whose issuer is a real OpenID discovery + JWKS server in
 * this process (RS256 keys generated here), and an IAM authorizer checking SigV4 signatures. Smoke passes with
 * the right credentials, fails naming the check with wrong ones, and checks that an unsigned /predict is refused.
 */
import { execFile } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES } from '../src/api/routes.js';
import { regionOf, smoke } from '../src/api/smoke.js';
import { readGatewayAuthConfig } from '../src/config.js';
import { routeAuthorizer } from '../src/gateway/auth.js';
import { loadRoutes } from '../src/gateway/handlers.js';
import { type RunningGateway, startGateway } from '../src/gateway/server.js';
import { type System, startSystem } from '../src/local/supervisor.js';
import { tempDataDir } from './support/system.js';
import { until } from './support/until.js';

const REPO = join(import.meta.dirname, '..');
const AUDIENCE = 'quotewatch-smoke';

function jwt(key: KeyObject, claims: Record<string, unknown>, kid = 'k1'): string {
  const part = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const data = `${part({ alg: 'RS256', typ: 'JWT', kid })}.${part(claims)}`;
  return `${data}.${sign('sha256', Buffer.from(data), key).toString('base64url')}`;
}

describe('quotewatch smoke against the local gateway', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  let issuer: Server;
  let issuerUrl: string;
  let system: System;
  const dataDir = tempDataDir('qw-smoke-');
  const gateways: RunningGateway[] = [];

  beforeAll(async () => {
    issuer = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/.well-known/openid-configuration')
        res.end(JSON.stringify({ issuer: issuerUrl, jwks_uri: `${issuerUrl}/jwks.json` }));
      else if (req.url === '/jwks.json')
        res.end(
          JSON.stringify({
            keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' }],
          }),
        );
      else res.writeHead(404).end('{}');
    });
    await new Promise<void>((ok) => issuer.listen(0, '127.0.0.1', ok));
    issuerUrl = `http://127.0.0.1:${(issuer.address() as AddressInfo).port}`;
    // The system's own gateway runs with the JWT authorizer.
    system = await startSystem({
      dataDir,
      freePorts: true,
      quiet: true,
      env: { API_AUTH: 'jwt', JWT_ISSUER: issuerUrl, JWT_AUDIENCE: AUDIENCE, SYMBOLS: 'BTC-USD,ETH-USD' },
    });
    // Healthy and scored: what a smoke test after a deploy waits for (--wait).
    await until(
      'the system healthy with scored snapshots',
      async () => {
        const health = (await (await fetch(`${system.urls.dashboard}health`)).json()) as { status: string };
        const latest = (await (await fetch(`${system.urls.dashboard}latest`)).json()) as {
          products: { predictions: object }[];
        };
        return (
          health.status === 'ok' &&
          latest.products.length === 2 &&
          latest.products.every((p) => Object.keys(p.predictions).length > 0)
        );
      },
      120_000,
    );
  }, 180_000);
  afterAll(async () => {
    for (const g of gateways) await g.close();
    await system?.stop();
    await new Promise((ok) => issuer?.close(ok));
  });

  const token = (claims: Record<string, unknown> = {}) =>
    jwt(privateKey, { iss: issuerUrl, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600, ...claims });

  it('passes every check with a valid JWT, and sees an unsigned /predict refused', async () => {
    const checks = await smoke(system.urls.dashboard, { mode: 'jwt', token: token() });
    expect(checks.map((c) => [c.name, c.ok])).toEqual([
      ['GET /health', true],
      ['GET /version', true],
      ['GET /latest', true],
      ['POST /predict (auth jwt)', true],
      // The system's gateway serves the WebSocket API and the page names it.
      ['WebSocket push', true],
      ['POST /predict without auth is refused', true],
    ]);
    expect(checks[3]!.detail).toMatch(/^200 BTC-USD: p=0\.\d{4} model /);
    expect(checks[4]!.detail).toMatch(/^subscribed to BTC-USD in \d+ ms, then a push$/);
    expect(checks[5]!.detail).toMatch(/^401/);
  });

  it('fails /predict, naming it, with an expired token, a foreign audience or another key', async () => {
    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    for (const bad of [
      token({ exp: Math.floor(Date.now() / 1000) - 10 }),
      token({ aud: 'someone-else' }),
      jwt(otherKey, { iss: issuerUrl, aud: AUDIENCE, exp: Math.floor(Date.now() / 1000) + 600 }),
    ]) {
      const checks = await smoke(system.urls.dashboard, { mode: 'jwt', token: bad });
      const predict = checks.find((c) => c.name === 'POST /predict (auth jwt)')!;
      expect(predict.ok).toBe(false);
      expect(predict.detail).toMatch(/^401 BTC-USD: .*unauthorized/);
      // Public reads still answer.
      expect(checks.find((c) => c.name === 'GET /latest')!.ok).toBe(true);
    }
  });

  it('as the CLI: exit 0 when all pass, 1 naming the failure, 2 on bad usage', async () => {
    const run = (args: string[], env: Record<string, string> = {}) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', 'bin/quotewatch.ts', 'smoke', ...args], {
        cwd: REPO,
        env: { ...process.env, ...env },
      }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
    const ok = await run(['--api', system.urls.dashboard, '--auth', 'jwt'], { QW_API_TOKEN: token() });
    expect(ok.out).toContain('smoke: all 6 checks passed');
    expect(ok.code).toBe(0);
    // Without auth the protected route answers 401: the check fails and says so.
    const unsigned = await run(['--api', system.urls.dashboard]);
    expect(unsigned.code).toBe(1);
    expect(unsigned.out).toMatch(/FAIL {2}POST \/predict \(auth none\) +401/);
    expect((await run(['--auth', 'jwt'])).code).toBe(2);
    expect((await run(['--api', system.urls.dashboard, '--auth', 'jwt'], { QW_API_TOKEN: '' })).code).toBe(2);
  }, 60_000);

  it('with an IAM authorizer: passes SigV4-signed, fails with the wrong secret (403)', async () => {
    // A second gateway over the same emulators, in this process: the handlers read the system's environment.
    Object.assign(process.env, system.env);
    const credentials = { accessKeyId: 'AKIDSMOKE', secretAccessKey: 'smoke-secret' };
    const auth = readGatewayAuthConfig({
      API_AUTH: 'iam',
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    });
    const gateway = await startGateway({
      routes: await loadRoutes(),
      port: 0,
      authorize: routeAuthorizer(ROUTES, auth),
    });
    gateways.push(gateway);
    const good = await smoke(gateway.url, { mode: 'iam', region: 'eu-west-1', credentials });
    expect(
      good.every((c) => c.ok),
      JSON.stringify(good),
    ).toBe(true);
    expect(good.at(-1)!.detail).toMatch(/^403/);
    const bad = await smoke(gateway.url, {
      mode: 'iam',
      region: 'eu-west-1',
      credentials: { ...credentials, secretAccessKey: 'wrong' },
    });
    expect(bad.find((c) => c.name === 'POST /predict (auth iam)')!.detail).toMatch(
      /^403 .*signature does not match/,
    );
    const wrongRegion = await smoke(gateway.url, { mode: 'iam', region: 'us-east-1', credentials });
    expect(wrongRegion.find((c) => c.name === 'POST /predict (auth iam)')!.ok).toBe(false);
  });

  it('with reads not public, the read routes need the authorizer too', async () => {
    const auth = readGatewayAuthConfig({
      API_AUTH: 'jwt',
      JWT_ISSUER: issuerUrl,
      JWT_AUDIENCE: AUDIENCE,
      PUBLIC_READS: 'false',
    });
    const gateway = await startGateway({
      routes: await loadRoutes(),
      port: 0,
      authorize: routeAuthorizer(ROUTES, auth),
    });
    gateways.push(gateway);
    const unsigned = await smoke(gateway.url, { mode: 'none' });
    expect(unsigned.find((c) => c.name === 'GET /latest')!.detail).toMatch(/^401/);
    const signed = await smoke(gateway.url, { mode: 'jwt', token: token() });
    expect(signed.every((c) => c.ok)).toBe(true);
  });

  it('reads the region from an execute-api URL', () => {
    expect(regionOf('https://abc123.execute-api.eu-central-1.amazonaws.com/')).toBe('eu-central-1');
    expect(regionOf('http://127.0.0.1:3000/')).toBeUndefined();
  });
});
