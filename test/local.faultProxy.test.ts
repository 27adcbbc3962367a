import {
  KinesisClient,
  ListStreamsCommand,
  PutRecordCommand,
  PutRecordsCommand,
} from '@aws-sdk/client-kinesis';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kinesisClient } from '../src/aws/clients.js';
import { type FaultProxy, startFaultProxy } from '../src/local/faultProxy.js';
import { STREAM } from '../src/resources.js';
import { encodeRecord, type StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import { FakeClock } from './support/clock.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

// Real kinesalite behind the real proxy; what was (not) written is read back from kinesalite directly.
const local = withEmulators({ provision: true });
let proxy: FaultProxy;

beforeAll(async () => {
  proxy = await startFaultProxy({ target: local.env.AWS_ENDPOINT_URL_KINESIS! });
});
afterAll(async () => {
  await proxy?.close();
});

/** A client through the proxy; `maxAttempts: 1` so the test sees each injected failure itself. */
function viaProxy(maxAttempts = 1, endpoint = proxy.url): KinesisClient {
  return new KinesisClient({
    region: 'us-east-1',
    credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    endpoint,
    requestHandler: new NodeHttpHandler({ connectionTimeout: 2000 }),
    maxAttempts,
  });
}

let counter = 0;
/** A v1 record carrying one heartbeat event with a unique id, so the stream can be searched for it. */
function record(product: string): { id: string; data: Uint8Array } {
  const id = `proxy-test-${process.pid}-${counter++}`;
  const event: StreamEvent = { type: 'heartbeat', product, exchUs: 1, recvUs: 1, seq: -1, counter: 0, id };
  return { id, data: encodeRecord(product, [event]) };
}

async function idsInStream(): Promise<string[]> {
  const records = await readStream(kinesisClient(local.env), STREAM.localName);
  return records.flatMap((r) => r.events.map((e) => e.id));
}

describe('fault proxy in front of kinesalite', () => {
  it('passes requests through unchanged when no rule matches', async () => {
    const out = await viaProxy().send(new ListStreamsCommand({}));
    expect(out.StreamNames).toContain(STREAM.localName);
    expect(proxy.requests.at(-1)).toMatchObject({ operation: 'ListStreams', action: 'pass', status: 200 });
  });

  it('fails chosen PutRecords entries: only the others are written, results merged in order', async () => {
    const recs = ['A', 'B', 'C', 'D'].map((p) => ({ p, ...record(p) }));
    const rule = proxy.add({
      operation: 'PutRecords',
      times: 1,
      action: { kind: 'fail-entries', select: (e) => e.partitionKey === 'B' || e.index === 3 },
    });
    const out = await viaProxy().send(
      new PutRecordsCommand({
        StreamName: STREAM.localName,
        Records: recs.map((r) => ({ PartitionKey: r.p, Data: r.data })),
      }),
    );
    rule.remove();
    expect(out.FailedRecordCount).toBe(2);
    expect(out.Records?.map((r) => r.ErrorCode ?? 'ok')).toEqual([
      'ok',
      'ProvisionedThroughputExceededException',
      'ok',
      'ProvisionedThroughputExceededException',
    ]);
    expect(out.Records?.[0]?.SequenceNumber).toBeTruthy();
    expect(out.Records?.[2]?.ShardId).toBeTruthy();
    expect(rule).toMatchObject({ hits: 1, failedEntries: 2 });
    const ids = await idsInStream();
    expect(recs.map((r) => ids.includes(r.id))).toEqual([true, false, true, false]);
  });

  it('returns an error N times for the chosen operation, then forwards again', async () => {
    const rule = proxy.add({
      operation: 'PutRecord',
      times: 2,
      action: { kind: 'error', status: 400, errorType: 'ProvisionedThroughputExceededException' },
    });
    const r = record('E');
    const client = viaProxy();
    const put = () =>
      client.send(new PutRecordCommand({ StreamName: STREAM.localName, PartitionKey: 'E', Data: r.data }));
    await expect(put()).rejects.toMatchObject({ name: 'ProvisionedThroughputExceededException' });
    await expect(put()).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
    // Other operations are untouched meanwhile.
    await viaProxy().send(new ListStreamsCommand({}));
    expect((await put()).SequenceNumber).toBeTruthy();
    expect(rule.hits).toBe(2);
    const ids = await idsInStream();
    expect(ids.filter((id) => id === r.id)).toHaveLength(1);

    const failing = proxy.add({
      operation: 'ListStreams',
      times: 1,
      action: { kind: 'error', status: 500, errorType: 'InternalFailure' },
    });
    await expect(viaProxy().send(new ListStreamsCommand({}))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 500 },
    });
    expect(failing.hits).toBe(1);
  });

  it('delays a request by the given time of its clock', async () => {
    const clock = new FakeClock();
    const slow = await startFaultProxy({ target: local.env.AWS_ENDPOINT_URL_KINESIS!, clock });
    try {
      const rule = slow.add({ operation: 'ListStreams', times: 1, action: { kind: 'delay', ms: 300 } });
      const client = viaProxy(1, slow.url);
      let answered = false;
      const request = client.send(new ListStreamsCommand({})).then(() => {
        answered = true;
      });
      await until('the proxy holds the request', () => rule.hits === 1);
      await clock.advanceTo(299);
      expect(answered).toBe(false); // still held: nothing is forwarded before its time
      await clock.advanceTo(300);
      await request;
      expect(answered).toBe(true);
      // `times: 1`: the next request is not delayed (no clock move needed).
      await client.send(new ListStreamsCommand({}));
      expect(rule.hits).toBe(1);
    } finally {
      await slow.close();
    }
  });

  it('drops the response after the write: the record is written, and a retry writes a real duplicate', async () => {
    const once = record('F');
    proxy.add({ operation: 'PutRecord', times: 1, action: { kind: 'drop-after-write' } });
    await expect(
      viaProxy().send(
        new PutRecordCommand({ StreamName: STREAM.localName, PartitionKey: 'F', Data: once.data }),
      ),
    ).rejects.toThrow();
    expect((await idsInStream()).filter((id) => id === once.id)).toHaveLength(1);

    // The SDK's own retry (3 attempts) sends it again after the dropped answer: two copies in the stream.
    const twice = record('F');
    const rule = proxy.add({ operation: 'PutRecord', times: 1, action: { kind: 'drop-after-write' } });
    const out = await viaProxy(3).send(
      new PutRecordCommand({ StreamName: STREAM.localName, PartitionKey: 'F', Data: twice.data }),
    );
    expect(out.SequenceNumber).toBeTruthy();
    expect(rule.hits).toBe(1);
    expect((await idsInStream()).filter((id) => id === twice.id)).toHaveLength(2);
  });
});
