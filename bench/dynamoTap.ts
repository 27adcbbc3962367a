/**
 * Exchange time -> DynamoDB ack, observed from outside the worker processes: a pass-through HTTP tap in front of
 * dynalite that, for every latest item acknowledged (PutItem with sk "latest"), records the time dynalite's
 * response is in minus the snapshot's watermark (updatedAtMs - latencyMs: the exchange time of the newest event
 * the worker had). bench/worker.ts says why a tap (the workers' own windows cannot be pooled).
 */
import { Agent, createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface DynamoTap {
  url: string;
  /** Exchange -> ack latencies (ms) of the snapshots acknowledged while recording. */
  samples: number[];
  /** Wall time (ms) of each sample's ack. */
  times: number[];
  recording: boolean;
  close(): Promise<void>;
}

export async function dynamoTap(upstreamPort: number): Promise<DynamoTap> {
  const agent = new Agent({ keepAlive: true });
  const tap: DynamoTap = { url: '', samples: [], times: [], recording: false, close: async () => {} };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const up = httpRequest(
        {
          host: '127.0.0.1',
          port: upstreamPort,
          method: req.method,
          path: req.url,
          headers: req.headers,
          agent,
        },
        (upRes) => {
          const out: Buffer[] = [];
          upRes.on('data', (c: Buffer) => out.push(c));
          upRes.on('end', () => {
            const ackMs = Date.now();
            if (upRes.statusCode === 200 && String(req.headers['x-amz-target']).endsWith('.PutItem')) {
              noteAck(body, ackMs);
            }
            res.writeHead(upRes.statusCode ?? 502, upRes.headers);
            res.end(Buffer.concat(out));
          });
        },
      );
      up.on('error', () => {
        res.writeHead(502);
        res.end();
      });
      up.end(body);
    });
  });
  const noteAck = (body: Buffer, ackMs: number) => {
    const put = JSON.parse(body.toString('utf8')) as {
      Item: Record<string, { S?: string; N?: string }>;
    };
    const item = put.Item;
    // The latest item is what /latest serves (history rows and status items come at their own cadences).
    if (item.sk?.S !== 'latest' || !item.updatedAtMs?.N || !item.latencyMs?.N) return;
    if (!tap.recording) return;
    tap.samples.push(ackMs - (Number(item.updatedAtMs.N) - Number(item.latencyMs.N)));
    tap.times.push(ackMs);
  };
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  tap.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  tap.close = async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
    agent.destroy();
  };
  return tap;
}
