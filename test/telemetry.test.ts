/**
 * The metrics kit (src/telemetry/): one record, two sinks. The EMF documents Powertools builds, their
 * PutMetricData form on the wire (AWS JSON 1.0, as @aws-sdk/client-cloudwatch sends it), the Prometheus text of
 * one component and of several aggregated, and the ops port.
 *
 * No CloudWatch emulator runs here (LocalStack needs Docker), so PutMetricData goes to a small capture endpoint
 * that answers as CloudWatch does; what is asserted is the request the real SDK client put on the wire.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudWatchClient } from '../src/aws/clients.js';
import { ConfigError, readTelemetryConfig } from '../src/config.js';
import { API, CATALOG, FEED, NAMESPACE, WORKER } from '../src/telemetry/catalog.js';
import { CloudWatchSink, emfToDatums } from '../src/telemetry/cloudwatch.js';
import { aggregateMetrics, startOpsServer } from '../src/telemetry/ops.js';
import { prometheusName, Telemetry } from '../src/telemetry/telemetry.js';

describe('Telemetry', () => {
  it('aggregates a period into one EMF document per dimension set: counters summed, gauges last, timings listed', () => {
    const t = new Telemetry({ service: 'test', now: () => 1_786_000_000_000 });
    t.count(FEED.malformed);
    t.count(FEED.malformed, 4);
    t.gauge(FEED.bufferDepth, 7);
    t.gauge(FEED.bufferDepth, 3);
    t.count(WORKER.predictions, 1, { Target: 'vol_spike_60s' });
    t.timing(WORKER.inferenceMs, 12, { Target: 'quote_change_500ms' });
    t.timing(WORKER.inferenceMs, 30, { Target: 'quote_change_500ms' });
    const records = t.flush();
    expect(records).toHaveLength(3);
    const plain = records.find((r) => r.FeedMalformedFrames !== undefined)!;
    expect(plain._aws).toEqual({
      Timestamp: 1_786_000_000_000,
      CloudWatchMetrics: [
        {
          Namespace: NAMESPACE,
          Dimensions: [[]],
          Metrics: [
            { Name: 'FeedMalformedFrames', Unit: 'Count' },
            { Name: 'ProducerBufferDepth', Unit: 'None' },
          ],
        },
      ],
    });
    expect(plain).toMatchObject({ FeedMalformedFrames: 5, ProducerBufferDepth: 3 });
    expect(records.find((r) => r.WorkerPredictions !== undefined)).toMatchObject({
      Target: 'vol_spike_60s',
      WorkerPredictions: 1,
    });
    expect(records.find((r) => r.WorkerInferenceMs !== undefined)).toMatchObject({
      Target: 'quote_change_500ms',
      WorkerInferenceMs: [12, 30],
    });
    expect(t.flush()).toEqual([]); // nothing new since
    t.declare(FEED.reconnects);
    const [declared] = t.flush(); // a declared counter is reported as 0 when nothing happened
    expect(declared).toMatchObject({ FeedReconnects: 0 });
    expect(t.flush()[0]).toMatchObject({ FeedReconnects: 0 });
  });

  it('refuses dimensions the catalog does not declare', () => {
    const t = new Telemetry({ service: 'test' });
    expect(() => t.count(FEED.closes, 1, {} as never)).toThrow(
      /FeedCloses: dimensions must be exactly \[Reason\]/,
    );
    expect(() => t.count(FEED.frames, 1, { Extra: 'x' } as never)).toThrow(/dimensions must be exactly \[\]/);
  });

  it('keeps local-only metrics out of CloudWatch: Prometheus counts them, EMF never carries them', async () => {
    const t = new Telemetry({ service: 'api' });
    t.count(API.requests, 1, { Route: 'GET /latest', Status: '200' });
    t.timing(API.latencyMs, 4, { Route: 'GET /latest' });
    t.timing(API.predictionMs, 2, { Target: 'quote_change_500ms' });
    t.count(FEED.resyncs, 1);
    t.count(FEED.resyncReasons, 1, { Reason: 'gap' });
    const names = t
      .flush()
      .flatMap((r) => r._aws.CloudWatchMetrics.flatMap((m) => m.Metrics.map((x) => x.Name)));
    expect(names).toEqual([FEED.resyncs.name]);
    expect(await t.value(FEED.resyncReasons, { Reason: 'gap' })).toBe(1);
    expect(await t.value(API.requests)).toBe(1);
    expect(await t.value(API.latencyMs)).toBe(1);
    // API Gateway's own request metrics cover these deployed.
    expect(CATALOG.filter((d) => d.localOnly).map((d) => d.name)).toEqual(
      expect.arrayContaining(['ApiRequests', 'ApiLatencyMs', 'ApiPredictionMs']),
    );
  });

  it('keeps the cumulative values in Prometheus: value() and the text exposition', async () => {
    const t = new Telemetry({ service: 'ingestor' });
    t.count(FEED.transitions, 1, { From: 'subscribed', To: 'backoff' });
    t.count(FEED.transitions, 2, { From: 'backoff', To: 'connecting' });
    t.flush(); // flushing hands the period to CloudWatch; the totals stay
    t.count(FEED.transitions, 1, { From: 'subscribed', To: 'backoff' });
    t.timing(WORKER.batchMs, 3);
    t.gauge(FEED.connected, 1);
    expect(await t.value(FEED.transitions, { From: 'subscribed', To: 'backoff' })).toBe(2);
    expect(await t.value(FEED.transitions)).toBe(4);
    expect(await t.value(WORKER.batchMs)).toBe(1);
    expect(await t.value(FEED.reconnects)).toBe(0);
    const text = await t.registry.metrics();
    expect(text).toContain(
      `${prometheusName(FEED.transitions)}{From="subscribed",To="backoff",service="ingestor"} 2`,
    );
    expect(text).toContain('quotewatch_worker_batch_ms_bucket{le="5",service="ingestor"} 1');
    expect(await t.snapshot()).toMatchObject({
      'FeedTransitions{From=subscribed,To=backoff}': 2,
      FeedConnected: 1,
      WorkerBatchMs: 1,
    });
  });

  it('an ops port serves /metrics, /metrics.json and /healthz; the gateway aggregates several', async () => {
    const worker = new Telemetry({ service: 'worker' });
    worker.count(WORKER.ticks, 10);
    let healthy = true;
    const ops = await startOpsServer({
      port: 0,
      telemetry: worker,
      health: () => ({ ok: healthy, loop: 'ok' }),
    });
    try {
      const text = await (await fetch(`${ops.url}/metrics`)).text();
      expect(text).toContain('quotewatch_worker_ticks_total{service="worker"} 10');
      expect((await fetch(`${ops.url}/healthz`)).status).toBe(200);
      healthy = false;
      const down = await fetch(`${ops.url}/healthz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ service: 'worker', ok: false, loop: 'ok' });
      const gateway = new Telemetry({ service: 'gateway' });
      gateway.count(API.requests, 1, { Route: 'GET /latest', Status: '200' });
      const all = await aggregateMetrics(gateway, [ops.url, 'http://127.0.0.1:1']);
      expect(all).toContain('# unreachable: http://127.0.0.1:1');
      expect(all).toContain('quotewatch_worker_ticks_total{service="worker"} 10');
      expect(all).toContain(
        'quotewatch_api_requests_total{Route="GET /latest",Status="200",service="gateway"} 1',
      );

      // A loop blocked for 100 ms between two scrapes shows in the delay the next scrape reports.
      await fetch(`${ops.url}/metrics`);
      await new Promise((r) => setTimeout(r, 30)); // the histogram samples while the loop turns
      const until = performance.now() + 100;
      while (performance.now() < until) {
        // blocked on purpose
      }
      await new Promise((r) => setTimeout(r, 30));
      const after = await (await fetch(`${ops.url}/metrics`)).text();
      const max = Number(/quotewatch_event_loop_delay_max_ms\{service="worker"\} ([\d.]+)/.exec(after)?.[1]);
      expect(max).toBeGreaterThanOrEqual(80);
    } finally {
      await ops.close();
    }
  });

  it('METRICS_SINK, METRICS_FLUSH_MS and OPS_PORT are read and checked in src/config.ts', () => {
    expect(readTelemetryConfig({})).toEqual({ sink: 'none', flushMs: 60_000, opsPort: 0, targets: [] });
    expect(
      readTelemetryConfig({ METRICS_TARGETS: 'http://127.0.0.1:9001, http://127.0.0.1:9002' }).targets,
    ).toEqual(['http://127.0.0.1:9001', 'http://127.0.0.1:9002']);
    expect(() => readTelemetryConfig({ METRICS_TARGETS: 'localhost:9001' })).toThrow(/METRICS_TARGETS/);
    expect(readTelemetryConfig({ AWS_LAMBDA_FUNCTION_NAME: 'f' }).sink).toBe('emf');
    expect(() => readTelemetryConfig({ METRICS_SINK: 'statsd' })).toThrow(ConfigError);
  });
});

describe('CloudWatch from the Fargate tasks: PutMetricData', () => {
  const requests: { target: string; body: Record<string, unknown> }[] = [];
  let fail = false;
  let url = '';
  const server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      if (fail) {
        res.writeHead(500, { 'content-type': 'application/x-amz-json-1.0' });
        res.end(JSON.stringify({ __type: 'InternalServiceFault', message: 'down' }));
        return;
      }
      requests.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{}');
    });
  });
  beforeAll(async () => {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('sends each EMF metric as a datum with its dimensions, unit and values; keeps them through a failed call', async () => {
    const client = cloudWatchClient({
      AWS_ENDPOINT_URL_CLOUDWATCH: url,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'x',
      AWS_SECRET_ACCESS_KEY: 'x',
    });
    const logs: string[] = [];
    const cw = new CloudWatchSink({ client, log: (_l, msg) => logs.push(msg) });
    const t = new Telemetry({ service: 'worker', sinks: [cw.sink], now: () => Date.UTC(2026, 11, 5, 12) });
    t.count(WORKER.predictions, 600, { Target: 'vol_spike_60s' });
    t.timing(WORKER.latencyMs, 18);
    t.timing(WORKER.latencyMs, 31);
    t.flush();
    fail = true;
    await cw.send();
    expect(logs).toEqual(['PutMetricData failed; datums kept for the next flush']);
    fail = false;
    await cw.send();
    expect(requests.map((r) => r.target)).toEqual(['GraniteServiceVersion20100801.PutMetricData']);
    const body = requests[0]!.body as { Namespace: string; MetricData: Record<string, unknown>[] };
    expect(body.Namespace).toBe(NAMESPACE);
    const timestamp = Date.UTC(2026, 11, 5, 12) / 1000;
    expect(body.MetricData).toEqual(
      expect.arrayContaining([
        {
          MetricName: 'WorkerPredictions',
          Dimensions: [{ Name: 'Target', Value: 'vol_spike_60s' }],
          Timestamp: timestamp,
          Unit: 'Count',
          Values: [600],
        },
        {
          MetricName: 'WorkerLatencyMs',
          Dimensions: [],
          Timestamp: timestamp,
          Unit: 'Milliseconds',
          Values: [18, 31],
        },
      ]),
    );
    await cw.send(); // nothing left
    expect(requests).toHaveLength(1);
  });

  it('splits long value lists by the API limit', () => {
    const t = new Telemetry({ service: 'w' });
    for (let i = 0; i < 99; i++) t.timing(WORKER.batchMs, i);
    const [record] = t.flush();
    const values = Array.from({ length: 400 }, (_, i) => i);
    const [directive] = emfToDatums({ ...record!, WorkerBatchMs: values });
    expect(directive!.datums.map((d) => d.Values!.length)).toEqual([150, 150, 100]);
  });
});
