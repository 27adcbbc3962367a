/**
 * Every route of the table through the local gateway, over real HTTP, real handlers and real emulators: a happy
 * path and bad input each, every answer checked against the served /openapi.json; then a property: no method,
 * path, query, header or body makes the gateway answer 5xx or fall over.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROUTES, type RouteId, routeKey } from '../src/api/routes.js';
import { MAX_BATCH } from '../src/api/schemas.js';
import type { FeatureSpec } from '../src/features/types.js';
import type { RunningGateway } from '../src/gateway/server.js';
import { activeVersion, seedRegistry, writeVersionRecord } from '../src/model/registry.js';
import { putLatest } from '../src/storage/latest.js';
import { type LocalGateway, snapshotAt, startLocalGateway } from './support/gateway.js';
import { seedHistory } from './support/history.js';
import { type Answer, type Check, openApiCheck } from './support/openapi.js';

const BASELINE = path.resolve(import.meta.dirname, '../models/baseline');
const QUOTE = 'quote_change_500ms';
const spec = JSON.parse(readFileSync(path.join(BASELINE, QUOTE, 'feature_spec.json'), 'utf8')) as FeatureSpec;
const HISTORY_S = 90;

/** A feature vector of the shipped quote model: small deterministic values per feature. */
function vector(seed: number): Record<string, number> {
  return Object.fromEntries(spec.features.map((f, i) => [f.name, Math.sin(seed * 31 + i) * 0.5]));
}

const snapshot = (product: string, mid: number) => snapshotAt(product, mid, vector(1));

let local: LocalGateway;
let gateway: RunningGateway;
let check: Check;
let ticks: number[];
const REPORT = '<!doctype html><title>run report</title><p>fold metrics</p>';

/** Every answer the tests get is checked against the document, for the route the path belongs to. */
async function req(
  method: string,
  route: string,
  opts: { query?: Record<string, string>; body?: string; headers?: Record<string, string> } = {},
) {
  const q = opts.query ? `?${new URLSearchParams(opts.query)}` : '';
  const res = await fetch(`${gateway.url}${route}${q}`, {
    method,
    headers: opts.headers ?? (opts.body === undefined ? {} : { 'content-type': 'application/json' }),
    ...(opts.body === undefined ? {} : { body: opts.body }),
  });
  const answer: Answer = {
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
  expect(documented(method, route, answer)).toEqual([]);
  const json = answer.contentType.startsWith('application/json') ? JSON.parse(answer.text) : undefined;
  return { ...answer, headers: res.headers, json };
}

/**
 * A route's own method answers as the document says; another method on its path answers 405 with the error
 * body; an unknown path answers 404 with it.
 */
function documented(method: string, route: string, answer: Answer): string[] {
  if (ROUTES.some((r) => r.path === route && r.method === method)) return check(method, route, answer);
  const known = ROUTES.some((r) => r.path === route);
  // OPTIONS on a known path answers 204 with Allow (a CORS preflight comes that way).
  if (known && method === 'OPTIONS')
    return answer.status === 204 ? [] : [`OPTIONS ${route} answered ${answer.status}, not 204`];
  const expected = known ? 405 : 404;
  if (answer.status !== expected) return [`${method} ${route} answered ${answer.status}, not ${expected}`];
  const code = expected === 405 ? 'method_not_allowed' : 'not_found';
  const body = answer.contentType.startsWith('application/json') ? JSON.parse(answer.text) : undefined;
  return body?.error?.code === code && typeof body.error.message === 'string'
    ? []
    : [`${method} ${route}: expected a ${code} error body, got ${answer.text.slice(0, 120)}`];
}

beforeAll(async () => {
  local = await startLocalGateway({
    tempPrefix: 'qw-routes-',
    // A long staleness limit: /health stays ok however long the suite takes.
    env: { SYMBOLS: 'BTC-USD,ETH-USD', HEALTH_STALE_MS: '3600000' },
    seed: async () => {
      await seedRegistry(BASELINE);
      await putLatest(snapshot('BTC-USD', 65000.5));
      ticks = await seedHistory('BTC-USD', 65_000, HISTORY_S);
      const active = await activeVersion(QUOTE);
      await writeVersionRecord(QUOTE, active!, 'report.html', REPORT);
      await writeVersionRecord(QUOTE, active!, 'run.json', JSON.stringify({ decision: 'promote' }));
    },
  });
  gateway = local.gateway;
  const doc = (await (await fetch(`${gateway.url}/openapi.json`)).json()) as object;
  check = openApiCheck(doc);
}, 120_000);

afterAll(async () => {
  await local?.close();
});

/** Happy path and bad input per route: a Record, so a route added to the table without its case fails to compile. */
const CASES: Record<RouteId, () => Promise<void>> = {
  Latest: async () => {
    const all = await req('GET', '/latest');
    expect(all.status).toBe(200);
    expect(all.json.products.map((p: { product: string }) => p.product)).toEqual(['BTC-USD']);
    const one = await req('GET', '/latest', { query: { product: 'BTC-USD' } });
    expect(one.json).toMatchObject({ product: 'BTC-USD', mid: 65000.5 });
    expect((await req('GET', '/latest', { query: { product: 'ETH-USD' } })).status).toBe(404);
    const bad = await req('GET', '/latest', { query: { product: 'btc' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/product/);
  },
  Predict: async () => {
    const byProduct = await req('POST', '/predict', { body: JSON.stringify({ product: 'BTC-USD' }) });
    expect(byProduct.status).toBe(200);
    expect(byProduct.json.probability).toBeGreaterThan(0);
    expect(byProduct.json.probability).toBeLessThan(1);
    // A batch scores each vector exactly as one-vector requests do.
    const vectors = [2, 3, 4].map(vector);
    const batch = await req('POST', '/predict', { body: JSON.stringify({ vectors }) });
    expect(batch.status).toBe(200);
    const singles = await Promise.all(
      vectors.map(
        async (features) => (await req('POST', '/predict', { body: JSON.stringify({ features }) })).json,
      ),
    );
    expect(batch.json.probabilities).toEqual(singles.map((s) => s.probability));
    expect(batch.json.modelVersion).toBe(singles[0].modelVersion);
    for (const [body, message] of [
      ['{"product":', /JSON/],
      [JSON.stringify({ vectors: Array.from({ length: MAX_BATCH + 1 }, () => vector(5)) }), /at most 100/],
      [JSON.stringify({ product: 'BTC-USD', target: 'moon' }), /quote_change_500ms/],
      [JSON.stringify({ features: { ...vector(6), extra_feature: 1 } }), /extra_feature/],
    ] as const) {
      const bad = await req('POST', '/predict', { body });
      expect(bad.status, body.slice(0, 40)).toBe(400);
      expect(bad.json.error.message).toMatch(message);
    }
  },
  Health: async () => {
    const ok = await req('GET', '/health');
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ status: 'ok', reasons: [] });
    const wrong = await req('POST', '/health', { body: '{}' });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET');
  },
  Version: async () => {
    const v = await req('GET', '/version');
    expect(v.status).toBe(200);
    expect(v.json.version).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
    expect((await req('DELETE', '/version')).status).toBe(405);
  },
  History: async () => {
    const all = await req('GET', '/history', { query: { product: 'BTC-USD', minutes: '30' } });
    expect(all.status).toBe(200);
    expect(all.json.rows.map((r: { tsUs: number }) => r.tsUs)).toEqual(ticks);
    expect(all.json.rows[0].labels).toMatchObject({ quote_change_500ms: expect.any(Number) });
    // Pages of 25 add up to the same rows, none twice.
    const paged: number[] = [];
    let next: string | undefined;
    do {
      const query: Record<string, string> = { product: 'BTC-USD', minutes: '30', limit: '25' };
      if (next) query.next = next;
      const page = await req('GET', '/history', { query });
      expect(page.status).toBe(200);
      expect(page.json.rows.length).toBeLessThanOrEqual(25);
      paged.push(...page.json.rows.map((r: { tsUs: number }) => r.tsUs));
      next = page.json.next;
    } while (next);
    expect(paged).toEqual(ticks);
    for (const [query, message] of [
      [{}, /product/],
      [{ product: 'BTC-USD', minutes: '0' }, /minutes must be >= 1/],
      [{ product: 'BTC-USD', from: '2000', to: '1000' }, /from must not be after to/],
      [{ product: 'BTC-USD', minutes: '5', from: '1' }, /either minutes or from\/to/],
      [{ product: 'BTC-USD', next: 'abc' }, /next must be a token/],
    ] as const) {
      const bad = await req('GET', '/history', { query });
      expect(bad.status, JSON.stringify(query)).toBe(400);
      expect(bad.json.error.message).toMatch(message);
    }
  },
  Models: async () => {
    const m = await req('GET', '/models');
    expect(m.status).toBe(200);
    const quote = m.json.targets.find((t: { target: string }) => t.target === QUOTE);
    const active = quote.versions.find((v: { active: boolean }) => v.active);
    expect(active.version).toBe(quote.active);
    expect(active.run).toEqual({ decision: 'promote' });
    expect(active.metrics).toMatchObject({ auc: expect.any(Number) });
    expect(active.report).toBe(`/models/report?target=${QUOTE}&version=${encodeURIComponent(quote.active)}`);
    expect((await req('POST', '/models', { body: '{}' })).status).toBe(405);
  },
  ModelReport: async () => {
    const version = (await activeVersion(QUOTE))!;
    const ok = await req('GET', '/models/report', { query: { target: QUOTE, version } });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe(REPORT);
    expect((await req('GET', '/models/report', { query: { target: QUOTE, version: 'v-none' } })).status).toBe(
      404,
    );
    const bad = await req('GET', '/models/report', { query: { target: QUOTE, version: '../etc/passwd' } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/version must be a registry version/);
  },
  OpenApi: async () => {
    const doc = await req('GET', '/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.json.openapi).toBe('3.1.0');
    expect(Object.keys(doc.json.paths).sort()).toEqual([...new Set(ROUTES.map((r) => r.path))].sort());
    expect((await req('POST', '/openapi.json', { body: '{}' })).status).toBe(405);
  },
  Metrics: async () => {
    await req('GET', '/latest', { query: { product: 'nope' } });
    const m = await req('GET', '/metrics');
    expect(m.status).toBe(200);
    // The gateway's own API metrics, by route and status, from the same records as the EMF.
    expect(m.text).toMatch(
      /quotewatch_api_requests_total\{[^}]*Route="GET \/latest"[^}]*Status="400"[^}]*\} [1-9]/,
    );
    expect((await req('PUT', '/metrics')).status).toBe(405);
  },
  Dashboard: async () => {
    const page = await req('GET', '/');
    expect(page.status).toBe(200);
    expect(page.text).toContain('<title>QuoteWatch</title>');
    const config = JSON.parse(
      /<script id="qw-config" type="application\/json">(.*?)<\/script>/s.exec(page.text)![1]!,
    );
    expect(config).toMatchObject({ products: ['BTC-USD', 'ETH-USD'], deltaMs: 500, volHorizonS: 60 });
    // Self-contained: no scripts or styles from elsewhere.
    expect(page.text).not.toMatch(/<(script|link)[^>]+(src|href)=["']https?:/);
    expect((await req('POST', '/', { body: '{}' })).status).toBe(405);
  },
};

describe('every route, happy path and bad input, answers as documented', () => {
  it.each(ROUTES.map((r) => [routeKey(r), r.id] as const))('%s', async (_key, id) => {
    await CASES[id]();
  });
});

describe('no request makes the gateway fail', () => {
  const knownPaths = [...new Set(ROUTES.map((r) => r.path))];
  const text = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.constantFrom(
      '',
      '-1',
      '1e309',
      'NaN',
      '0x10',
      '999999999999999999999',
      'BTC-USD',
      QUOTE,
      '%00',
      '../',
    ),
  );
  const request = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
    path: fc.oneof(
      fc.constantFrom(...knownPaths),
      fc.constantFrom(...knownPaths).map((p) => `${p}/x`),
      // An absolute path, as a client sends it (an empty one is "/").
      fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
    ),
    query: fc.dictionary(
      fc.oneof(
        fc.constantFrom('product', 'target', 'version', 'from', 'to', 'minutes', 'limit', 'next'),
        fc.string({ maxLength: 8 }),
      ),
      text,
      { maxKeys: 4 },
    ),
    headers: fc.dictionary(
      fc.constantFrom('content-type', 'accept', 'x-forwarded-for', 'cookie', 'x-anything', 'authorization'),
      fc.string({ unit: fc.constantFrom(...'abcdefghij/;=+ -_.0123456789'.split('')), maxLength: 30 }),
      { maxKeys: 3 },
    ),
    body: fc.option(
      fc.oneof(
        text,
        fc.json({ maxDepth: 3 }),
        fc.record({ product: text, target: text }).map((o) => JSON.stringify(o)),
        fc
          .record({
            features: fc.dictionary(fc.constantFrom(...spec.features.map((f) => f.name)), fc.double()),
          })
          .map((o) => JSON.stringify(o)),
        fc.array(fc.constant(vector(7)), { maxLength: 120 }).map((vectors) => JSON.stringify({ vectors })),
      ),
      { nil: undefined },
    ),
  });

  it('answers every request below 500, as documented for the routes it knows', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const q = new URLSearchParams(r.query).toString();
        const withBody = r.body !== undefined && r.method !== 'GET' && r.method !== 'HEAD';
        const res = await fetch(`${gateway.url}${r.path}${q ? `?${q}` : ''}`, {
          method: r.method,
          headers: r.headers,
          ...(withBody ? { body: r.body } : {}),
        });
        const answer: Answer = {
          status: res.status,
          contentType: res.headers.get('content-type') ?? '',
          text: await res.text(),
        };
        expect(answer.status, `${r.method} ${r.path}?${q}: ${answer.text.slice(0, 200)}`).toBeLessThan(500);
        // Judged at the path the gateway received: fetch resolves dot segments ("/." is "/").
        const sent = new URL(`${gateway.url}${r.path}`).pathname;
        if (r.method !== 'HEAD') expect(documented(r.method, sent, answer)).toEqual([]);
      }),
      { numRuns: 250 },
    );
    // And it is still serving.
    expect((await req('GET', '/health')).status).toBe(200);
  });
});
