/**
 * The local gateway: real HTTP requests become API Gateway HTTP API v2 events for the very handlers Lambda runs,
 * over real emulators; and the gateway process logs its URL and exits cleanly on SIGTERM.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HttpApiEventV2, HttpApiResultV2 } from '../src/api/http.js';
import { CORS_POLICY, ROUTES, routeKey } from '../src/api/routes.js';
import { readCorsConfig } from '../src/config.js';
import { loadRoutes, RouteLoadError } from '../src/gateway/handlers.js';
import { type RunningGateway, startGateway } from '../src/gateway/server.js';
import type { Emulators } from '../src/local/emulators.js';
import { putLatest } from '../src/storage/latest.js';
import { type LocalGateway, snapshotAt, startLocalGateway } from './support/gateway.js';

const MAIN = fileURLToPath(new URL('../src/gateway/main.ts', import.meta.url));

const snapshot = (product: string, mid: number) => snapshotAt(product, mid);

let local: LocalGateway;
let emu: Emulators;
let gateway: RunningGateway;

beforeAll(async () => {
  local = await startLocalGateway({
    tempPrefix: 'qw-gw-',
    env: { SYMBOLS: 'BTC-USD,ETH-USD' },
    seed: () => putLatest(snapshot('BTC-USD', 65000.5)),
  });
  ({ emulators: emu, gateway } = local);
});

afterAll(async () => {
  await local?.close();
});

describe('gateway over the real handlers', () => {
  it('serves /latest with what the table holds', async () => {
    const res = await fetch(`${gateway.url}/latest`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const body = await res.json();
    expect(body.products).toHaveLength(1);
    expect(body.products[0]).toMatchObject({
      product: 'BTC-USD',
      mid: 65000.5,
      bestBid: '65000',
      bestAsk: '65001',
    });

    await putLatest(snapshot('ETH-USD', 3000.5));
    const one = await (await fetch(`${gateway.url}/latest?product=ETH-USD`)).json();
    expect(one).toMatchObject({ product: 'ETH-USD', mid: 3000.5 });
  });

  it('passes handler errors through with their status and body', async () => {
    const missing = await fetch(`${gateway.url}/latest?product=XRP-USD`);
    expect(missing.status).toBe(404);
    expect((await missing.json()).error.code).toBe('not_found');

    const bad = await fetch(`${gateway.url}/predict`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{not json',
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toMatch(/not valid JSON/);
  });

  it('answers 404 for paths that do not exist, and 405 with Allow for a known path asked with another method', async () => {
    const res = await fetch(`${gateway.url}/nope`);
    expect(res.status).toBe(404);
    expect((await res.json()).error.message).toBe('no route for GET /nope');
    // A path starting "//" is a path, not a host (URL parsing would read it as one, and throw on "//a:b").
    for (const odd of ['//a:b', '//latest']) {
      const r = await fetch(`${gateway.url}${odd}`);
      expect(r.status, odd).toBe(404);
      expect((await r.json()).error.message).toBe(`no route for GET ${odd}`);
    }
    for (const [method, path, allow] of [
      ['DELETE', '/latest', 'GET'],
      ['GET', '/predict', 'POST'],
      ['PUT', '/history', 'GET'],
    ] as const) {
      const wrong = await fetch(`${gateway.url}${path}`, { method });
      expect(wrong.status, `${method} ${path}`).toBe(405);
      expect(wrong.headers.get('allow')).toBe(allow);
      expect((await wrong.json()).error).toEqual({
        code: 'method_not_allowed',
        message: `${method} is not served on ${path}; use ${allow}`,
      });
    }
  });
});

describe('CORS, as API Gateway answers it', () => {
  it('without allowed origins: a preflight reaches the path and gets 204 with Allow, no CORS header', async () => {
    const res = await fetch(`${gateway.url}/latest`, {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('allow')).toBe('GET');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('with CORS_ORIGINS: preflights answered by the gateway, allowed origins get the header, others do not', async () => {
    const cors = {
      origins: readCorsConfig({ CORS_ORIGINS: 'https://app.example, http://127.0.0.1:8080' }).origins,
    };
    const other = await startGateway({ routes: await loadRoutes(), port: 0, cors });
    try {
      const preflight = (origin: string, path = '/predict') =>
        fetch(`${other.url}${path}`, {
          method: 'OPTIONS',
          headers: {
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'content-type',
          },
        });
      const ok = await preflight('https://app.example');
      expect(ok.status).toBe(204);
      expect(Object.fromEntries([...ok.headers].filter(([k]) => k.startsWith('access-control-')))).toEqual({
        'access-control-allow-origin': 'https://app.example',
        'access-control-allow-methods': CORS_POLICY.allowMethods.join(','),
        'access-control-allow-headers': CORS_POLICY.allowHeaders.join(','),
        'access-control-max-age': String(CORS_POLICY.maxAgeS),
      });
      expect(ok.headers.get('vary')).toBe('origin');
      const refused = await preflight('https://evil.example');
      expect(refused.status).toBe(204);
      expect(refused.headers.get('access-control-allow-origin')).toBeNull();
      expect((await preflight('https://app.example', '/nope')).status).toBe(404);
      const get = await fetch(`${other.url}/latest`, { headers: { origin: 'http://127.0.0.1:8080' } });
      expect(get.status).toBe(200);
      expect(get.headers.get('access-control-allow-origin')).toBe('http://127.0.0.1:8080');
      const noOrigin = await fetch(`${other.url}/latest`);
      expect(noOrigin.headers.get('access-control-allow-origin')).toBeNull();
      expect(() => readCorsConfig({ CORS_ORIGINS: 'app.example' })).toThrow(/CORS_ORIGINS/);
    } finally {
      await other.close();
    }
  });
});

describe('routes from the table (src/api/routes.ts)', () => {
  it('loads a handler for every route of the table, by its entry file', async () => {
    const routes = await loadRoutes();
    const anyRoutes = [...new Set(ROUTES.map((r) => `ANY ${r.path}`))];
    expect(Object.keys(routes).sort()).toEqual([...ROUTES.map(routeKey), ...anyRoutes].sort());
    for (const [key, handler] of Object.entries(routes)) expect(typeof handler, key).toBe('function');
  });

  it('fails naming the route when an entry is missing or exports no handler', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qw-routes-'));
    try {
      const noHandler = join(dir, 'noHandler.mjs');
      writeFileSync(noHandler, 'export const notTheHandler = () => 1;\n');
      const route = {
        method: 'GET',
        id: 'X',
        description: 'x',
        bindings: [],
        access: 'read',
        throttle: { rateLimit: 1, burstLimit: 1 },
      } as const;
      await expect(loadRoutes([{ ...route, path: '/gone', entry: 'lambdas/gone.ts' }])).rejects.toThrow(
        /^GET \/gone: cannot load lambdas\/gone\.ts/,
      );
      const wrong = loadRoutes([{ ...route, path: '/x', entry: noHandler }]);
      await expect(wrong).rejects.toBeInstanceOf(RouteLoadError);
      await expect(wrong).rejects.toThrow(`GET /x: ${noHandler} exports no handler function`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the v2 event the gateway builds', () => {
  let seen: HttpApiEventV2[] = [];
  let echo: RunningGateway;
  beforeAll(async () => {
    const record = async (event: HttpApiEventV2): Promise<HttpApiResultV2> => {
      seen.push(event);
      return {
        statusCode: 201,
        headers: { 'x-echo': event.routeKey },
        body: Buffer.from('binary\u0000ok').toString('base64'),
        isBase64Encoded: true,
      };
    };
    echo = await startGateway({ routes: { 'POST /echo': record, 'GET /echo': record }, port: 0 });
  });
  afterAll(async () => echo?.close());

  it('carries method, path, query, lowercased headers, cookies and a text body', async () => {
    seen = [];
    const res = await fetch(`${echo.url}/echo?a=1&b=two%20words&a=3`, {
      method: 'POST',
      headers: { 'X-Trace-Id': 'T-1', 'Content-Type': 'application/json', Cookie: 'k1=v1; k2=v2' },
      body: '{"x":1}',
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-echo')).toBe('POST /echo');
    expect(Buffer.from(await res.arrayBuffer()).toString()).toBe('binary\u0000ok');

    const e = seen[0]!;
    expect(e).toMatchObject({
      version: '2.0',
      routeKey: 'POST /echo',
      rawPath: '/echo',
      rawQueryString: 'a=1&b=two%20words&a=3',
      queryStringParameters: { a: '1,3', b: 'two words' },
      cookies: ['k1=v1', 'k2=v2'],
      body: '{"x":1}',
      isBase64Encoded: false,
    });
    expect(e.headers['x-trace-id']).toBe('T-1');
    expect(e.headers).not.toHaveProperty('cookie');
    expect(e.requestContext.http).toMatchObject({ method: 'POST', path: '/echo', sourceIp: '127.0.0.1' });
    expect(e.requestContext.routeKey).toBe('POST /echo');
    expect(e.requestContext.time).toMatch(/^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000$/);
  });

  it('base64-encodes binary bodies and leaves out what a bodiless GET lacks', async () => {
    seen = [];
    const bytes = Uint8Array.from([0, 255, 1, 254]);
    await fetch(`${echo.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    await fetch(`${echo.url}/echo`);
    const [post, get] = seen;
    expect(post!.isBase64Encoded).toBe(true);
    expect(Buffer.from(post!.body!, 'base64')).toEqual(Buffer.from(bytes));
    expect(get!.body).toBeUndefined();
    expect(get!.queryStringParameters).toBeUndefined();
    expect(get!.rawQueryString).toBe('');
  });
});

describe('gateway process (src/gateway/main.ts)', () => {
  it('logs its URL once listening, serves, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, ...emu.env, PORT: '0', SYMBOLS: 'BTC-USD' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      let url = '';
      for await (const line of createInterface({ input: child.stdout! })) {
        const msg = JSON.parse(line);
        if (msg.message === 'gateway listening') {
          expect(msg.level).toBe('INFO');
          url = msg.url;
          break;
        }
      }
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await (await fetch(`${url}/health`)).json();
      expect(health.products.map((p: { product: string }) => p.product)).toEqual(['BTC-USD']);
      // The dashboard's handler imports its page through the table's text loader (a Node module hook here).
      const page = await fetch(`${url}/`);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(await page.text()).toContain('<title>QuoteWatch</title>');
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('exits 2 naming the variable when the configuration is bad', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
      env: { ...process.env, PORT: 'eighty' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d) => {
      stderr += d;
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect(code).toBe(2);
    expect(stderr).toMatch(/configuration error: PORT: invalid value "eighty"/);
  });
});
