/**
 * JWT verification as API Gateway's JWT authorizer does it: RS256 / ES256 signed by a key of the issuer's JWKS
 * (OpenID discovery), `iss` equal to the issuer, `aud` (or `client_id`) one of the audiences, not expired, not
 * before `nbf`. The one implementation: the local gateway's JWT check (src/gateway/auth.ts) and the WebSocket
 * API's REQUEST authorizer (lambdas/ws/authorize.ts), which reads the token from a query parameter.
 */
import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';

export type JwtVerdict = { ok: true; claims: Record<string, unknown> } | { ok: false; message: string };

interface Jwks {
  keys: (JsonWebKey & { kid?: string; alg?: string })[];
}

export function jwtVerifier(
  config: { issuer: string; audience: readonly string[] },
  now: () => number = Date.now,
): (token: string) => Promise<JwtVerdict> {
  const { issuer } = config;
  let keys: Promise<Map<string, KeyObject>> | undefined;
  const loadKeys = async () => {
    const discovery = (await (
      await fetch(`${issuer.replace(/\/$/, '')}/.well-known/openid-configuration`)
    ).json()) as { jwks_uri?: string };
    if (!discovery.jwks_uri) throw new Error(`${issuer} publishes no jwks_uri`);
    const jwks = (await (await fetch(discovery.jwks_uri)).json()) as Jwks;
    return new Map(jwks.keys.map((k, i) => [k.kid ?? String(i), createPublicKey({ key: k, format: 'jwk' })]));
  };
  const fail = (message: string): JwtVerdict => ({ ok: false, message });
  return async (token) => {
    const parts = token.split('.');
    if (parts.length !== 3) return fail('malformed JWT');
    let header: { alg?: string; kid?: string };
    let claims: Record<string, unknown>;
    try {
      header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8'));
    } catch {
      return fail('malformed JWT');
    }
    keys ??= loadKeys().catch((err: unknown) => {
      keys = undefined; // fetched again on the next request
      throw err;
    });
    const byKid = await keys;
    const key = header.kid !== undefined ? byKid.get(header.kid) : [...byKid.values()][0];
    if (!key) return fail(`no key ${header.kid} in the issuer's JWKS`);
    const data = Buffer.from(`${parts[0]}.${parts[1]}`);
    const signature = Buffer.from(parts[2]!, 'base64url');
    const valid =
      header.alg === 'RS256'
        ? verify('sha256', data, key, signature)
        : header.alg === 'ES256'
          ? verify('sha256', data, { key, dsaEncoding: 'ieee-p1363' }, signature)
          : false;
    if (!valid) return fail(`bad signature (alg ${header.alg})`);
    if (claims.iss !== issuer) return fail(`iss ${String(claims.iss)} is not ${issuer}`);
    const audiences = [claims.aud, claims.client_id].flat().filter((a): a is string => typeof a === 'string');
    if (!audiences.some((a) => config.audience.includes(a))) return fail('aud / client_id not accepted');
    const nowS = now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp <= nowS) return fail('token expired');
    if (typeof claims.nbf === 'number' && claims.nbf > nowS) return fail('token not yet valid');
    return { ok: true, claims };
  };
}
