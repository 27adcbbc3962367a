import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { OrderBook } from '../src/book/book.js';
import { type ArchivedFrame, FileArchive } from '../src/ingest/archive.js';
import type { Logger } from '../src/log.js';
import { readRecording } from '../src/replay/readers.js';
import { runReplay } from '../src/replay/replay.js';
import type { StreamEvent } from '../src/stream/record.js';
import {
  eventsOf,
  fullBook,
  loadRef,
  localIngestor,
  PRODUCTS,
  startTwoProductSimulator,
} from './support/ingest.js';
import { tempDataDir, withEmulators } from './support/system.js';
import { until } from './support/until.js';

// Live: simulator -> ingestor (with a raw file archive) -> kinesalite/s3rver. Then the archive goes through
// `quotewatch replay` (runReplay) into the same stream under another session, and both sessions must hold the
// same events, periodic snapshots included (they follow exchange time, so the replay's speed does not matter).
const local = withEmulators({ provision: true });
const dir = tempDataDir('qw-ingest-archive-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SNAPSHOT_INTERVAL_MS = 1000;
const quiet: Logger = () => {};

/** One session's events per product, without what differs between two runs by nature. */
async function sessionEvents(session: string) {
  const byProduct = new Map<string, StreamEvent[]>();
  for (const product of PRODUCTS) byProduct.set(product, await eventsOf(local.env, session, product));
  const comparable = (e: StreamEvent) => {
    // Receive times are the wall clock of each run; a resync is stamped with it; a replay has a namespace of
    // its own, and the ids of a connection's own facts (resyncs, its snapshots) name its session.
    const { id, recvUs: _r, ...rest } = e;
    const out: Record<string, unknown> = {
      ...rest,
      id: id.slice(id.indexOf('/') + 1).replace(session, '<line>'),
    };
    if (out.type === 'resync') delete out.exchUs;
    if (out.type === 'snapshot_ref') delete out.key;
    return out;
  };
  return { byProduct, comparable: (p: string) => byProduct.get(p)!.map(comparable) };
}

/** The book rebuilt from a session's events: after every snapshot_ref (its content) and at the end. */
async function books(events: StreamEvent[], product: string) {
  const book = new OrderBook(product);
  const atRefs: ReturnType<typeof fullBook>[] = [];
  for (const e of events) {
    if (e.type === 'snapshot_ref') {
      const { bids, asks } = await loadRef(local.env, e);
      book.applySnapshot(bids, asks);
      atRefs.push(fullBook(book));
    }
    if (e.type === 'book_changes') for (const c of e.changes) book.applyChange(c.side, c.price, c.size);
  }
  return { atRefs, end: fullBook(book) };
}

describe('raw archive and replay', () => {
  it('archives every frame the ingestor handles, and replaying the archive reproduces the same stream', async () => {
    const sim = await startTwoProductSimulator(11, 50);
    const path = join(dir, 'live.ndjson.gz');
    const archive = new FileArchive(path);
    const session = `al${Math.random().toString(36).slice(2, 8)}`;
    const ingestor = localIngestor(local.env, {
      feedUrl: sim.url,
      log: quiet,
      session,
      archive,
      snapshotIntervalMs: SNAPSHOT_INTERVAL_MS,
    });
    try {
      ingestor.start();
      await until('periodic snapshots', () => ingestor.counters.periodicSnapshots >= 3);
      await ingestor.stop(); // also closes (flushes) the archive
    } finally {
      await ingestor.stop();
      await sim.close();
    }

    // Every handled frame is in the archive, in order, under this connection's id.
    const frames: ArchivedFrame[] = [];
    for await (const f of readRecording(path)) frames.push(f);
    expect(archive.frames).toBe(ingestor.counters.frames);
    expect(frames).toHaveLength(ingestor.counters.frames);
    expect(new Set(frames.map((f) => f.conn))).toEqual(new Set([`${session}.0`]));
    expect(frames.every((f, i) => i === 0 || f.recvUs >= frames[i - 1]!.recvUs)).toBe(true);
    const seqs = frames.flatMap((f) => {
      const s = (JSON.parse(f.frame) as { sequence_num?: number }).sequence_num;
      return s === undefined ? [] : [s];
    });
    expect(seqs).toEqual([...seqs.keys()].map((i) => seqs[0]! + i)); // no frame missing

    const replaySession = `ar${Math.random().toString(36).slice(2, 8)}`;
    const summary = await runReplay({
      path,
      speed: 'max',
      env: local.env,
      log: quiet,
      session: replaySession,
      lingerMs: 5,
      snapshotIntervalMs: SNAPSHOT_INTERVAL_MS,
    });
    expect(summary).toMatchObject({ format: 'archive', products: PRODUCTS, malformed: 0, resyncs: 1 });
    expect(summary.sent).toBe(frames.length);
    expect(summary.handled).toBe(frames.length);

    const live = await sessionEvents(session);
    const replayed = await sessionEvents(replaySession);
    for (const product of PRODUCTS) {
      const events = live.byProduct.get(product)!;
      const periodic = events.filter((e) => e.type === 'snapshot_ref' && e.source === 'periodic');
      expect(periodic.length).toBeGreaterThanOrEqual(2);
      expect(events.filter((e) => e.type === 'book_changes').length).toBeGreaterThan(10);
      // Same events in the same order with the same event ids (after the session), periodic refs at the same
      // places: a wall-clock snapshot timer would put them elsewhere in a replay at full speed.
      expect(replayed.comparable(product)).toEqual(live.comparable(product));
      const liveBooks = await books(events, product);
      const replayBooks = await books(replayed.byProduct.get(product)!, product);
      expect(replayBooks).toEqual(liveBooks);
      expect(liveBooks.end.bids.length).toBeGreaterThan(10);
    }
  }, 60_000);
});
