/**
 * SigV4 for API Gateway's IAM authorization (service `execute-api`), with Node's own SHA-256: `quotewatch smoke`
 * signs its requests with it, and the local gateway (src/gateway/auth.ts) checks them by signing again.
 */
import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';

/** The hash SignatureV4 takes: a SHA-256, or an HMAC-SHA-256 when given a secret. */
class NodeSha256 {
  private hash: Hash | Hmac;
  constructor(private readonly secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = this.fresh();
  }
  private fresh(): Hash | Hmac {
    if (this.secret === undefined) return createHash('sha256');
    const key =
      typeof this.secret === 'string'
        ? this.secret
        : ArrayBuffer.isView(this.secret)
          ? Buffer.from(this.secret.buffer, this.secret.byteOffset, this.secret.byteLength)
          : Buffer.from(this.secret);
    return createHmac('sha256', key);
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(
      typeof data === 'string'
        ? data
        : ArrayBuffer.isView(data)
          ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
          : Buffer.from(data),
    );
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {
    this.hash = this.fresh();
  }
}

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export function executeApiSigner(
  credentials: Credentials | (() => Promise<Credentials>),
  region: string,
): SignatureV4 {
  return new SignatureV4({ credentials, region, service: 'execute-api', sha256: NodeSha256 });
}

/** A request as SignatureV4 signs it. */
export interface SignableRequest {
  method: string;
  protocol: string;
  hostname: string;
  port?: number;
  path: string;
  query: Record<string, string>;
  headers: Record<string, string>;
  body?: string;
}

/** Signs a fetch-style request for execute-api; the headers to send (host, x-amz-date, authorization, ...). */
export async function signRequest(
  signer: SignatureV4,
  url: URL,
  method: string,
  body: string | undefined,
  signingDate?: Date,
): Promise<Record<string, string>> {
  const request: SignableRequest = {
    method,
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: url.pathname,
    query: Object.fromEntries(url.searchParams),
    headers: {
      host: url.host,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body } : {}),
  };
  const signed = (await signer.sign(request as never, signingDate ? { signingDate } : {})) as unknown as {
    headers: Record<string, string>;
  };
  return signed.headers;
}
