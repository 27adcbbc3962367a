/**
 * The local stand-in for API Gateway's WebSocket API, on its own loopback port (WS_PORT), as the deployed API has
 * its own endpoint:
 * - the handshake runs the authorizer (when reads are protected) and the `$connect` handler; a non-2xx answer
 *   refuses it with that status;
 * - each message is routed by `$request.body.action` (a known action, else `$default`) to the very handler Lambda
 *   runs, with the same event (`requestContext.connectionId`, `routeKey`, `eventType`); a two-way route's body goes
 *   back to the client; the close runs `$disconnect`;
 * - the management API on the same port: `POST /@connections/{id}` (the message; 410 GoneException for an unknown
 *   connection, 413 over the message limit), `GET` (its details), `DELETE` (closes it), so the publisher's SDK
 *   client (@aws-sdk/client-apigatewaymanagementapi) runs unchanged against it;
 * - API Gateway's limits (src/config.ts WEBSOCKET_LIMITS, each configurable): idle timeout and maximum duration
 *   (close 1001), frame and message size (close 1009), new connections per second (429). A client that does not
 *   read is cut once its unsent data passes a bound (its posts then answer 410), so memory stays bounded.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type RawData, WebSocket, WebSocketServer } from 'ws';
import { selectRoute, type WebSocketEvent, type WebSocketResult } from '../api/push.js';
import type { WebSocketGatewayConfig } from '../config.js';
import { componentLogger, describeError, type Logger } from '../log.js';
import { FrameMeter } from './frameMeter.js';
import { listen } from './listen.js';

export type WebSocketHandler = (
  event: WebSocketEvent,
  context: never,
) => Promise<WebSocketResult | undefined>;

/** Route key -> handler, and the two-way routes (whose answer goes back to the client). */
export interface WebSocketRoutes {
  handlers: Record<string, WebSocketHandler>;
  twoWay: ReadonlySet<string>;
}

export type WebSocketAuthVerdict =
  | { ok: true; context?: Record<string, unknown> }
  | { ok: false; status: 401 | 403 | 500; message: string };

/** The $connect authorizer (src/gateway/auth.ts webSocketAuthorizer); none: every handshake passes. */
export type WebSocketAuthorizer = (request: {
  url: string;
  headers: IncomingMessage['headers'];
  event: WebSocketEvent;
}) => Promise<WebSocketAuthVerdict>;

export interface WebSocketApiOptions {
  routes: WebSocketRoutes;
  limits: Omit<WebSocketGatewayConfig, 'port'>;
  authorize?: WebSocketAuthorizer;
  log?: Logger;
  /** Unsent bytes a connection may hold before it is cut as a client that does not read. @default 4 messages */
  maxBufferedBytes?: number;
  /** The stage in the events' requestContext. @default 'local' */
  stage?: string;
}

export interface RunningWebSocketApi {
  /** What a client connects to: ws://host:port */
  url: string;
  /** The management API's endpoint (the publisher's PUSH_ENDPOINT): http://host:port */
  managementUrl: string;
  server: Server;
  /** Open connections now. */
  connections(): number;
  /** Closes every connection (1001, running $disconnect) and stops listening. */
  close(): Promise<void>;
}

interface Conn {
  id: string;
  ws: WebSocket;
  ip: string;
  userAgent: string;
  connectedAt: number;
  lastActiveAt: number;
  authorizer: Record<string, unknown> | undefined;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** API Gateway's connection ids look like "L0SM9cOFvHcCIhw=": 10 random bytes, base64. */
function connectionId(): string {
  return randomBytes(10).toString('base64');
}

const MANAGEMENT_PATH = /^(?:\/[^/@]+)?\/@connections\/([^/?]+)$/;

export async function startWebSocketApi(
  opts: WebSocketApiOptions & { port: number; host?: string },
): Promise<RunningWebSocketApi> {
  const log = opts.log ?? componentLogger('gateway');
  const { limits } = opts;
  const stage = opts.stage ?? 'local';
  const maxBuffered = opts.maxBufferedBytes ?? 4 * limits.messageBytes;
  const conns = new Map<string, Conn>();
  const actions = new Set(Object.keys(opts.routes.handlers).filter((k) => !k.startsWith('$')));
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.messageBytes,
    perMessageDeflate: false,
  });
  const pendingDisconnects = new Set<Promise<unknown>>();
  let window = { startedAt: 0, count: 0 };
  let domainName = 'localhost';

  const baseContext = (conn: Pick<Conn, 'id' | 'ip' | 'userAgent' | 'connectedAt' | 'authorizer'>) => ({
    connectionId: conn.id,
    domainName,
    stage,
    apiId: 'local',
    requestId: randomUUID(),
    extendedRequestId: randomUUID(),
    messageDirection: 'IN' as const,
    connectedAt: conn.connectedAt,
    requestTimeEpoch: Date.now(),
    identity: { sourceIp: conn.ip, userAgent: conn.userAgent },
    ...(conn.authorizer ? { authorizer: conn.authorizer } : {}),
  });

  async function invoke(routeKey: string, event: WebSocketEvent): Promise<WebSocketResult | undefined> {
    const handler = opts.routes.handlers[routeKey];
    if (!handler) return { statusCode: 200 };
    return handler(event, {} as never);
  }

  const server = createServer((req, res) => {
    void management(req, res).catch((err) => {
      log('error', 'management request failed', { error: describeError(err) });
      if (!res.headersSent) awsError(res, 500, 'InternalServerErrorException', 'internal error');
    });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    void handshake(req, socket, head).catch((err) => {
      log('error', 'websocket handshake failed', { error: describeError(err) });
      refuse(socket, 500, 'internal error');
    });
  });

  async function handshake(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    const now = Date.now();
    if (now - window.startedAt >= 1000) window = { startedAt: now, count: 0 };
    if (++window.count > limits.newConnectionsPerS) {
      return refuse(socket, 429, `more than ${limits.newConnectionsPerS} new connections in a second`);
    }
    const headers: Record<string, string> = {};
    for (let i = 0; i + 1 < req.rawHeaders.length; i += 2)
      headers[req.rawHeaders[i]!] = req.rawHeaders[i + 1]!;
    const url = new URL(req.url ?? '/', 'http://localhost');
    const query = url.searchParams.size ? Object.fromEntries(url.searchParams) : undefined;
    domainName = (req.headers.host ?? 'localhost').replace(/:\d+$/, '');
    const draft: Omit<Conn, 'ws'> = {
      id: connectionId(),
      ip: (socket.remoteAddress ?? '127.0.0.1').replace(/^::ffff:/, ''),
      userAgent: req.headers['user-agent'] ?? '',
      connectedAt: now,
      lastActiveAt: now,
      authorizer: undefined,
    };
    const connectEvent = (): WebSocketEvent => ({
      requestContext: { ...baseContext(draft), routeKey: '$connect', eventType: 'CONNECT' },
      headers,
      ...(query ? { queryStringParameters: query } : {}),
      isBase64Encoded: false,
    });
    if (opts.authorize) {
      const verdict = await opts.authorize({
        url: req.url ?? '/',
        headers: req.headers,
        event: connectEvent(),
      });
      if (!verdict.ok) return refuse(socket, verdict.status, verdict.message);
      draft.authorizer = verdict.context;
    }
    let result: WebSocketResult | undefined;
    try {
      result = await invoke('$connect', connectEvent());
    } catch (err) {
      log('error', '$connect handler failed', { error: describeError(err) });
      return refuse(socket, 500, 'internal error');
    }
    const status = result?.statusCode ?? 200;
    if (status < 200 || status > 299) return refuse(socket, status, result?.body ?? '');
    if (socket.destroyed) {
      // The client left during $connect: API Gateway still sends the $disconnect.
      void disconnect({ ...draft }, 1006, 'client left during $connect');
      return;
    }
    const meter = new FrameMeter(limits.frameBytes, (announced) => {
      const conn = conns.get(draft.id);
      log('info', 'websocket frame over the limit', { connectionId: draft.id, announced });
      conn?.ws.close(1009, `frame of ${announced} bytes is over ${limits.frameBytes}`);
    });
    socket.on('data', (chunk: Buffer) => meter.push(chunk));
    if (head.length) meter.push(head);
    wss.handleUpgrade(req, socket, head, (ws) => accept(ws, draft));
  }

  function accept(ws: WebSocket, draft: Omit<Conn, 'ws'>): void {
    const conn: Conn = { ...draft, ws };
    conns.set(conn.id, conn);
    ws.on('error', (err) => log('info', 'websocket error', { connectionId: conn.id, error: err.message }));
    ws.on('message', (data: RawData, isBinary: boolean) => void message(conn, data, isBinary));
    ws.on('close', (code: number, reason: Buffer) => {
      conns.delete(conn.id);
      void disconnect(conn, code, reason.toString('utf8'));
    });
  }

  function disconnect(conn: Omit<Conn, 'ws'>, code: number, reason: string): Promise<unknown> {
    const done = invoke('$disconnect', {
      requestContext: {
        ...baseContext(conn),
        routeKey: '$disconnect',
        eventType: 'DISCONNECT',
        disconnectStatusCode: code,
        disconnectReason: reason,
      },
      isBase64Encoded: false,
    }).catch((err) => log('error', '$disconnect handler failed', { error: describeError(err) }));
    pendingDisconnects.add(done);
    void done.finally(() => pendingDisconnects.delete(done));
    return done;
  }

  async function message(conn: Conn, data: RawData, isBinary: boolean): Promise<void> {
    conn.lastActiveAt = Date.now();
    const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    const body = isBinary ? bytes.toString('base64') : bytes.toString('utf8');
    const routeKey = isBinary ? '$default' : selectRoute(body, actions);
    const messageId = randomBytes(8).toString('base64');
    let result: WebSocketResult | undefined;
    try {
      result = await invoke(routeKey, {
        requestContext: { ...baseContext(conn), routeKey, eventType: 'MESSAGE', messageId },
        body,
        isBase64Encoded: isBinary,
      });
    } catch (err) {
      log('error', 'websocket route handler failed', { routeKey, error: describeError(err) });
      // What API Gateway sends a client whose integration failed.
      result = {
        statusCode: 500,
        body: JSON.stringify({
          message: 'Internal server error',
          connectionId: conn.id,
          requestId: messageId,
        }),
      };
    }
    if (opts.routes.twoWay.has(routeKey) && result?.body !== undefined) deliver(conn, result.body);
  }

  /** Sends to a connection; false when it is gone or was cut for not reading. */
  function deliver(conn: Conn, data: string | Buffer): boolean {
    if (conn.ws.readyState !== WebSocket.OPEN) return false;
    conn.ws.send(data);
    conn.lastActiveAt = Date.now();
    if (conn.ws.bufferedAmount > maxBuffered) {
      log('info', 'websocket client does not read: cut', {
        connectionId: conn.id,
        buffered: conn.ws.bufferedAmount,
      });
      conns.delete(conn.id);
      conn.ws.terminate();
      return false;
    }
    return true;
  }

  async function management(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const m = MANAGEMENT_PATH.exec(path);
    if (!m) {
      req.resume();
      res.writeHead(426, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ message: 'this is a WebSocket endpoint: connect with a WebSocket client' }));
      return;
    }
    const id = decodeURIComponent(m[1]!);
    const conn = conns.get(id);
    const method = (req.method ?? 'GET').toUpperCase();
    if (method === 'POST') {
      const body = await readLimited(req, limits.messageBytes);
      if (body === undefined) {
        return awsError(res, 413, 'PayloadTooLargeException', `message over ${limits.messageBytes} bytes`);
      }
      if (!conn || !deliver(conn, body.toString('utf8'))) {
        return awsError(res, 410, 'GoneException', `connection ${id} is gone`);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end();
      return;
    }
    req.resume();
    if (!conn) return awsError(res, 410, 'GoneException', `connection ${id} is gone`);
    if (method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          // The wire names are camelCase (the SDK maps them to ConnectedAt, Identity.SourceIp...).
          connectedAt: new Date(conn.connectedAt).toISOString(),
          identity: { sourceIp: conn.ip, userAgent: conn.userAgent },
          lastActiveAt: new Date(conn.lastActiveAt).toISOString(),
        }),
      );
      return;
    }
    if (method === 'DELETE') {
      conn.ws.close(1000, 'closed by the server');
      res.writeHead(204);
      res.end();
      return;
    }
    awsError(res, 405, 'MethodNotAllowedException', `${method} is not a management method`);
  }

  // Idle and maximum-duration cuts: one sweep for every connection (a timer per connection per message would cost
  // more), often enough that a cut comes within a tenth of the shorter limit.
  const sweepMs = Math.max(
    10,
    Math.min(1000, Math.floor(Math.min(limits.idleMs, limits.maxConnectionMs) / 10)),
  );
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const conn of conns.values()) {
      if (now - conn.connectedAt >= limits.maxConnectionMs) {
        conns.delete(conn.id);
        conn.ws.close(1001, 'Going away: maximum connection duration');
      } else if (now - conn.lastActiveAt >= limits.idleMs) {
        conns.delete(conn.id);
        conn.ws.close(1001, 'Going away: idle timeout');
      }
    }
  }, sweepMs);
  sweep.unref();

  const host = opts.host ?? '127.0.0.1';
  const port = await listen(server, opts.port, host);
  return {
    url: `ws://${host}:${port}`,
    managementUrl: `http://${host}:${port}`,
    server,
    connections: () => conns.size,
    async close() {
      clearInterval(sweep);
      for (const conn of conns.values()) conn.ws.close(1001, 'Going away');
      conns.clear();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const client of wss.clients) client.terminate();
      await Promise.all([...pendingDisconnects]);
    },
  };
}

function refuse(socket: Socket, status: number, body: string): void {
  if (socket.destroyed) return;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** An error as API Gateway's management API answers it: the SDK maps x-amzn-ErrorType to its exception class. */
function awsError(res: ServerResponse, status: number, type: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json', 'x-amzn-errortype': type });
  res.end(JSON.stringify({ message }));
}

/** The body, or undefined once it passes `limit` bytes (the rest is drained, not kept). */
function readLimited(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) over = true;
      if (!over) chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
