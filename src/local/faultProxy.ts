/**
 * Fault-injecting HTTP/1.1 proxy, one in front of any local emulator (kinesalite, dynalite, s3rver): point an
 * SDK client's endpoint at `proxy.url` and add rules at runtime. Requests that no rule matches pass through.
 *
 * Actions:
 * - `error`: answer with an HTTP error (e.g. 400 ProvisionedThroughputExceededException, 500 InternalFailure)
 *   without forwarding;
 * - `delay`: wait, then forward;
 * - `drop-after-write`: forward, wait for the emulator's answer (the write happened), then destroy the client's
 *   socket, so the client retries and a real duplicate reaches the emulator;
 * - `fail-entries` (Kinesis PutRecords): forward only the entries NOT selected, then answer as Kinesis does for a
 *   partial failure: selected entries get ErrorCode ProvisionedThroughputExceededException (and are really not
 *   written), the others the emulator's results, in request order.
 * Each rule applies to the next `times` matching requests (default: every one) and counts its hits.
 */

import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type Clock, systemClock } from '../clock.js';
import { QuoteWatchError } from '../errors.js';

export class FaultProxyError extends QuoteWatchError {}

export interface PutRecordsEntry {
  index: number;
  partitionKey: string;
  data: Buffer;
}

export type FaultAction =
  | { kind: 'error'; status: number; errorType: string; message?: string }
  | { kind: 'delay'; ms: number }
  | { kind: 'drop-after-write' }
  | { kind: 'fail-entries'; select: (entry: PutRecordsEntry) => boolean; errorCode?: string };

export interface FaultRule {
  /** The AWS JSON operation (X-Amz-Target suffix, e.g. "PutRecords"); any when absent. */
  operation?: string;
  /** More conditions: HTTP method and a path pattern (S3 has no X-Amz-Target). */
  method?: string;
  path?: RegExp;
  /** Matching requests this rule applies to; default unlimited. */
  times?: number;
  action: FaultAction;
}

export interface FaultHandle {
  /** Requests this rule has acted on. */
  readonly hits: number;
  /** For fail-entries: entries it failed. */
  readonly failedEntries: number;
  remove(): void;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  operation: string | undefined;
  /** The action taken, or "pass". */
  action: FaultAction['kind'] | 'pass';
  status: number | undefined;
}

export interface FaultProxy {
  url: string;
  port: number;
  /** Every request seen, oldest first. */
  readonly requests: ProxiedRequest[];
  add(rule: FaultRule): FaultHandle;
  clear(): void;
  close(): Promise<void>;
}

interface ActiveRule {
  rule: FaultRule;
  hits: number;
  failedEntries: number;
}

interface Upstream {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const HOP_BY_HOP = ['connection', 'keep-alive', 'transfer-encoding', 'content-length'];

function readBody(stream: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

function operationOf(req: IncomingMessage): string | undefined {
  const target = req.headers['x-amz-target'];
  return typeof target === 'string' ? target.slice(target.lastIndexOf('.') + 1) : undefined;
}

export async function startFaultProxy(options: {
  target: string;
  port?: number;
  /** The clock `delay` waits on (default: the system clock). */
  clock?: Clock;
}): Promise<FaultProxy> {
  const clock = options.clock ?? systemClock;
  const target = new URL(options.target);
  const agent = new http.Agent({ keepAlive: true });
  const rules: ActiveRule[] = [];
  const requests: ProxiedRequest[] = [];

  function forward(req: IncomingMessage, body: Buffer): Promise<Upstream> {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.includes(k)) headers[k] = v;
    headers['content-length'] = String(body.length);
    headers.host = target.host;
    return new Promise((resolve, reject) => {
      const up = http.request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent },
        (res) => {
          readBody(res).then(
            (b) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: b }),
            reject,
          );
        },
      );
      up.on('error', reject);
      up.end(body);
    });
  }

  function reply(res: ServerResponse, up: Upstream): void {
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(up.headers))
      if (v !== undefined && !HOP_BY_HOP.includes(k) && k !== 'x-amz-crc32') headers[k] = v;
    headers['content-length'] = String(up.body.length);
    res.writeHead(up.status, headers);
    res.end(up.body);
  }

  function match(req: IncomingMessage, operation: string | undefined): ActiveRule | undefined {
    return rules.find(
      (r) =>
        (r.rule.times === undefined || r.hits < r.rule.times) &&
        (r.rule.operation === undefined || r.rule.operation === operation) &&
        (r.rule.method === undefined || r.rule.method === req.method) &&
        (r.rule.path === undefined || r.rule.path.test(req.url ?? '')),
    );
  }

  /** Kinesis partial failure: forward the unselected entries only and merge the results in request order. */
  async function failEntries(
    req: IncomingMessage,
    body: Buffer,
    rule: ActiveRule,
    action: Extract<FaultAction, { kind: 'fail-entries' }>,
  ): Promise<Upstream> {
    const request = JSON.parse(body.toString('utf8')) as {
      Records: { PartitionKey: string; Data: string }[];
    } & Record<string, unknown>;
    const failed = request.Records.map((r, index) =>
      action.select({ index, partitionKey: r.PartitionKey, data: Buffer.from(r.Data, 'base64') }),
    );
    const kept = request.Records.filter((_, i) => !failed[i]);
    let keptResults: Record<string, unknown>[] = [];
    if (kept.length > 0) {
      const up = await forward(req, Buffer.from(JSON.stringify({ ...request, Records: kept })));
      if (up.status !== 200) return up; // the emulator refused the rest: pass its answer on
      keptResults = (JSON.parse(up.body.toString('utf8')) as { Records: Record<string, unknown>[] }).Records;
    }
    const errorCode = action.errorCode ?? 'ProvisionedThroughputExceededException';
    let k = 0;
    const results = failed.map((f) =>
      f
        ? { ErrorCode: errorCode, ErrorMessage: 'Rate exceeded for shard (injected by the fault proxy)' }
        : keptResults[k++],
    );
    const n = failed.filter(Boolean).length;
    rule.failedEntries += n;
    return {
      status: 200,
      headers: { 'content-type': 'application/x-amz-json-1.1' },
      body: Buffer.from(JSON.stringify({ FailedRecordCount: n, Records: results })),
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const operation = operationOf(req);
    const active = match(req, operation);
    const entry: ProxiedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      operation,
      action: active?.rule.action.kind ?? 'pass',
      status: undefined,
    };
    requests.push(entry);
    if (active) active.hits++;
    const action = active?.rule.action;
    let up: Upstream;
    switch (action?.kind) {
      case 'error':
        up = {
          status: action.status,
          headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': action.errorType },
          body: Buffer.from(
            JSON.stringify({
              __type: action.errorType,
              message: action.message ?? 'injected by the fault proxy',
            }),
          ),
        };
        break;
      case 'delay':
        await clock.sleep(action.ms);
        up = await forward(req, body);
        break;
      case 'drop-after-write':
        up = await forward(req, body);
        entry.status = up.status;
        req.socket.destroy(); // the write is done; the client never hears of it
        return;
      case 'fail-entries':
        up =
          operation === 'PutRecords'
            ? await failEntries(req, body, active!, action)
            : await forward(req, body);
        break;
      default:
        up = await forward(req, body);
    }
    entry.status = up.status;
    reply(res, up);
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error) => {
      // The emulator is down or answered garbage: a gateway error, like a real load balancer would give.
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`fault proxy: ${err.message}`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(new FaultProxyError(`cannot listen on port ${options.port ?? 0}`, { cause: err })),
    );
    server.listen(options.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    add(rule) {
      const active: ActiveRule = { rule, hits: 0, failedEntries: 0 };
      rules.push(active);
      return {
        get hits() {
          return active.hits;
        },
        get failedEntries() {
          return active.failedEntries;
        },
        remove() {
          const i = rules.indexOf(active);
          if (i >= 0) rules.splice(i, 1);
        },
      };
    },
    clear() {
      rules.length = 0;
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
