/**
 * Push: the WebSocket API's messages and its route handlers' domain calls (lambdas/ws/ are thin wrappers; the
 * local gateway, src/gateway/websocket.ts, runs the same handlers with the same events).
 *
 * Client -> API (route selection `$request.body.action`):
 *   {"action":"subscribe","products":["BTC-USD"]}   -> {"type":"subscribed","products":[...],"snapshots":[...]}
 *   {"action":"unsubscribe"[,"products":[...]]}      -> {"type":"unsubscribed","products":[what is left]}
 *   anything else ($default)                          -> {"type":"error","code":...,"message":...}
 * API -> client, from the worker's publisher (src/worker/sinks/push.ts), at most one every PUSH_MIN_MS:
 *   {"type":"snapshot","sentAtMs":...,"snapshots":[PushEntry, ...]} with every subscribed product whose shown
 *   values changed. Each entry carries its product, the tick's exchange time `tsUs` and `n`, the tick number on
 *   the event-time clock (tsUs / TICK_MS): the same number in the table's snapshot and in a push, across worker
 *   restarts, so the page drops an entry whose `n` is not above the one it shows and sees a gap when `n` jumps.
 */
import * as z from 'zod';
import { PRODUCT_ID_PATTERN, type WebSocketApiConfig } from '../config.js';
import type { ConnectionsStore } from '../storage/connections.js';
import type { LatestSnapshot } from '../storage/latest.js';

/** What API Gateway hands a WebSocket route's Lambda (the slice QuoteWatch uses; aws-lambda types are not installed). */
export interface WebSocketEvent {
  requestContext: {
    routeKey: string;
    eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT';
    connectionId: string;
    domainName: string;
    stage: string;
    apiId: string;
    requestId: string;
    extendedRequestId: string;
    messageDirection: 'IN';
    connectedAt: number;
    requestTimeEpoch: number;
    identity: { sourceIp: string; userAgent?: string };
    messageId?: string;
    disconnectStatusCode?: number;
    disconnectReason?: string;
    authorizer?: Record<string, unknown>;
  };
  /** $connect only (the handshake's headers and query). */
  headers?: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  body?: string;
  isBase64Encoded: boolean;
}

/** A route's answer: $connect accepts the handshake with a 2xx; a two-way route's `body` goes to the client. */
export interface WebSocketResult {
  statusCode: number;
  body?: string;
}

/** The REQUEST authorizer's event on $connect (identity source: the `token` query parameter). */
export interface WebSocketAuthorizerEvent {
  type: 'REQUEST';
  methodArn: string;
  headers?: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  requestContext: WebSocketEvent['requestContext'];
}

export interface AuthorizerResult {
  principalId: string;
  policyDocument: {
    Version: '2012-10-17';
    Statement: { Action: 'execute-api:Invoke'; Effect: 'Allow' | 'Deny'; Resource: string }[];
  };
  context?: Record<string, string | number | boolean>;
}

/** One product in a push: the latest snapshot without its features (the page does not show them). */
export interface PushEntry {
  product: string;
  tsUs: number;
  /** The tick number: tsUs / TICK_MS. */
  n: number;
  bestBid: string;
  bestAsk: string;
  mid: number;
  spread: number;
  spreadBps: number;
  bids: [string, string][];
  asks: [string, string][];
  predictions: LatestSnapshot['predictions'];
  quality?: LatestSnapshot['quality'];
  feed?: LatestSnapshot['feed'];
  book?: LatestSnapshot['book'];
  verification?: LatestSnapshot['verification'];
  latencyMs: number;
  updatedAtMs: number;
}

export type ServerMessage =
  | { type: 'snapshot'; sentAtMs: number; snapshots: PushEntry[] }
  | { type: 'subscribed'; sentAtMs: number; products: string[]; snapshots: PushEntry[] }
  | { type: 'unsubscribed'; products: string[] }
  | { type: 'error'; code: string; message: string };

export function pushEntry(
  s: Omit<LatestSnapshot, 'pk' | 'sk' | 'features' | 'seq'> & Partial<Pick<LatestSnapshot, 'features'>>,
  tickMs: number,
): PushEntry {
  const entry: PushEntry = {
    product: s.product,
    tsUs: s.tsUs,
    n: Math.round(s.tsUs / 1000 / tickMs),
    bestBid: s.bestBid,
    bestAsk: s.bestAsk,
    mid: s.mid,
    spread: s.spread,
    spreadBps: s.spreadBps,
    bids: s.bids.slice(0, 3),
    asks: s.asks.slice(0, 3),
    predictions: s.predictions,
    latencyMs: Math.round(s.latencyMs),
    updatedAtMs: s.updatedAtMs,
  };
  if (s.quality) entry.quality = s.quality;
  if (s.feed) entry.feed = s.feed;
  if (s.book) entry.book = s.book;
  if (s.verification) entry.verification = s.verification;
  return entry;
}

/**
 * What the page shows of an entry, as a key: a push goes only when it changed (quotes, levels, probabilities to the
 * page's 0.1 %, model versions, quality, feed counters, the book's state and check), not for a new tick that looks
 * the same.
 */
export function shownKey(e: PushEntry): string {
  const p = Object.entries(e.predictions)
    .map(([t, v]) => `${t}:${v.modelVersion}:${Math.round(v.probability * 1000)}`)
    .join(',');
  const q = e.quality
    ? Object.values(e.quality)
        .map((v) => `${v.modelVersion}:${v.n}`)
        .join(',')
    : '';
  const f = e.feed ? `${e.feed.reconnects}:${e.feed.resyncs}:${Math.round(e.feed.messagesPerS)}` : '';
  const b = `${e.book ?? ''}:${e.verification?.result ?? ''}:${e.verification?.atUs ?? ''}`;
  return `${e.bestBid}|${e.bestAsk}|${JSON.stringify(e.bids)}|${JSON.stringify(e.asks)}|${p}|${q}|${f}|${b}`;
}

const productList = (max: number) =>
  z
    .array(z.string().regex(PRODUCT_ID_PATTERN, 'expected products like BTC-USD'), {
      message: 'products must be a list of product ids',
    })
    .min(1, 'name at least one product')
    .max(max, `at most ${max} products per message`);

export function clientMessageSchema(maxProducts: number) {
  return z.discriminatedUnion('action', [
    z.object({ action: z.literal('subscribe'), products: productList(maxProducts) }),
    z.object({ action: z.literal('unsubscribe'), products: productList(maxProducts).optional() }),
  ]);
}

/** The route a message body selects (`$request.body.action`): a known action, else `$default`. */
export function selectRoute(body: string, actions: ReadonlySet<string>): string {
  let action: unknown;
  try {
    action = (JSON.parse(body) as { action?: unknown } | null)?.action;
  } catch {
    return '$default';
  }
  return typeof action === 'string' && !action.startsWith('$') && actions.has(action) ? action : '$default';
}

export const reply = (statusCode: number, message: ServerMessage): WebSocketResult => ({
  statusCode,
  body: JSON.stringify(message),
});
const error = (statusCode: number, code: string, message: string) =>
  reply(statusCode, { type: 'error', code, message });

function header(event: WebSocketEvent, name: string): string | undefined {
  for (const [k, v] of Object.entries(event.headers ?? {})) if (k.toLowerCase() === name) return v;
  return undefined;
}

export interface ConnectDeps {
  store: ConnectionsStore;
  config: Pick<WebSocketApiConfig, 'maxConnections' | 'maxConnectionsPerIp' | 'origins'>;
}

/**
 * $connect: a browser's Origin must be an allowed one (WS_ORIGINS: the dashboard's; clients that send none,
 * i.e. not browsers, pass), then the connection is counted against MAX_CONNECTIONS and MAX_CONNECTIONS_PER_IP.
 */
export async function onConnect(event: WebSocketEvent, deps: ConnectDeps): Promise<WebSocketResult> {
  const origin = header(event, 'origin');
  const { origins } = deps.config;
  if (origin !== undefined && origins.length > 0 && !origins.includes('*') && !origins.includes(origin)) {
    return error(403, 'forbidden_origin', `origin ${origin} may not connect`);
  }
  const { connectionId, identity } = event.requestContext;
  const opened = await deps.store.open(connectionId, identity.sourceIp, {
    max: deps.config.maxConnections,
    perIp: deps.config.maxConnectionsPerIp,
  });
  if (!opened.ok) {
    return opened.reason === 'full'
      ? error(503, 'full', `the API holds its maximum of ${deps.config.maxConnections} connections`)
      : error(
          429,
          'too_many_connections',
          `at most ${deps.config.maxConnectionsPerIp} connections per address`,
        );
  }
  return { statusCode: 200 };
}

export async function onDisconnect(
  event: WebSocketEvent,
  deps: Pick<ConnectDeps, 'store'>,
): Promise<WebSocketResult> {
  await deps.store.close(event.requestContext.connectionId);
  return { statusCode: 200 };
}

export interface SubscribeDeps {
  store: ConnectionsStore;
  /** The configured products (SYMBOLS): the only ones there is anything to push about. */
  products: readonly string[];
  maxProducts: number;
  tickMs: number;
  /** The current snapshots of these products (the latest table). */
  snapshots(products: readonly string[]): Promise<LatestSnapshot[]>;
  now?: () => number;
}

function parseMessage(event: WebSocketEvent, maxProducts: number) {
  let raw: unknown;
  try {
    raw = JSON.parse(event.body ?? '');
  } catch {
    return { ok: false as const, result: error(400, 'bad_json', 'the message is not JSON') };
  }
  const parsed = clientMessageSchema(maxProducts).safeParse(raw);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ');
    return { ok: false as const, result: error(400, 'bad_request', why) };
  }
  return { ok: true as const, message: parsed.data };
}

/** subscribe: adds the products to the connection and answers at once with their current snapshots. */
export async function onSubscribe(event: WebSocketEvent, deps: SubscribeDeps): Promise<WebSocketResult> {
  const parsed = parseMessage(event, deps.maxProducts);
  if (!parsed.ok) return parsed.result;
  const wanted = [...new Set(parsed.message.products ?? [])];
  const unknown = wanted.filter((p) => !deps.products.includes(p));
  if (unknown.length > 0) {
    return error(
      400,
      'unknown_product',
      `not followed here: ${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''} (products: ${deps.products.join(', ')})`,
    );
  }
  const products = await deps.store.subscribe(event.requestContext.connectionId, wanted);
  if (!products) return error(410, 'gone', 'this connection is closed');
  const snapshots = await deps.snapshots(wanted);
  return reply(200, {
    type: 'subscribed',
    sentAtMs: (deps.now ?? Date.now)(),
    products,
    snapshots: snapshots.map((s) => pushEntry(s, deps.tickMs)),
  });
}

export async function onUnsubscribe(
  event: WebSocketEvent,
  deps: Pick<SubscribeDeps, 'store' | 'maxProducts'>,
): Promise<WebSocketResult> {
  const parsed = parseMessage(event, deps.maxProducts);
  if (!parsed.ok) return parsed.result;
  const left = await deps.store.unsubscribe(event.requestContext.connectionId, parsed.message.products);
  if (!left) return error(410, 'gone', 'this connection is closed');
  return reply(200, { type: 'unsubscribed', products: left });
}

/** $default: a message no route takes (not JSON, no action, an unknown action). */
export function onDefault(event: WebSocketEvent): WebSocketResult {
  let action: unknown;
  try {
    action = (JSON.parse(event.body ?? '') as { action?: unknown } | null)?.action;
  } catch {
    return error(400, 'bad_json', 'the message is not JSON');
  }
  const how = 'send {"action":"subscribe","products":["BTC-USD"]} or {"action":"unsubscribe"}';
  return typeof action === 'string'
    ? error(400, 'unknown_action', `unknown action ${JSON.stringify(action.slice(0, 64))}: ${how}`)
    : error(400, 'no_action', `the message names no action: ${how}`);
}

/** An IAM-style policy answer of the REQUEST authorizer. */
export function policy(principalId: string, allow: boolean, methodArn: string): AuthorizerResult {
  return {
    principalId,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: allow ? 'Allow' : 'Deny', Resource: methodArn }],
    },
  };
}
