/**
 * CORS on the local gateway, as API Gateway's HTTP API does it when origins are configured (CORS_ORIGINS here,
 * `-c corsOrigins` deployed, the one policy in src/api/routes.ts): a preflight is answered by the gateway itself,
 * an allowed origin's requests get the Access-Control-Allow-Origin header, and CORS headers a handler returns are
 * ignored. No origins configured: nothing is added (same origin only).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { CORS_POLICY } from '../api/routes.js';

export interface CorsConfig {
  origins: readonly string[];
}

function allowedOrigin(config: CorsConfig, headers: IncomingHttpHeaders): string | undefined {
  const origin = headers.origin;
  if (!origin || config.origins.length === 0) return undefined;
  if (config.origins.includes('*')) return '*';
  return config.origins.includes(origin) ? origin : undefined;
}

/** A preflight the gateway answers itself: OPTIONS with Origin and Access-Control-Request-Method. */
export function isPreflight(config: CorsConfig, method: string, headers: IncomingHttpHeaders): boolean {
  return (
    config.origins.length > 0 &&
    method === 'OPTIONS' &&
    headers.origin !== undefined &&
    headers['access-control-request-method'] !== undefined
  );
}

/** The preflight answer's headers: the policy for an allowed origin, none for another (the browser refuses). */
export function preflightHeaders(config: CorsConfig, headers: IncomingHttpHeaders): Record<string, string> {
  const origin = allowedOrigin(config, headers);
  if (!origin) return {};
  return {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': CORS_POLICY.allowMethods.join(','),
    'access-control-allow-headers': CORS_POLICY.allowHeaders.join(','),
    'access-control-max-age': String(CORS_POLICY.maxAgeS),
    ...(origin === '*' ? {} : { vary: 'origin' }),
  };
}

/** A response's headers with the handler's own CORS headers replaced by the configured ones. */
export function withCors(
  config: CorsConfig,
  request: IncomingHttpHeaders,
  response: Record<string, string | string[]>,
): Record<string, string | string[]> {
  if (config.origins.length === 0) return response;
  const out = Object.fromEntries(
    Object.entries(response).filter(([k]) => !k.toLowerCase().startsWith('access-control-')),
  );
  const origin = allowedOrigin(config, request);
  if (origin) {
    out['access-control-allow-origin'] = origin;
    if (origin !== '*') out.vary = 'origin';
  }
  return out;
}
