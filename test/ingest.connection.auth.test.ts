import { createPublicKey, generateKeyPairSync, verify } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ConfigError, readFeedConfig } from '../src/config.js';
import { buildWebSocketJwt, CdpKeyError, cdpJwtSource, loadCdpKey } from '../src/ingest/auth.js';

const KEY_NAME = 'organizations/org-1/apiKeys/key-1';
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const pem = privateKey.export({ type: 'sec1', format: 'pem' }).toString();

function decode(jwt: string) {
  const [h, c, s] = jwt.split('.');
  const json = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  return {
    header: json(h!),
    claims: json(c!),
    signingInput: `${h}.${c}`,
    signature: Buffer.from(s!, 'base64url'),
  };
}

describe('CDP WebSocket JWT (ES256)', () => {
  it('verifies with the public key and carries the documented header and claims, without uri', () => {
    const jwt = buildWebSocketJwt(KEY_NAME, loadCdpKey(pem), 1_700_000_000);
    const { header, claims, signingInput, signature } = decode(jwt);
    expect(header).toMatchObject({ alg: 'ES256', kid: KEY_NAME, typ: 'JWT' });
    expect(header.nonce).toMatch(/^[0-9a-f]{32}$/);
    expect(claims).toEqual({ iss: 'cdp', sub: KEY_NAME, nbf: 1_700_000_000, exp: 1_700_000_120 });
    expect(signature).toHaveLength(64); // JWS ES256: raw r||s
    const publicKey = createPublicKey(privateKey);
    const ok = verify(
      'sha256',
      Buffer.from(signingInput),
      { key: publicKey, dsaEncoding: 'ieee-p1363' },
      signature,
    );
    expect(ok).toBe(true);
    // A tampered claim no longer verifies.
    const forged = Buffer.from(JSON.stringify({ ...claims, exp: claims.exp + 3600 })).toString('base64url');
    const [h] = jwt.split('.');
    expect(
      verify(
        'sha256',
        Buffer.from(`${h}.${forged}`),
        { key: publicKey, dsaEncoding: 'ieee-p1363' },
        signature,
      ),
    ).toBe(false);
  });

  it('accepts a one-line key with escaped newlines and makes a fresh nonce per JWT', () => {
    const source = cdpJwtSource({ keyName: KEY_NAME, privateKey: pem.replace(/\n/g, '\\n') });
    expect(decode(source()).header.nonce).not.toBe(decode(source()).header.nonce);
  });

  it('rejects keys ES256 cannot use with a clear error', () => {
    expect(() => loadCdpKey('not a key')).toThrow(CdpKeyError);
    const ed = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => loadCdpKey(ed)).toThrow(/EC P-256/);
  });

  it('configuration needs both key variables or neither, and picks the feed kind from the host', () => {
    expect(() => readFeedConfig({ COINBASE_API_KEY_NAME: KEY_NAME })).toThrow(ConfigError);
    expect(() => readFeedConfig({ COINBASE_API_KEY_NAME: KEY_NAME })).toThrow(/^COINBASE_API_PRIVATE_KEY: /);
    expect(readFeedConfig({ COINBASE_API_KEY_NAME: KEY_NAME, COINBASE_API_PRIVATE_KEY: pem }).auth).toEqual({
      keyName: KEY_NAME,
      privateKey: pem,
    });
    expect(readFeedConfig({ FEED_URL: 'wss://ws-feed.exchange.coinbase.com' }).kind).toBe('exchange');
    expect(readFeedConfig({ FEED_URL: 'wss://advanced-trade-ws.coinbase.com' }).kind).toBe('advanced');
    expect(readFeedConfig({ FEED_URL: 'ws://127.0.0.1:1', FEED_KIND: 'exchange' }).kind).toBe('exchange');
    expect(() => readFeedConfig({ FEED_KIND: 'pro' })).toThrow(/^FEED_KIND: /);
    expect(readFeedConfig({}).snapshotIntervalMs).toBe(30_000);
  });
});
