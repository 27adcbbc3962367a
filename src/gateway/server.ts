/**
 * The local stand-in for API Gateway (HTTP API, payload format 2.0): turns each node:http request into the
 * same v2 event the cloud would send, calls the very handler function Lambda runs, and writes its result.
 * The routes, GET / with the dashboard page among them, come from the route table (see handlers.ts).
 */

import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HttpApiEventV2, HttpApiResultV2 } from '../api/http.js';
import { QuoteWatchError } from '../errors.js';
import { componentLogger, describeError, type Logger } from '../log.js';
import type { Authorizer } from './auth.js';
import { type CorsConfig, isPreflight, preflightHeaders, withCors } from './cors.js';
import { listen } from './listen.js';

/** A Lambda handler as middy exports it: (event, context) => result. */
export type RouteHandler = (event: HttpApiEventV2, context: never) => Promise<HttpApiResultV2>;

/** Route key ("GET /latest") -> handler, as in an HTTP API's route table. */
export type RouteTable = Record<string, RouteHandler>;

export interface GatewayOptions {
  /** Usually loadRoutes() (handlers.ts): every route of src/api/routes.ts with its handler. */
  routes: RouteTable;
  log?: Logger;
  /** The routes' authorizer, as the deployed API has (auth.ts routeAuthorizer); none: every route is open. */
  authorize?: Authorizer;
  /** Origins allowed to call across origins (cors.ts); none: same origin only. */
  cors?: CorsConfig;
}

/** API Gateway's own payload limit is 10 MB; nothing QuoteWatch accepts comes close to 1 MB. */
const MAX_BODY_BYTES = 1024 * 1024;

const TEXT_TYPES = /^(text\/|application\/(json|[a-z.+-]*\+json|x-www-form-urlencoded|xml|javascript))/i;

export class RequestTooLargeError extends QuoteWatchError {
  constructor(limit: number) {
    super(`request body exceeds ${limit} bytes`);
  }
}

/**
 * The request target as a URL. Prefixed, not resolved: `new URL('//x', base)` reads "//x" as a host (and throws on
 * some), while HTTP means the path "//x".
 */
function requestUrl(target: string | undefined): URL {
  const t = target ?? '/';
  return new URL(`http://localhost${t.startsWith('/') ? t : `/${t}`}`);
}

/** Builds the HTTP API v2 event for one request (the body already read). */
export function toEvent(
  req: IncomingMessage,
  body: Buffer,
  routeKey: string,
  nowMs = Date.now(),
): HttpApiEventV2 {
  const url = requestUrl(req.url);
  const rawQueryString = (req.url ?? '').includes('?')
    ? (req.url ?? '').slice((req.url ?? '').indexOf('?') + 1)
    : '';

  // API Gateway lowercases header names, joins repeats with "," and moves cookies to their own array.
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    const value = req.rawHeaders[i + 1]!;
    if (name === 'cookie') cookies.push(...value.split(/;\s*/).filter(Boolean));
    else headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }

  let queryStringParameters: Record<string, string> | undefined;
  for (const [k, v] of url.searchParams) {
    queryStringParameters ??= {};
    queryStringParameters[k] = k in queryStringParameters ? `${queryStringParameters[k]},${v}` : v;
  }

  const host = headers.host ?? 'localhost';
  const domainName = host.replace(/:\d+$/, '');
  const method = (req.method ?? 'GET').toUpperCase();
  const rawPath = url.pathname;
  const isText = TEXT_TYPES.test(headers['content-type'] ?? 'text/plain');

  const event: HttpApiEventV2 = {
    version: '2.0',
    routeKey,
    rawPath,
    rawQueryString,
    headers,
    requestContext: {
      accountId: 'local',
      apiId: 'local',
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method,
        path: rawPath,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: (req.socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: randomUUID(),
      routeKey,
      stage: '$default',
      time: clfTime(new Date(nowMs)),
      timeEpoch: nowMs,
    },
    isBase64Encoded: body.length > 0 && !isText,
  };
  if (cookies.length) event.cookies = cookies;
  if (queryStringParameters) event.queryStringParameters = queryStringParameters;
  if (body.length > 0) event.body = isText ? body.toString('utf8') : body.toString('base64');
  return event;
}

/** "12/Mar/2020:19:03:58 +0000", the format of requestContext.time. */
function clfTime(d: Date): string {
  const mon = d.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' });
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${mon}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new RequestTooLargeError(MAX_BODY_BYTES));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify({ error: { code, message } }));
}

/** Writes a handler result the way API Gateway interprets payload 2.0 responses. */
type Headers = Record<string, string | string[]>;

function writeResult(
  res: ServerResponse,
  result: HttpApiResultV2 | string | object | undefined,
  finish: (headers: Headers) => Headers = (h) => h,
): void {
  // A result without statusCode is taken as a 200 JSON body, as API Gateway does.
  if (typeof result !== 'object' || result === null || !('statusCode' in result)) {
    res.writeHead(200, finish({ 'content-type': 'application/json' }));
    res.end(typeof result === 'string' ? result : JSON.stringify(result ?? null));
    return;
  }
  const r = result as HttpApiResultV2 & { cookies?: string[] };
  const headers: Headers = { ...(r.headers as Headers | undefined) };
  if (r.cookies?.length) headers['set-cookie'] = r.cookies;
  res.writeHead(r.statusCode, finish(headers));
  const body = r.body ?? '';
  res.end(r.isBase64Encoded ? Buffer.from(body, 'base64') : body);
}

export function createGateway(opts: GatewayOptions): Server {
  const log = opts.log ?? componentLogger('gateway');
  const cors: CorsConfig = opts.cors ?? { origins: [] };
  return createServer((req, res) => {
    void handle(req, res).catch((err) => {
      log('error', 'gateway request failed', { error: describeError(err) });
      if (!res.headersSent) sendJson(res, 500, 'internal', 'internal error');
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const path = requestUrl(req.url).pathname;
    const knownPath = Object.keys(opts.routes).some((key) => key.slice(key.indexOf(' ') + 1) === path);
    if (isPreflight(cors, method, req.headers) && knownPath) {
      req.resume();
      res.writeHead(204, preflightHeaders(cors, req.headers));
      res.end();
      return;
    }
    // A method route first, then the path's ANY route, as API Gateway matches.
    const exact = `${method} ${path}`;
    const routeKey = opts.routes[exact] ? exact : `ANY ${path}`;
    const handler = opts.routes[routeKey];
    if (!handler) {
      req.resume();
      sendJson(res, 404, 'not_found', `no route for ${exact}`);
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      if (err instanceof RequestTooLargeError) return sendJson(res, 413, 'too_large', err.message);
      throw err;
    }
    if (opts.authorize) {
      const verdict = await opts.authorize(routeKey, {
        method,
        url: req.url ?? '/',
        headers: req.headers,
        body,
      });
      if (!verdict.ok) {
        return sendJson(
          res,
          verdict.status,
          verdict.status === 401 ? 'unauthorized' : 'forbidden',
          verdict.message,
        );
      }
    }
    let result: HttpApiResultV2;
    try {
      result = await handler(toEvent(req, body, routeKey), {} as never);
    } catch (err) {
      // A handler that throws is a Lambda invocation error; API Gateway answers 500 then.
      log('error', 'handler failed', { routeKey, error: describeError(err) });
      return sendJson(res, 500, 'internal', 'internal error');
    }
    writeResult(res, result, (headers) => withCors(cors, req.headers, headers));
  }
}

export interface RunningGateway {
  url: string;
  server: Server;
  close(): Promise<void>;
}

/** Starts the gateway on host:port (port 0 picks a free one) and resolves once it is listening. */
export async function startGateway(
  opts: GatewayOptions & { port: number; host?: string },
): Promise<RunningGateway> {
  const server = createGateway(opts);
  const host = opts.host ?? '127.0.0.1';
  const port = await listen(server, opts.port, host);
  return {
    url: `http://${host}:${port}`,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        // Browsers keep polling connections open; without this close() would wait for them.
        server.closeAllConnections();
      }),
  };
}
