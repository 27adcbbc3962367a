/**
 * Optional CDP API-key auth for the Advanced Trade WebSocket: an ES256 JWT added as `jwt` to each subscribe
 * message. Per Coinbase's docs: header { alg: "ES256", kid: <key name>, nonce, typ: "JWT" }, claims
 * { iss: "cdp", sub: <key name>, nbf: now, exp: now + 120 }; WebSocket JWTs carry no `uri` claim.
 * A JWT lives 2 minutes, so one is made per (re)connection. node:crypto only, no JWT library.
 */

import { createPrivateKey, type KeyObject, randomBytes, sign } from 'node:crypto';
import { QuoteWatchError } from '../errors.js';

export const JWT_LIFETIME_S = 120;

export class CdpKeyError extends QuoteWatchError {}

export interface CdpCredentials {
  /** "organizations/{org_id}/apiKeys/{key_id}" */
  keyName: string;
  /** PEM "-----BEGIN EC PRIVATE KEY-----..."; literal "\n" sequences (one-line env vars) are accepted. */
  privateKey: string;
}

/** Parses the key once; throws CdpKeyError unless it is a P-256 EC private key (what ES256 needs). */
export function loadCdpKey(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(privateKeyPem.replace(/\\n/g, '\n'));
  } catch (cause) {
    throw new CdpKeyError('COINBASE_API_PRIVATE_KEY is not a PEM private key', { cause });
  }
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    throw new CdpKeyError(
      `COINBASE_API_PRIVATE_KEY must be an EC P-256 key for ES256 (got ${key.asymmetricKeyType} ${curve ?? ''})`.trim(),
    );
  }
  return key;
}

const b64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** A WebSocket JWT valid from `nowS` for 120 s. */
export function buildWebSocketJwt(
  keyName: string,
  key: KeyObject,
  nowS = Math.floor(Date.now() / 1000),
): string {
  const header = { alg: 'ES256', kid: keyName, nonce: randomBytes(16).toString('hex'), typ: 'JWT' };
  const claims = { iss: 'cdp', sub: keyName, nbf: nowS, exp: nowS + JWT_LIFETIME_S };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JWS wants the raw r||s signature, not DER.
  const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${b64url(signature)}`;
}

/** A JWT factory for the configured key (parsed once, so a bad key fails at startup). */
export function cdpJwtSource(credentials: CdpCredentials): () => string {
  const key = loadCdpKey(credentials.privateKey);
  return () => buildWebSocketJwt(credentials.keyName, key);
}
