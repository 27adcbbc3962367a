/**
 * The slice of the API Gateway HTTP API payload format 2.0 that QuoteWatch uses (aws-lambda types are not
 * installed), plus JSON response helpers. The local gateway builds the same events the cloud sends.
 */

export interface HttpApiEventV2 {
  version: '2.0';
  /** "GET /latest", or "$default" for a catch-all route. */
  routeKey: string;
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  /** Header names are lowercase; repeated headers are joined with ",". */
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  pathParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: string;
    stage: string;
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

export interface HttpApiResultV2 {
  statusCode: number;
  headers?: Record<string, string>;
  body?: string;
  isBase64Encoded?: boolean;
}

/** The body of every error response. */
export interface ErrorBody {
  error: { code: string; message: string };
}

const JSON_HEADERS = { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' };

export function json(statusCode: number, body: unknown): HttpApiResultV2 {
  return { statusCode, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

export function errorJson(statusCode: number, code: string, message: string): HttpApiResultV2 {
  const body: ErrorBody = { error: { code, message } };
  return json(statusCode, body);
}

/** The request body as text (API Gateway base64-encodes bodies it considers binary). */
export function bodyText(event: Pick<HttpApiEventV2, 'body' | 'isBase64Encoded'>): string | undefined {
  if (event.body === undefined) return undefined;
  return event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body;
}
