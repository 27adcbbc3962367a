/**
 * The local gateway's authorizers, checking what the deployed API's do (lib/prediction-api.ts), for the routes
 * the route table protects (`access: 'protected'`, and `read` ones when reads are not public):
 * - IAM: the request is SigV4-signed for execute-api in the configured region with the configured credentials;
 *   checked by signing it again and comparing signatures (and the clock within 5 minutes, as AWS does);
 * - JWT: `Authorization: Bearer <jwt>` signed (RS256 / ES256) by a key of the issuer's JWKS (OpenID discovery),
 *   `iss` equal to the issuer, `aud` (or `client_id`) one of the audiences, not expired, not before `nbf`.
 * Failures answer as API Gateway does: 401 for a missing or bad JWT, 403 for a missing or bad signature.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { jwtVerifier } from '../api/jwt.js';
import type { AuthorizerResult, WebSocketAuthorizerEvent } from '../api/push.js';
import type { RouteDef } from '../api/routes.js';
import { routeKey } from '../api/routes.js';
import { executeApiSigner, signRequest } from '../aws/sigv4.js';
import type { GatewayAuthConfig } from '../config.js';
import type { WebSocketAuthorizer } from './websocket.js';

export interface AuthRequest {
  method: string;
  /** Path and query as sent. */
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type AuthVerdict = { ok: true } | { ok: false; status: 401 | 403; message: string };

export type Authorizer = (routeKey: string, request: AuthRequest) => Promise<AuthVerdict>;

const MAX_CLOCK_SKEW_MS = 5 * 60_000;

/** The authorizer for these routes under `config`; routes it does not protect pass. */
export function routeAuthorizer(
  routes: readonly Pick<RouteDef, 'method' | 'path' | 'access'>[],
  config: GatewayAuthConfig,
  now: () => number = Date.now,
): Authorizer {
  const guarded = new Set(
    routes.filter((r) => r.access === 'protected' || !config.publicReads).map((r) => routeKey(r)),
  );
  const check =
    config.mode === 'iam' ? iamCheck(config, now) : config.mode === 'jwt' ? jwtCheck(config, now) : undefined;
  return async (key, request) => (check && guarded.has(key) ? check(request) : { ok: true });
}

function iamCheck(config: GatewayAuthConfig, now: () => number) {
  const credentials = config.credentials!;
  const signer = executeApiSigner(credentials, config.region);
  const forbidden = (message: string): AuthVerdict => ({ ok: false, status: 403, message });
  return async (request: AuthRequest): Promise<AuthVerdict> => {
    const auth = String(request.headers.authorization ?? '');
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(
        auth,
      );
    if (!m) return forbidden('missing or malformed SigV4 Authorization header');
    const [, keyId, , region, service] = m;
    if (keyId !== credentials.accessKeyId) return forbidden(`unknown access key ${keyId}`);
    if (region !== config.region || service !== 'execute-api')
      return forbidden(`signed for ${service} in ${region}, expected execute-api in ${config.region}`);
    const amzDate = String(request.headers['x-amz-date'] ?? '');
    const signedAt = Date.parse(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    if (!Number.isFinite(signedAt)) return forbidden('missing or malformed X-Amz-Date');
    if (Math.abs(now() - signedAt) > MAX_CLOCK_SKEW_MS)
      return forbidden('signature expired or from the future');
    const url = new URL(request.url, `http://${request.headers.host ?? 'localhost'}`);
    const body = request.body.length ? request.body.toString('utf8') : undefined;
    const expected = await signRequest(signer, url, request.method, body, new Date(signedAt));
    return expected.authorization === auth ? { ok: true } : forbidden('signature does not match');
  };
}

function jwtCheck(config: GatewayAuthConfig, now: () => number) {
  const check = jwtVerifier({ issuer: config.jwtIssuer!, audience: config.jwtAudience }, now);
  return async (request: AuthRequest): Promise<AuthVerdict> => {
    const token = /^Bearer (.+)$/i.exec(String(request.headers.authorization ?? ''))?.[1];
    if (!token) return { ok: false, status: 401, message: 'missing Bearer token' };
    const verdict = await check(token);
    return verdict.ok ? { ok: true } : { ok: false, status: 401, message: verdict.message };
  };
}

/**
 * Who may open a WebSocket (checked on $connect only, as API Gateway does), following the read routes: nobody is
 * asked while reads are public; otherwise with API_AUTH=jwt the REQUEST authorizer function itself runs (its
 * "Unauthorized" error is a 401, a Deny policy a 403), with API_AUTH=iam the URL must be SigV4-presigned for
 * execute-api with the gateway's credentials (a 403 otherwise).
 */
export function webSocketAuthorizer(
  config: GatewayAuthConfig,
  requestAuthorizer:
    | (() => Promise<(event: WebSocketAuthorizerEvent) => Promise<AuthorizerResult>>)
    | undefined,
  now: () => number = Date.now,
): WebSocketAuthorizer | undefined {
  if (config.mode === 'none' || config.publicReads) return undefined;
  if (config.mode === 'iam') {
    const check = presignedCheck(config, now);
    return async ({ url, headers }) => check(url, String(headers.host ?? 'localhost'));
  }
  if (!requestAuthorizer) throw new Error('a JWT WebSocket authorizer needs the REQUEST authorizer function');
  let fn: Promise<(event: WebSocketAuthorizerEvent) => Promise<AuthorizerResult>> | undefined;
  return async ({ event }) => {
    fn ??= requestAuthorizer();
    const methodArn = `arn:aws:execute-api:${config.region}:000000000000:local/${event.requestContext.stage}/$connect`;
    try {
      const result = await (await fn)({
        type: 'REQUEST',
        methodArn,
        ...(event.headers ? { headers: event.headers } : {}),
        ...(event.queryStringParameters ? { queryStringParameters: event.queryStringParameters } : {}),
        requestContext: event.requestContext,
      });
      const allowed = result.policyDocument.Statement.some((s) => s.Effect === 'Allow');
      return allowed
        ? { ok: true, context: { principalId: result.principalId, ...result.context } }
        : { ok: false, status: 403, message: 'Forbidden' };
    } catch (err) {
      if ((err as Error).message === 'Unauthorized')
        return { ok: false, status: 401, message: 'Unauthorized' };
      return { ok: false, status: 500, message: 'authorizer error' };
    }
  };
}

/** A SigV4 presigned URL (X-Amz-* query parameters) for execute-api, checked by presigning it again. */
function presignedCheck(config: GatewayAuthConfig, now: () => number) {
  const credentials = config.credentials!;
  const signer = executeApiSigner(credentials, config.region);
  const forbidden = (message: string) => ({ ok: false as const, status: 403 as const, message });
  return async (target: string, host: string) => {
    const url = new URL(target, `http://${host}`);
    const q = url.searchParams;
    const credential = q.get('X-Amz-Credential') ?? '';
    const [keyId, , region, service] = credential.split('/');
    if (!q.get('X-Amz-Signature')) return forbidden('missing SigV4 presigned query parameters');
    if (keyId !== credentials.accessKeyId) return forbidden(`unknown access key ${keyId}`);
    if (region !== config.region || service !== 'execute-api')
      return forbidden(`signed for ${service} in ${region}, expected execute-api in ${config.region}`);
    const amzDate = q.get('X-Amz-Date') ?? '';
    const signedAt = Date.parse(
      amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z'),
    );
    const expiresS = Number(q.get('X-Amz-Expires') ?? '0');
    if (!Number.isFinite(signedAt)) return forbidden('missing or malformed X-Amz-Date');
    if (now() < signedAt - MAX_CLOCK_SKEW_MS || now() > signedAt + expiresS * 1000)
      return forbidden('presigned URL expired or from the future');
    const query = Object.fromEntries([...q].filter(([k]) => !k.startsWith('X-Amz-')));
    const presigned = (await signer.presign(
      {
        method: 'GET',
        protocol: url.protocol,
        hostname: url.hostname,
        ...(url.port ? { port: Number(url.port) } : {}),
        path: url.pathname,
        query,
        headers: { host: url.host },
      } as never,
      { signingDate: new Date(signedAt), expiresIn: expiresS },
    )) as unknown as { query: Record<string, string> };
    return presigned.query['X-Amz-Signature'] === q.get('X-Amz-Signature')
      ? { ok: true as const }
      : forbidden('signature does not match');
  };
}
