/**
 * middy middleware shared by the API handlers: turns thrown errors into `{"error": {code, message}}` JSON
 * responses. Expected errors (ApiError) keep their status; anything else is logged and becomes an opaque 500
 * so internals never leak to callers.
 */
import type { MiddlewareObj } from '@middy/core';
import { ApiError } from './errors.js';
import { errorJson, type HttpApiEventV2, type HttpApiResultV2 } from './http.js';

function describe(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { error: String(err) };
  const out: Record<string, unknown> = { error: err.message, name: err.name };
  // The root cause (e.g. ECONNREFUSED under two layers of wrapping) is what an operator needs.
  const causes: string[] = [];
  for (let c: unknown = err.cause; c !== undefined && causes.length < 5; c = (c as Error).cause)
    causes.push(c instanceof Error ? `${c.name}: ${c.message}` : String(c));
  if (causes.length) out.causes = causes;
  return out;
}

export function httpErrors(): MiddlewareObj<HttpApiEventV2, HttpApiResultV2> {
  return {
    name: 'httpErrors',
    onError: (request) => {
      const err = request.error;
      const route = request.event?.routeKey;
      if (err instanceof ApiError) {
        if (err.status >= 500)
          console.log(
            JSON.stringify({ level: 'warn', msg: 'dependency unavailable', route, ...describe(err) }),
          );
        request.response = errorJson(err.status, err.code, err.message);
        return;
      }
      console.log(JSON.stringify({ level: 'error', msg: 'unhandled error', route, ...describe(err) }));
      request.response = errorJson(500, 'internal', 'internal error');
    },
  };
}
