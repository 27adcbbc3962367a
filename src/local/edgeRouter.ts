/**
 * One port in front of the local emulators, routing each request by the AWS service it is signed for, as
 * LocalStack's edge port (4566) does: the service is the fourth part of the SigV4 credential scope
 * (`Credential=<key>/<date>/<region>/<service>/aws4_request`, in the Authorization header or, presigned, the
 * X-Amz-Credential query parameter). Requests go through unchanged, Host header included (SigV4 signs it, and
 * s3rver checks the signature), so a client configured with one AWS_ENDPOINT_URL talks to all three emulators.
 *
 * Used by the LocalStack test (test/local.edgeRouter.test.ts: `quotewatch provision` and an ingest -> worker
 * pass through it with localstack/env.sh's variables) and, with `observe`, by `npm run bench -- --only cost` to
 * count what the system asks of each service.
 */
import { Agent, createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type EdgeService = 'kinesis' | 'dynamodb' | 's3';

/** One request as it went through. */
export interface EdgeExchange {
  service: EdgeService;
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  status: number;
  /** Milliseconds from the request's end to the upstream response's end. */
  ms: number;
}

export interface EdgeRouterOptions {
  /** Base URL of each service's emulator, e.g. http://127.0.0.1:4567. */
  upstreams: Record<EdgeService, string>;
  /** 0 picks a free port. */
  port?: number;
  /** Sees every exchange once its response is complete (counting, taps). */
  observe?: (exchange: EdgeExchange) => void;
}

export interface EdgeRouter {
  url: string;
  port: number;
  /** Requests answered 400 because no service could be told from the signature. */
  readonly unrouted: number;
  close(): Promise<void>;
}

const SERVICES: readonly string[] = ['kinesis', 'dynamodb', 's3'];

/** The service a request is signed for, or undefined. */
export function signedService(headers: IncomingHttpHeaders, url: string): EdgeService | undefined {
  const auth = String(headers.authorization ?? '');
  const fromHeader = /Credential=[^/,\s]+\/\d{8}\/[^/]+\/([a-z0-9-]+)\/aws4_request/.exec(auth)?.[1];
  const query = url.includes('?') ? new URLSearchParams(url.slice(url.indexOf('?') + 1)) : undefined;
  const fromQuery = query?.get('X-Amz-Credential')?.split('/')[3];
  const service = fromHeader ?? fromQuery;
  return service && SERVICES.includes(service) ? (service as EdgeService) : undefined;
}

export async function startEdgeRouter(options: EdgeRouterOptions): Promise<EdgeRouter> {
  const agent = new Agent({ keepAlive: true });
  const upstreams = Object.fromEntries(
    Object.entries(options.upstreams).map(([service, base]) => [service, new URL(base)]),
  ) as Record<EdgeService, URL>;
  let unrouted = 0;

  const server: Server = createServer((req, res) => {
    const service = signedService(req.headers, req.url ?? '/');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (!service) {
        unrouted++;
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            message: 'edge router: no AWS SigV4 credential scope naming kinesis, dynamodb or s3',
          }),
        );
        return;
      }
      const body = Buffer.concat(chunks);
      const target = upstreams[service];
      const started = performance.now();
      const up = request(
        {
          host: target.hostname,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent,
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          upRes.on('end', () =>
            options.observe?.({
              service,
              method: req.method ?? 'GET',
              url: req.url ?? '/',
              headers: req.headers,
              body,
              status: upRes.statusCode ?? 502,
              ms: performance.now() - started,
            }),
          );
        },
      );
      up.on('error', (err) => {
        if (res.headersSent) {
          res.destroy(err);
          return;
        }
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ message: `edge router: ${service} upstream failed: ${err.message}` }));
      });
      up.end(body);
    });
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 0, '127.0.0.1', ok);
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get unrouted() {
      return unrouted;
    },
    async close() {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
      agent.destroy();
    },
  };
}
