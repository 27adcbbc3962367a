/** Lambda events as AWS builds them, for calling handlers in-process (tests and benchmarks). */
import type { HttpApiEventV2 } from '../../src/api/http.js';

/** An HTTP API v2 event as API Gateway builds it for this request. */
export function v2(
  method: string,
  path: string,
  opts: { query?: Record<string, string>; body?: string } = {},
): HttpApiEventV2 {
  const rawQueryString = new URLSearchParams(opts.query ?? {}).toString();
  const now = Date.now();
  return {
    version: '2.0',
    routeKey: `${method} ${path}`,
    rawPath: path,
    rawQueryString,
    headers: { host: 'test.local', 'content-type': 'application/json' },
    ...(opts.query ? { queryStringParameters: opts.query } : {}),
    requestContext: {
      accountId: 'test',
      apiId: 'test',
      domainName: 'test.local',
      domainPrefix: 'test',
      http: { method, path, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: 'vitest' },
      requestId: `req-${now}`,
      routeKey: `${method} ${path}`,
      stage: '$default',
      time: new Date(now).toUTCString(),
      timeEpoch: now,
    },
    ...(opts.body !== undefined ? { body: opts.body } : {}),
    isBase64Encoded: false,
  };
}
