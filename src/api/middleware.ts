/**
 * The middy middleware every API handler runs (apiHandler):
 * - httpMetrics: ApiRequests by route and status and ApiLatencyMs by route (src/telemetry/catalog.ts API), then a
 *   flush, so each invocation's EMF reaches CloudWatch through Lambda's logs;
 * - httpErrors: thrown errors become `{"error": {code, message}}` JSON responses. Expected errors (ApiError)
 *   keep their status; anything else is logged and becomes an opaque 500, so internals never leak to callers.
 * The handlers of one process share one logger and one Telemetry (apiLog, apiTelemetry): the local gateway runs
 * them all in one process, whose /metrics shows their requests together.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import { componentLogger, describeError, type Logger } from '../log.js';
import { API } from '../telemetry/catalog.js';
import { lambdaTelemetry } from '../telemetry/setup.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { ApiError } from './errors.js';
import { errorJson, type HttpApiEventV2, type HttpApiResultV2 } from './http.js';

let telemetry: Telemetry | undefined;
let log: Logger | undefined;

/** This process's API telemetry (created on first use, from METRICS_SINK). */
export function apiTelemetry(): Telemetry {
  telemetry ??= lambdaTelemetry('api');
  return telemetry;
}

export function apiLog(): Logger {
  log ??= componentLogger('api');
  return log;
}

type Middleware = MiddlewareObj<HttpApiEventV2, HttpApiResultV2>;

export function httpMetrics(): Middleware {
  const started = new WeakMap<object, number>();
  const record = (request: { event: HttpApiEventV2; response?: HttpApiResultV2 | null }) => {
    const t = apiTelemetry();
    const route = request.event?.routeKey ?? 'unknown';
    const status = String(request.response?.statusCode ?? 500);
    t.count(API.requests, 1, { Route: route, Status: status });
    const at = started.get(request.event);
    if (at !== undefined) t.timing(API.latencyMs, performance.now() - at, { Route: route });
    t.flush();
  };
  return {
    before: (request) => {
      if (request.event) started.set(request.event, performance.now());
    },
    after: record,
    onError: record,
  };
}

export function httpErrors(): Middleware {
  return {
    onError: (request) => {
      const err = request.error;
      const route = request.event?.routeKey;
      if (err instanceof ApiError) {
        if (err.status >= 500)
          apiLog()('warn', 'dependency unavailable', { route, error: describeError(err) });
        request.response = errorJson(err.status, err.code, err.message);
        return;
      }
      apiLog()('error', 'unhandled error', { route, error: describeError(err) });
      request.response = errorJson(500, 'internal', 'internal error');
    },
  };
}

/** A handler with the house middleware: metrics outermost (it sees the final status), then error mapping. */
export function apiHandler(
  fn: (event: HttpApiEventV2) => Promise<HttpApiResultV2>,
): middy.MiddyfiedHandler<HttpApiEventV2, HttpApiResultV2> {
  return middy<HttpApiEventV2, HttpApiResultV2>().use(httpMetrics()).use(httpErrors()).handler(fn);
}

/**
 * A WebSocket route's handler with the same house rules: ApiRequests / ApiLatencyMs under the route key
 * ("WS subscribe"), flushed per invocation; a thrown error is logged and answered as an opaque error message
 * (a 500 on $connect refuses the handshake).
 */
export function webSocketHandler<E extends { requestContext: { routeKey: string } }>(
  fn: (event: E) => Promise<{ statusCode: number; body?: string }>,
): (event: E) => Promise<{ statusCode: number; body?: string }> {
  return async (event) => {
    const started = performance.now();
    const route = `WS ${event.requestContext?.routeKey ?? 'unknown'}`;
    let result: { statusCode: number; body?: string };
    try {
      result = await fn(event);
    } catch (err) {
      apiLog()('error', 'unhandled error', { route, error: describeError(err) });
      result = {
        statusCode: 500,
        body: JSON.stringify({ type: 'error', code: 'internal', message: 'internal error' }),
      };
    }
    const t = apiTelemetry();
    t.count(API.requests, 1, { Route: route, Status: String(result.statusCode) });
    t.timing(API.latencyMs, performance.now() - started, { Route: route });
    t.flush();
    return result;
  };
}
