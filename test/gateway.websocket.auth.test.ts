/**
 * Who may open a WebSocket when reads are protected (PUBLIC_READS=false), checked on $connect only: with
 * API_AUTH=jwt the REQUEST authorizer function (lambdas/ws/authorize.ts) verifies the `token` query parameter
 * against a real OpenID issuer on loopback; with API_AUTH=iam the URL must be SigV4-presigned for execute-api.
 */
import { createSign, generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOKEN_PARAMETER } from '../src/api/routes.js';
import { executeApiSigner } from '../src/aws/sigv4.js';
import { type GatewayAuthConfig, WEBSOCKET_LIMITS } from '../src/config.js';
import { webSocketAuthorizer } from '../src/gateway/auth.js';
import { loadWebSocketAuthorizer, loadWebSocketRoutes } from '../src/gateway/handlers.js';
import { type RunningWebSocketApi, startWebSocketApi } from '../src/gateway/websocket.js';
import { type LocalGateway, startLocalGateway } from './support/gateway.js';
import { connect } from './support/wsClient.js';

const AUDIENCE = 'quotewatch-dashboard';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
let issuerServer: Server;
let issuer = '';
let local: LocalGateway;
const apis: RunningWebSocketApi[] = [];

function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const body = `${b64({ alg: 'RS256', kid: 'k1', typ: 'JWT' })}.${b64(claims)}`;
  return `${body}.${createSign('RSA-SHA256').update(body).sign(privateKey).toString('base64url')}`;
}

const now = () => Math.floor(Date.now() / 1000);

async function api(config: Partial<GatewayAuthConfig>): Promise<RunningWebSocketApi> {
  const auth: GatewayAuthConfig = {
    mode: 'none',
    publicReads: false,
    region: 'us-east-1',
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    jwtIssuer: issuer,
    jwtAudience: [AUDIENCE],
    ...config,
  };
  const authorize = webSocketAuthorizer(auth, loadWebSocketAuthorizer);
  const started = await startWebSocketApi({
    routes: await loadWebSocketRoutes(),
    port: 0,
    limits: WEBSOCKET_LIMITS,
    ...(authorize ? { authorize } : {}),
  });
  apis.push(started);
  return started;
}

beforeAll(async () => {
  issuerServer = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    if (req.url === '/.well-known/openid-configuration') {
      res.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/jwks` }));
    } else {
      res.end(
        JSON.stringify({ keys: [{ ...publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256' }] }),
      );
    }
  });
  await new Promise<void>((resolve) => issuerServer.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(issuerServer.address() as AddressInfo).port}`;
  // The authorizer function reads its issuer and audience when loaded, as in its Lambda container.
  local = await startLocalGateway({
    tempPrefix: 'qw-wsauth-',
    env: { SYMBOLS: 'BTC-USD', JWT_ISSUER: issuer, JWT_AUDIENCE: AUDIENCE },
  });
});

afterAll(async () => {
  for (const a of apis) await a.close();
  await local?.close();
  issuerServer?.close();
});

describe('$connect with API_AUTH=jwt and protected reads', () => {
  it('accepts a valid token in the query, refuses a missing one (401) and a bad one (403)', async () => {
    const ws = await api({ mode: 'jwt' });
    const good = jwt({ iss: issuer, aud: AUDIENCE, sub: 'viewer', exp: now() + 300 });
    const c = await connect(`${ws.url}/?${TOKEN_PARAMETER}=${good}`);
    c.send({ action: 'subscribe', products: ['BTC-USD'] });
    expect(await c.next()).toMatchObject({ type: 'subscribed', products: ['BTC-USD'] });
    await c.close();

    await expect(connect(ws.url)).rejects.toThrow(/401/);
    const expired = jwt({ iss: issuer, aud: AUDIENCE, sub: 'viewer', exp: now() - 60 });
    await expect(connect(`${ws.url}/?${TOKEN_PARAMETER}=${expired}`)).rejects.toThrow(/403/);
    const otherAudience = jwt({ iss: issuer, aud: 'someone-else', exp: now() + 300 });
    await expect(connect(`${ws.url}/?${TOKEN_PARAMETER}=${otherAudience}`)).rejects.toThrow(/403/);
  });

  it('asks nobody while reads are public', async () => {
    const ws = await api({ mode: 'jwt', publicReads: true });
    await (await connect(ws.url)).close();
  });
});

describe('$connect with API_AUTH=iam and protected reads', () => {
  async function presigned(ws: RunningWebSocketApi, secret = 'S3RVER', expiresIn = 60): Promise<string> {
    const { host, hostname, port } = new URL(ws.url);
    const signed = await executeApiSigner(
      { accessKeyId: 'S3RVER', secretAccessKey: secret },
      'us-east-1',
    ).presign(
      {
        method: 'GET',
        protocol: 'http:',
        hostname,
        port: Number(port),
        path: '/',
        query: {},
        headers: { host },
      },
      { expiresIn },
    );
    return `${ws.url}/?${new URLSearchParams(signed.query as Record<string, string>)}`;
  }

  it('accepts a SigV4-presigned URL, refuses an unsigned or wrongly signed one (403)', async () => {
    const ws = await api({ mode: 'iam' });
    await (await connect(await presigned(ws))).close();
    await expect(connect(ws.url)).rejects.toThrow(/403/);
    await expect(connect(await presigned(ws, 'not-the-secret'))).rejects.toThrow(/403/);
  });
});
