/**
 * `quotewatch smoke --api URL`: after a deploy, is the API answering what it should? Against the deployed stack's
 * ApiUrl output or the local gateway:
 *   GET /health  200 and "ok"                      GET /version  200, an active model per target
 *   GET /latest  200, every product with predictions
 *   POST /predict {"product": ...}  200, a probability in [0, 1], signed as the API's authorizer wants it:
 *     --auth iam  SigV4 for execute-api with the default AWS credential chain (region from the URL or AWS_REGION)
 *     --auth jwt  `Authorization: Bearer <--token, or QW_API_TOKEN>`
 *   and with --auth iam|jwt: the same POST unsigned is refused (401/403), so the authorizer is really on;
 *   push, when the dashboard (GET /) names a WebSocket API: a subscribe answered at once, then a pushed snapshot
 *     (the JWT as `?token=`, or the URL SigV4-presigned, as $connect's authorizer wants them).
 * Every request carries the auth (read routes ignore it when public). --wait S retries until all pass or S
 * seconds went by (a fresh stack needs a minute of data). Exit 0 when everything passed, 1 otherwise.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import WebSocket from 'ws';
import { executeApiSigner, signRequest } from '../aws/sigv4.js';
import { sleep } from '../clock.js';
import { TARGETS } from '../model/types.js';

export type SmokeAuth =
  | { mode: 'none' }
  | { mode: 'jwt'; token: string }
  | {
      mode: 'iam';
      region: string;
      credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
    };

export interface SmokeCheck {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

interface Answer {
  status: number;
  body: unknown;
  ms: number;
}

/** The API's region from an execute-api URL (https://<id>.execute-api.<region>.amazonaws.com). */
export function regionOf(api: string): string | undefined {
  return /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com/.exec(new URL(api).hostname)?.[1];
}

async function call(
  api: string,
  method: 'GET' | 'POST',
  path: string,
  auth: SmokeAuth,
  body?: unknown,
): Promise<Answer> {
  const url = new URL(path, api.endsWith('/') ? api : `${api}/`);
  const text = body === undefined ? undefined : JSON.stringify(body);
  let headers: Record<string, string> = text === undefined ? {} : { 'content-type': 'application/json' };
  if (auth.mode === 'jwt') headers.authorization = `Bearer ${auth.token}`;
  if (auth.mode === 'iam') {
    const signer = executeApiSigner(auth.credentials ?? defaultProvider(), auth.region);
    headers = await signRequest(signer, url, method, text);
    delete headers.host; // fetch sets it
  }
  const started = performance.now();
  const res = await fetch(url, { method, headers, ...(text === undefined ? {} : { body: text }) });
  const raw = await res.text();
  let parsed: unknown = raw;
  try {
    parsed = JSON.parse(raw);
  } catch {
    // not JSON (the dashboard page): kept as text
  }
  return { status: res.status, body: parsed, ms: performance.now() - started };
}

/** Runs every check once; an unreachable API is one failed check, not a throw. */
export async function smoke(api: string, auth: SmokeAuth): Promise<SmokeCheck[]> {
  const checks: SmokeCheck[] = [];
  const check = async (name: string, run: () => Promise<[boolean, string, number]>) => {
    try {
      const [ok, detail, ms] = await run();
      checks.push({ name, ok, detail, ms });
    } catch (err) {
      checks.push({
        name,
        ok: false,
        detail: `${(err as Error).message}${(err as Error).cause ? ` (${String((err as Error).cause)})` : ''}`,
        ms: 0,
      });
    }
  };
  const o = (v: unknown) => (v && typeof v === 'object' ? (v as Record<string, unknown>) : {});

  await check('GET /health', async () => {
    const r = await call(api, 'GET', 'health', auth);
    const b = o(r.body);
    return [
      r.status === 200 && b.status === 'ok',
      `${r.status} ${String(b.status)}${Array.isArray(b.reasons) && b.reasons.length ? `: ${b.reasons.join('; ')}` : ''}`,
      r.ms,
    ];
  });
  await check('GET /version', async () => {
    const r = await call(api, 'GET', 'version', auth);
    const models = o(o(r.body).models);
    const missing = TARGETS.filter((t) => typeof models[t] !== 'string');
    return [
      r.status === 200 && missing.length === 0,
      `${r.status} version ${String(o(r.body).version)}${missing.length ? `, no active model for ${missing.join(', ')}` : `, models ${TARGETS.map((t) => models[t]).join(', ')}`}`,
      r.ms,
    ];
  });
  let product: string | undefined;
  await check('GET /latest', async () => {
    const r = await call(api, 'GET', 'latest', auth);
    const products = (o(r.body).products as Record<string, unknown>[] | undefined) ?? [];
    product = products[0]?.product as string | undefined;
    const unscored = products
      .filter((p) => Object.keys(o(p.predictions)).length === 0)
      .map((p) => String(p.product));
    return [
      r.status === 200 && products.length > 0 && unscored.length === 0,
      `${r.status} ${products.length} product(s)${unscored.length ? `, without predictions: ${unscored.join(', ')}` : ''}`,
      r.ms,
    ];
  });
  await check(`POST /predict (auth ${auth.mode})`, async () => {
    if (!product) return [false, 'no product to score (GET /latest gave none)', 0];
    const r = await call(api, 'POST', 'predict', auth, { product });
    const p = o(r.body).probability;
    const ok = r.status === 200 && typeof p === 'number' && p >= 0 && p <= 1;
    return [
      ok,
      `${r.status} ${product}: ${ok ? `p=${(p as number).toFixed(4)} model ${String(o(r.body).modelVersion)}` : JSON.stringify(r.body)}`,
      r.ms,
    ];
  });
  const page = await call(api, 'GET', '', auth).catch(() => undefined);
  const wsUrl = /"wsUrl":"(wss?:\/\/[^"]+)"/.exec(typeof page?.body === 'string' ? page.body : '')?.[1];
  if (wsUrl) await check('WebSocket push', () => pushCheck(wsUrl, auth, product ?? 'BTC-USD'));
  if (auth.mode !== 'none') {
    await check('POST /predict without auth is refused', async () => {
      const r = await call(api, 'POST', 'predict', { mode: 'none' }, { product: product ?? 'BTC-USD' });
      return [r.status === 401 || r.status === 403, `${r.status} (expected 401 or 403)`, r.ms];
    });
  }
  return checks;
}

/** Subscribes to `product` and waits for the answer, then for a pushed snapshot (10 s at most). */
async function pushCheck(
  wsUrl: string,
  auth: SmokeAuth,
  product: string,
): Promise<[boolean, string, number]> {
  let url = new URL(wsUrl);
  if (auth.mode === 'jwt') url.searchParams.set('token', auth.token);
  if (auth.mode === 'iam') {
    const signer = executeApiSigner(auth.credentials ?? defaultProvider(), auth.region);
    const presigned = await signer.presign(
      {
        method: 'GET',
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query: {},
        headers: { host: url.host },
      },
      { expiresIn: 60 },
    );
    url = new URL(
      `${url.origin}${url.pathname}?${new URLSearchParams(presigned.query as Record<string, string>)}`,
    );
  }
  const started = performance.now();
  return new Promise((resolve) => {
    const ws = new WebSocket(url);
    let subscribedMs = 0;
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      ws.terminate();
      resolve([ok, detail, performance.now() - started]);
    };
    const timer = setTimeout(
      () => done(false, subscribedMs ? 'subscribed, but no push within 10 s' : 'no answer within 10 s'),
      10_000,
    );
    ws.on('unexpected-response', (_req, res) => done(false, `${res.statusCode} refused the connection`));
    ws.on('error', (err) => done(false, err.message));
    ws.on('open', () => ws.send(JSON.stringify({ action: 'subscribe', products: [product] })));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { type?: string; message?: string };
      if (m.type === 'subscribed') subscribedMs = performance.now() - started;
      else if (m.type === 'snapshot')
        done(true, `subscribed to ${product} in ${Math.round(subscribedMs)} ms, then a push`);
      else if (m.type === 'error') done(false, `error: ${m.message}`);
    });
  });
}

export function formatChecks(checks: readonly SmokeCheck[]): string {
  return checks
    .map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.name.padEnd(40)} ${c.detail} (${Math.round(c.ms)} ms)`)
    .join('\n');
}

/** `quotewatch smoke` (arguments checked by the CLI): the checks, again every 5 s for `waitS`; the exit code. */
export async function smokeCommand(options: {
  api: string;
  auth: SmokeAuth;
  waitS: number;
}): Promise<number> {
  const deadline = Date.now() + options.waitS * 1000;
  for (;;) {
    const checks = await smoke(options.api, options.auth);
    const passed = checks.every((c) => c.ok);
    if (passed || Date.now() >= deadline) {
      console.log(formatChecks(checks));
      console.log(passed ? `smoke: all ${checks.length} checks passed` : 'smoke: FAILED');
      return passed ? 0 : 1;
    }
    await sleep(5000);
  }
}
