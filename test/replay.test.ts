import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { kinesisClient, s3Client } from '../src/aws/clients.js';
import type { ArchivedFrame } from '../src/ingest/archive.js';
import { ArchiveError, archiveKey, FileArchive, S3Archive } from '../src/ingest/archive.js';
import type { Logger } from '../src/log.js';
import { detectFormat, RecordingFormatError, readRecording } from '../src/replay/readers.js';
import { runReplay } from '../src/replay/replay.js';
import { startReplayServer } from '../src/replay/server.js';
import { BUCKETS, STREAM } from '../src/resources.js';
import type { StreamEvent } from '../src/stream/record.js';
import { readStream } from './ingest.helpers.js';
import { itCapture } from './support/captures.js';
import { FakeClock } from './support/clock.js';
import { tempDataDir, withEmulators } from './support/system.js';
import { until } from './support/until.js';

const local = withEmulators({ provision: true });
const dir = tempDataDir('qw-replay-');
const cli = fileURLToPath(new URL('../bin/quotewatch.ts', import.meta.url));
const quiet: Logger = () => {};
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function collect(frames: AsyncIterable<ArchivedFrame>): Promise<ArchivedFrame[]> {
  const out: ArchivedFrame[] = [];
  for await (const f of frames) out.push(f);
  return out;
}

async function* from(frames: ArchivedFrame[]): AsyncGenerator<ArchivedFrame> {
  yield* frames;
}

/** A ticker-only recording in the volatility design's format, with gaps in sequence_num (an extract). */
function tickerFixture(path: string, n: number) {
  const t0 = Date.UTC(2026, 0, 5, 12, 0, 0);
  const expected: { product: string; price: string; bestBid: string; bestAsk: string }[] = [];
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const product = i % 3 === 0 ? 'ETH-USD' : 'BTC-USD';
    const base = product === 'BTC-USD' ? 65000 : 3000;
    const bid = (base + i * 0.37).toFixed(2);
    const ask = (base + i * 0.37 + 0.01 * (1 + (i % 4))).toFixed(2);
    const price = (base + i * 0.37 + 0.01).toFixed(2);
    const payload = {
      channel: 'ticker',
      timestamp: new Date(t0 + i * 40).toISOString(),
      sequence_num: 1000 + i * 7,
      events: [
        {
          type: i < 2 ? 'snapshot' : 'update',
          tickers: [
            {
              type: 'ticker',
              product_id: product,
              price: `${price}000`, // trailing zeros: normalized on the way
              volume_24_h: '123.45',
              best_bid: bid,
              best_bid_quantity: '0.5',
              best_ask: ask,
              best_ask_quantity: '0.25',
            },
          ],
        },
      ],
    };
    // Both payload shapes occur: the frame as an object and as the raw string.
    const line = {
      ingest_time: new Date(t0 + i * 40 + 3).toISOString(),
      product_id: product,
      payload: i % 2 ? JSON.stringify(payload) : payload,
    };
    lines.push(JSON.stringify(line));
    expected.push({
      product,
      price: String(Number(price)),
      bestBid: String(Number(bid)),
      bestAsk: String(Number(ask)),
    });
  }
  writeFileSync(path, `${lines.join('\n')}\n`);
  return expected;
}

describe('recording readers', () => {
  it('round-trips our own archive (plain and gzip), byte for byte, malformed frames included', async () => {
    const frames: ArchivedFrame[] = [
      { recvUs: 1_786_309_548_629_007, conn: 's.0', frame: '{"channel":"heartbeats","sequence_num":0}' },
      { recvUs: 1_786_309_548_631_066, conn: 's.0', frame: '{"channel":"l2_data","seq' },
      { recvUs: 1_786_309_549_000_000, conn: 's.1', frame: '{"note":"ünïcode \\n and \\"quotes\\""}' },
    ];
    for (const name of ['a.ndjson', 'a.ndjson.gz']) {
      const archive = new FileArchive(join(dir, name));
      for (const f of frames) archive.write(f.conn, f.frame, f.recvUs);
      await archive.close();
      expect(archive.frames).toBe(3);
      expect(await detectFormat(join(dir, name))).toBe('archive');
      expect(await collect(readRecording(join(dir, name)))).toEqual(frames);
    }
  });

  it('S3 archive: objects rolled by count and by hour under archive/date=/hour=, the rest flushed on close', async () => {
    const s3 = s3Client(local.env);
    const session = `arch${Date.now().toString(36)}`;
    const archive = new S3Archive({
      s3,
      bucket: BUCKETS.lake.localName,
      session,
      rollBytes: 1 << 20,
      rollFrames: 3,
      rollMs: 60_000,
    });
    // 2026-01-05 12:59:59.9 onwards: frames 0-4 in hour 12, 5-6 in hour 13.
    const t0 = Date.UTC(2026, 0, 5, 12, 59, 59, 500) * 1000;
    const frames = [...Array(7).keys()].map((i) => ({
      recvUs: t0 + (i < 5 ? i : 600_000 + i) * 1000,
      conn: `${session}.0`,
      frame: `{"i":${i}}`,
    }));
    for (const f of frames) archive.write(f.conn, f.frame, f.recvUs);
    await archive.close();
    expect(archive.objects).toBe(3); // [0,1,2] full; [3,4] ended by the hour; [5,6] written by close
    const keys = [
      archiveKey(session, frames[0]!.recvUs, 0),
      archiveKey(session, frames[3]!.recvUs, 1),
      archiveKey(session, frames[5]!.recvUs, 2),
    ];
    expect(keys[0]).toBe(`archive/date=2026-01-05/hour=12/${session}-000000.ndjson.gz`);
    expect(keys[2]).toBe(`archive/date=2026-01-05/hour=13/${session}-000002.ndjson.gz`);
    const listed: string[] = [];
    for (const hour of ['12', '13']) {
      const out = await s3.send(
        new ListObjectsV2Command({
          Bucket: BUCKETS.lake.localName,
          Prefix: `archive/date=2026-01-05/hour=${hour}/${session}-`,
        }),
      );
      listed.push(...(out.Contents ?? []).map((o) => o.Key!));
    }
    expect(listed.sort()).toEqual(keys);
    const back: ArchivedFrame[] = [];
    for (const key of listed) {
      const obj = await s3.send(new GetObjectCommand({ Bucket: BUCKETS.lake.localName, Key: key }));
      const text = gunzipSync(await obj.Body!.transformToByteArray()).toString('utf8');
      back.push(
        ...text
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as ArchivedFrame),
      );
    }
    expect(back).toEqual(frames);
  });

  it('S3 archive: frames that cannot be stored are reported at close, not silently lost', async () => {
    const errors: Error[] = [];
    const archive = new S3Archive({
      s3: s3Client(local.env),
      bucket: 'no-such-bucket-qw',
      session: 's',
      rollBytes: 1 << 20,
      rollFrames: 100,
      rollMs: 60_000,
      attempts: 1,
      onError: (e) => errors.push(e),
    });
    archive.write('s.0', '{}', Date.now() * 1000);
    archive.write('s.0', '{}', Date.now() * 1000);
    const err = await archive.close().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ArchiveError);
    expect((err as Error).message).toMatch(/^2 frames in 1 archive objects could not be written/);
    expect(errors).toHaveLength(1);
  });

  it('names the file and line of a bad line', async () => {
    const path = join(dir, 'bad.ndjson');
    writeFileSync(path, '{"recvUs":1,"conn":"c","frame":"{}"}\n{"recvUs":"x"}\n');
    const err = await collect(readRecording(path)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RecordingFormatError);
    expect((err as Error).message).toContain(`${path}:2`);
    writeFileSync(join(dir, 'odd.json'), '{"what":1}\n');
    await expect(detectFormat(join(dir, 'odd.json'))).rejects.toThrow(/unknown recording format/);
  });

  it('reads volatility NDJSON: payload as object or string, ingest_time as ISO or epoch', async () => {
    const path = join(dir, 'vol.ndjson.gz');
    const frame = { channel: 'ticker', sequence_num: 3, events: [] };
    writeFileSync(
      path,
      gzipSync(
        [
          JSON.stringify({
            ingest_time: '2026-01-05T12:00:00.123456Z',
            product_id: 'BTC-USD',
            payload: frame,
          }),
          JSON.stringify({
            ingest_time: 1767614400.5,
            product_id: 'BTC-USD',
            payload: JSON.stringify(frame),
          }),
          JSON.stringify({ ingest_time: 1767614400500, product_id: 'BTC-USD', payload: frame }),
        ].join('\n'),
      ),
    );
    const frames = await collect(readRecording(path));
    expect(frames.map((f) => f.recvUs)).toEqual([1767614400123456, 1767614400500000, 1767614400500000]);
    expect(frames.every((f) => JSON.parse(f.frame).sequence_num === 3)).toBe(true);
  });

  describe('real captures', () => {
    itCapture(
      'advancedTrade',
      'cryptofeed Advanced Trade capture: 1,030 received frames, one sequence 0..1029',
      async ({ path }) => {
        expect(await detectFormat(path)).toBe('cryptofeed');
        const frames = await collect(readRecording(path));
        expect(frames).toHaveLength(1030);
        expect(frames.map((f) => JSON.parse(f.frame).sequence_num)).toEqual([...Array(1030).keys()]);
        expect(frames[0]!.recvUs).toBe(1786309548629008); // ts 1786309548.6290078
        expect(frames.every((f, i) => i === 0 || f.recvUs >= frames[i - 1]!.recvUs)).toBe(true);
      },
    );

    itCapture(
      'exchange',
      'legacy Exchange capture: 9,946 received frames, exact receive times, sent frames skipped',
      async ({ path }) => {
        expect(await detectFormat(path)).toBe('exchange');
        const frames = await collect(readRecording(path));
        expect(frames).toHaveLength(9946);
        expect(frames[0]).toMatchObject({ recvUs: 1618677817061845, conn: 'exchange.1' });
        const types = frames.map((f) => (JSON.parse(f.frame) as { type: string }).type);
        expect(types.filter((t) => t === 'snapshot')).toHaveLength(10);
        expect(types).not.toContain('subscribe');
      },
    );
  });
});

describe('replay server', () => {
  it('keeps recorded inter-frame timing scaled by speed, and renumbers an extract on request', async () => {
    // Gaps of 100 ms then 300 ms, replayed at 2x: sent at 0, 50 and 200 ms of the (virtual) pacing clock.
    const frames = [0, 100_000, 400_000].map((dt, i) => ({
      recvUs: 1_700_000_000_000_000 + dt,
      conn: 'c',
      frame: JSON.stringify({ channel: 'ticker', sequence_num: 10 * i, events: [] }),
    }));
    const clock = new FakeClock();
    const server = await startReplayServer({ frames: from(frames), speed: 2, renumber: true, clock });
    const ws = new WebSocket(server.url);
    const arrivals: number[] = [];
    ws.on('message', (d) => arrivals.push(JSON.parse(d.toString()).sequence_num));
    await new Promise((r) => ws.once('open', r));
    ws.send('{"type":"subscribe"}');
    await until('the first frame', () => server.sent === 1);
    const sentAt = async (ms: number) => {
      await clock.advanceTo(ms);
      return server.sent;
    };
    expect(await sentAt(49)).toBe(1);
    expect(await sentAt(50)).toBe(2);
    expect(await sentAt(199)).toBe(2);
    expect(await sentAt(200)).toBe(3);
    expect(await server.done).toBe(3);
    await until('every frame received', () => arrivals.length === 3);
    ws.close();
    await server.close();
    expect(arrivals).toEqual([0, 1, 2]);
  });
});

describe('replay through the ingest path into Kinesis', () => {
  it('a ticker-only volatility recording flows end to end: every ticker decoded from the stream', async () => {
    const path = join(dir, 'tickers.ndjson');
    const expected = tickerFixture(path, 60);
    const session = `replay${Date.now().toString(36)}`;
    const summary = await runReplay({ path, speed: 'max', env: local.env, log: quiet, session, lingerMs: 5 });
    expect(summary).toMatchObject({
      format: 'volatility',
      products: ['BTC-USD', 'ETH-USD'],
      sent: 60,
      handled: 60,
    });
    expect(summary.malformed).toBe(0);
    expect(summary.resyncs).toBe(1); // the connect only: renumbered, the extract has no gaps

    const records = await readStream(kinesisClient(local.env), STREAM.localName);
    const mine = records.filter((r) => r.line === session).flatMap((r) => r.events);
    const tickers = mine.filter((e): e is Extract<StreamEvent, { type: 'ticker' }> => e.type === 'ticker');
    for (const product of ['BTC-USD', 'ETH-USD']) {
      expect(
        tickers
          .filter((t) => t.product === product)
          .map((t) => ({ product: t.product, price: t.price, bestBid: t.bestBid, bestAsk: t.bestAsk })),
      ).toEqual(expected.filter((e) => e.product === product));
    }
  });

  itCapture(
    'advancedTrade',
    'quotewatch replay CLI: the real Advanced Trade capture at full speed, snapshots by claim-check',
    async ({ path }) => {
      const { stdout } = await promisify(execFile)(
        process.execPath,
        ['--import', 'tsx', cli, 'replay', path, '--speed', 'max'],
        { env: { ...process.env, ...local.env } },
      );
      const line = stdout.split('\n').find((l) => l.startsWith('[replay] '));
      const summary = JSON.parse(line!.slice('[replay] '.length)) as Awaited<ReturnType<typeof runReplay>>;
      expect(summary).toMatchObject({
        format: 'cryptofeed',
        sent: 1030,
        handled: 1030,
        malformed: 0,
        resyncs: 1,
      });
      const records = await readStream(kinesisClient(local.env), STREAM.localName);
      const refs = records
        .filter((r) => r.line === summary.session)
        .flatMap((r) => r.events)
        .filter((e): e is Extract<StreamEvent, { type: 'snapshot_ref' }> => e.type === 'snapshot_ref');
      // A replay publishes in its own id namespace.
      expect(refs.every((r) => r.id.startsWith(`${summary.namespace}/`))).toBe(true);
      // BTC-USD's snapshot is the ~5 MB frame with ~46k levels: far over a record, so it went to S3.
      const exchange = refs.filter((r) => r.source === 'exchange');
      expect(exchange.map((r) => r.product).sort()).toEqual(['BTC-USD', 'ETH-USD']);
      // Periodic snapshots follow the capture's exchange time: one round per 30 s boundary it crosses, as live.
      const frames: { timestamp?: string }[] = [];
      for await (const f of readRecording(path)) frames.push(JSON.parse(f.frame));
      const stamps = frames.flatMap((f) => (f.timestamp ? [Date.parse(f.timestamp)] : []));
      const boundaries = Math.floor(Math.max(...stamps) / 30_000) - Math.floor(Math.min(...stamps) / 30_000);
      const rounds = refs.filter((r) => r.source === 'periodic' && r.product === 'BTC-USD');
      expect(rounds).toHaveLength(boundaries);
      expect(Math.max(...refs.map((r) => (r as { levels: number }).levels))).toBeGreaterThan(40_000);
    },
    30_000,
  );

  itCapture(
    'exchange',
    'the legacy Exchange capture replays through the Exchange mapper: ten books by claim-check, no malformed frame',
    async ({ path }) => {
      const session = `replayx${Date.now().toString(36)}`;
      const summary = await runReplay({
        path,
        speed: 'max',
        env: local.env,
        log: quiet,
        session,
        lingerMs: 5,
      });
      expect(summary).toMatchObject({ format: 'exchange', sent: 9946, handled: 9946, malformed: 0 });
      expect(summary.products).toHaveLength(10);
      const records = await readStream(kinesisClient(local.env), STREAM.localName);
      const mine = records.filter((r) => r.line === session).flatMap((r) => r.events);
      const refs = mine.filter((e) => e.type === 'snapshot_ref');
      expect(new Set(refs.map((r) => r.product))).toEqual(new Set(summary.products));
      expect(mine.filter((e) => e.type === 'book_changes').length).toBeGreaterThan(1000);
    },
    30_000,
  );

  it('the CLI rejects a bad speed or format with exit code 2', async () => {
    for (const args of [
      ['--speed', '0'],
      ['--format', 'csv'],
    ]) {
      const err = (await promisify(execFile)(process.execPath, [
        '--import',
        'tsx',
        cli,
        'replay',
        'x',
        ...args,
      ]).catch((e: unknown) => e)) as { code: number; stderr: string };
      expect(err.code).toBe(2);
      expect(err.stderr).toContain('usage: quotewatch replay FILE');
    }
  });
});
