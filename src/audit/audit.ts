/**
 * The exactly-once audit (`quotewatch audit`, and the chaos run's and tests' helper): compares what the exchange
 * simulator says it sent (its NDJSON log, SIM_LOG: every frame of every connection, lost ones included) with what
 * the system kept — the market stream, the lake's four zones, the latest table — per product:
 * - trades and level changes: sent (distinct, over every connection), accepted (distinct in the stream), stored
 *   (the raw zone), DUPLICATED in the lake, LOST (sent, not stored) and of those the UNEXPLAINED ones: accepted
 *   (the stream had them: nothing accepted may be lost), or with no resync stored between the missing event's
 *   stored neighbours (a gap on the feed is explained only where the system said it lost data). One exception for
 *   an accepted level change, SUPERSEDED: with two lines, one line's copy can reach the stream only after the book
 *   was already rebuilt, after a resync, from the other line's snapshot taken later than the change (a book
 *   change is an absolute size: the snapshot holds its effect, applied after it would take the level back in
 *   time). It is not lost when a stored resync and then a stored snapshot at or after its time lie between its
 *   stored neighbours, and every copy of it came later in the stream than everything stored up to that snapshot;
 * - ticks: the features zone's ticks without holes or repeats, one label per tick and target at most, one
 *   prediction per tick and target (model);
 * - the book: every feature row's best bid and ask equal the exchange's book after its last book event at or
 *   before the row's `seq` (rebuilt from the log with the production mapper and book), and so does the latest item.
 * Only what happened while the system ran is judged: sent events before the first event accepted (of any product)
 * or after the product's last stored one are counted as `outside`, not lost.
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { GetRecordsCommand, GetShardIteratorCommand, ListShardsCommand } from '@aws-sdk/client-kinesis';
import { dynamoClient, kinesisClient, s3Client } from '../aws/clients.js';
import { OrderBook } from '../book/book.js';
import { readCoreConfig, readResourceNames } from '../config.js';

type Env = Record<string, string | undefined>;

import { QuoteWatchError } from '../errors.js';
import { mapAdvancedTradeFrame } from '../marketdata/advancedTrade.js';
import type { LevelChange, MarketEvent } from '../marketdata/events.js';
import { mapExchangeFrame } from '../marketdata/exchange.js';
import { readLakeZone } from '../storage/lakeReader.js';
import { getLatest } from '../storage/latest.js';
import {
  decodeFeatureRows,
  decodeLabelRows,
  decodePredictionRows,
  decodeRawRows,
  type RawRow,
} from '../storage/parquet.js';
import { decodeRecord, levelKey, type StreamEvent } from '../stream/record.js';

export class AuditError extends QuoteWatchError {}

/** Counts of one kind of market event (trades, or level changes) of one product. */
export interface EventAudit {
  sent: number;
  /** Distinct in the stream (any number of copies: lines, retries). */
  accepted: number;
  /** Distinct in the raw zone. */
  stored: number;
  /** Raw rows beyond the first of the same event. */
  duplicated: number;
  /** Sent within the stored time range, never stored. */
  lost: number;
  /** Lost although the stream had them: the system dropped what it had accepted. */
  lostAccepted: number;
  /**
   * Level changes lost although the stream had them, which reached it only after the book had been rebuilt (after
   * a stored resync) from a snapshot at or after their time: not lost, their effect is in that snapshot (see the
   * module comment). Trades: always 0.
   */
  superseded: number;
  /** Lost on the feed (never accepted) with no resync stored between their stored neighbours. */
  unexplained: number;
  /** Stored but never sent. */
  invented: number;
  /** Sent outside the stored time range (before the system started or after it stopped): not judged. */
  outside: number;
  /** Exchange µs of the first loss that is accepted or unexplained (where to look). */
  firstUnexplainedUs?: number;
  /** The first few of those: key and exchange time. */
  examples?: string[];
}

export interface ProductAudit {
  product: string;
  trades: EventAudit;
  levelChanges: EventAudit;
  /** Resyncs the worker passed on (stored in the raw zone): where the book was rebuilt. */
  resyncs: number;
  /** Holes: ticks missing between the first and the last written; unexplained: with no stored resync in them. */
  ticks: { written: number; holes: number; unexplainedHoles: number; repeated: number; firstHoleUs?: number };
  labels: { repeated: number };
  predictions: { expected: number; written: number; missing: number; repeated: number };
  book: { checked: number; mismatches: number; firstMismatch?: string };
  latest: { present: boolean; matches: boolean | undefined };
}

export interface AuditReport {
  products: ProductAudit[];
  /** Stream records read, and records that did not decode. */
  stream: { records: number; undecodable: number };
  /** Nothing lost without a resync, nothing duplicated or invented, every tick once and scored, books equal. */
  clean: boolean;
  problems: string[];
}

export interface AuditOptions {
  /** The simulator's log (SIM_LOG). */
  simLog: string;
  /** Endpoints and resource names (src/config.ts readers); default process.env. */
  env?: Env;
  products?: readonly string[];
  /** Targets the worker scores (one prediction per tick each). */
  targets: readonly string[];
}

export interface Sent {
  trades: Map<string, number>; // trade id -> exchange µs
  levels: Map<string, number>; // levelKey -> exchange µs
  /** Top of book after each book event, in exchange time, from every connection. */
  tops: { us: number; bid: string; ask: string }[];
}

/**
 * What the exchange sent, from its log: per connection, frames through the production mapper of the connection's
 * protocol (an Exchange frame is `{"type"}`, an Advanced Trade one `{"channel"}`) and book. An Exchange snapshot has
 * no time of its own: it stands at the newest exchange time its connection had sent (as the ingestor places it).
 */
export async function readSimulatorLog(path: string): Promise<Map<string, Sent>> {
  const byProduct = new Map<string, Sent>();
  const sent = (p: string) => {
    let s = byProduct.get(p);
    if (!s) {
      s = { trades: new Map(), levels: new Map(), tops: [] };
      byProduct.set(p, s);
    }
    return s;
  };
  const books = new Map<string, OrderBook>(); // `${conn} ${product}`
  const connUs = new Map<number, number>(); // the newest exchange time each connection sent
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Number.POSITIVE_INFINITY });
  let n = 0;
  for await (const line of lines) {
    n++;
    if (!line.includes('"frame":')) continue; // hostile and broken frames carry no market data
    let entry: { conn: number; frame: unknown };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch (cause) {
      throw new AuditError(`${path}:${n}: not a simulator log line`, { cause });
    }
    let events: MarketEvent[];
    const frame = entry.frame as Record<string, unknown> | null;
    try {
      events =
        frame && typeof frame === 'object' && 'type' in frame && !('channel' in frame)
          ? mapExchangeFrame(JSON.stringify(frame), connUs.get(entry.conn) ?? 0).events
          : mapAdvancedTradeFrame(JSON.stringify(frame), 0).events;
    } catch {
      continue; // an error frame, or a hostile one in sequence: nothing the market did
    }
    for (const e of events) {
      if (e.type !== 'book_snapshot') connUs.set(entry.conn, Math.max(connUs.get(entry.conn) ?? 0, e.exchUs));
      const s = sent(e.product);
      const key = `${entry.conn} ${e.product}`;
      if (e.type === 'trade') s.trades.set(e.tradeId, e.exchUs);
      if (e.type !== 'book_snapshot' && e.type !== 'book_changes') continue;
      let book = books.get(key);
      if (!book) {
        book = new OrderBook(e.product);
        books.set(key, book);
      }
      if (e.type === 'book_snapshot') book.applySnapshot(e.bids, e.asks);
      else {
        for (const c of e.changes) {
          book.applyChange(c.side, c.price, c.size);
          s.levels.set(levelKey(e.product, c, e.exchUs), e.exchUs);
        }
      }
      const [bid] = book.top('bid', 1);
      const [ask] = book.top('ask', 1);
      if (bid && ask) s.tops.push({ us: e.exchUs, bid: bid[0], ask: ask[0] });
    }
  }
  for (const s of byProduct.values()) s.tops.sort((a, b) => a.us - b.us);
  return byProduct;
}

/** The exchange's top of book after its last book event at or before `us`. */
function topAt(tops: Sent['tops'], us: number): { bid: string; ask: string } | undefined {
  let lo = 0;
  let hi = tops.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (tops[mid]!.us <= us) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  // Several connections report the same instant; the last of them at that time is the book after it.
  return found < 0 ? undefined : tops[found];
}

const sameDecimal = (a: string, b: string) => Number(a) === Number(b);

/** A stream event and the Kinesis sequence number of its record (products keep to one shard: comparable). */
export interface Accepted {
  event: StreamEvent;
  record: bigint;
}

/** Every record of every shard of the stream, from the trim horizon to the tip (an empty page is not the tip). */
export async function readStream(
  env: Env,
): Promise<{ events: Accepted[]; records: number; undecodable: number }> {
  const kinesis = kinesisClient(env);
  const { streamName } = readResourceNames(env);
  const shards = (await kinesis.send(new ListShardsCommand({ StreamName: streamName }))).Shards ?? [];
  const events: Accepted[] = [];
  let records = 0;
  let undecodable = 0;
  for (const shard of shards) {
    let it = (
      await kinesis.send(
        new GetShardIteratorCommand({
          StreamName: streamName,
          ShardId: shard.ShardId!,
          ShardIteratorType: 'TRIM_HORIZON',
        }),
      )
    ).ShardIterator;
    while (it) {
      const page = await kinesis.send(new GetRecordsCommand({ ShardIterator: it, Limit: 10_000 }));
      for (const r of page.Records ?? []) {
        records++;
        try {
          const record = recordNumber(r.SequenceNumber!);
          for (const event of decodeRecord(r.Data!).events) events.push({ event, record });
        } catch {
          undecodable++;
        }
      }
      if ((page.Records ?? []).length === 0 && (page.MillisBehindLatest ?? 0) === 0) break;
      it = page.NextShardIterator;
    }
  }
  return { events, records, undecodable };
}

function emptyAudit(): EventAudit {
  return {
    sent: 0,
    accepted: 0,
    stored: 0,
    duplicated: 0,
    lost: 0,
    lostAccepted: 0,
    superseded: 0,
    unexplained: 0,
    invented: 0,
    outside: 0,
  };
}

/** Runs the audit. */
export async function audit(options: AuditOptions): Promise<AuditReport> {
  const env = options.env ?? process.env;
  const { lakeBucket, latestTable } = readResourceNames(env);
  const { tickMs, symbols } = readCoreConfig(env);
  const products = options.products ?? symbols;
  const s3 = s3Client(env);
  const [sentBy, stream] = await Promise.all([readSimulatorLog(options.simLog), readStream(env)]);
  const zone = <T>(
    kind: 'raw' | 'features' | 'labels' | 'predictions',
    decode: (b: Uint8Array) => Promise<T[]>,
  ) => readLakeZone(s3, lakeBucket, kind, decode);
  const raw = await zone('raw', decodeRawRows);
  const features = await zone('features', async (b) => (await decodeFeatureRows(b)).rows);
  const labels = await zone('labels', decodeLabelRows);
  const predictions = await zone('predictions', decodePredictionRows);

  // The system started at its first accepted market event (in the stream), whichever the product: a product or a
  // lake window whose first minutes are missing is judged from there too.
  let firstAcceptedUs = Number.POSITIVE_INFINITY;
  for (const { event: e } of stream.events) {
    if (e.type === 'trade' || e.type === 'book_changes')
      firstAcceptedUs = Math.min(firstAcceptedUs, e.exchUs);
  }
  const report: ProductAudit[] = [];
  for (const product of products) {
    const sent = sentBy.get(product) ?? { trades: new Map(), levels: new Map(), tops: [] };
    const rows = raw.filter((r) => r.product === product);
    const p: ProductAudit = {
      product,
      trades: emptyAudit(),
      levelChanges: emptyAudit(),
      resyncs: rows.filter((r) => r.type === 'resync').length,
      ticks: { written: 0, holes: 0, unexplainedHoles: 0, repeated: 0 },
      labels: { repeated: 0 },
      predictions: { expected: 0, written: 0, missing: 0, repeated: 0 },
      book: { checked: 0, mismatches: 0 },
      latest: { present: false, matches: undefined },
    };

    const judged = judgeEvents(product, sent, stream.events, rows, firstAcceptedUs);
    p.trades = judged.trades;
    p.levelChanges = judged.levelChanges;

    // Ticks, labels, predictions.
    const fr = features.filter((r) => r.product === product).sort((a, b) => a.tsUs - b.tsUs);
    const ticks = new Set(fr.map((r) => r.tsUs));
    p.ticks.written = ticks.size;
    p.ticks.repeated = fr.length - ticks.size;
    if (fr.length > 0) {
      const span = (fr[fr.length - 1]!.tsUs - fr[0]!.tsUs) / (tickMs * 1000) + 1;
      p.ticks.holes = span - ticks.size;
      // A hole is explained by a resync stored within it: the book was being rebuilt, no row could be computed.
      const resyncUs = rows.filter((r) => r.type === 'resync').map((r) => r.exchUs);
      for (let i = 1; i < fr.length; i++) {
        const [a, b] = [fr[i - 1]!.tsUs, fr[i]!.tsUs];
        if (b - a <= tickMs * 1000) continue;
        if (resyncUs.some((us) => us >= a - tickMs * 1000 && us <= b)) continue;
        p.ticks.unexplainedHoles += (b - a) / (tickMs * 1000) - 1;
        p.ticks.firstHoleUs ??= a + tickMs * 1000;
      }
    }
    const labelKeys = labels.filter((l) => l.product === product).map((l) => `${l.tsUs} ${l.target}`);
    p.labels.repeated = labelKeys.length - new Set(labelKeys).size;
    const predKeys = predictions.filter((x) => x.product === product).map((x) => `${x.tsUs} ${x.target}`);
    const predSet = new Set(predKeys);
    p.predictions.expected = ticks.size * options.targets.length;
    p.predictions.written = predSet.size;
    p.predictions.repeated = predKeys.length - predSet.size;
    for (const t of ticks)
      for (const target of options.targets) if (!predSet.has(`${t} ${target}`)) p.predictions.missing++;

    // The book at every feature row, and in the latest item.
    for (const r of fr) {
      const top = topAt(sent.tops, r.seq);
      if (!top) continue;
      p.book.checked++;
      if (!sameDecimal(top.bid, r.bestBid) || !sameDecimal(top.ask, r.bestAsk)) {
        p.book.mismatches++;
        p.book.firstMismatch ??= `tick ${r.tsUs} seq ${r.seq}: stored ${r.bestBid}/${r.bestAsk}, exchange ${top.bid}/${top.ask}`;
      }
    }
    const latest = await getLatest(product, { client: dynamoClient(env), table: latestTable });
    if (latest) {
      const top = topAt(sent.tops, latest.seq);
      p.latest = {
        present: true,
        matches: top
          ? sameDecimal(top.bid, latest.bestBid) && sameDecimal(top.ask, latest.bestAsk)
          : undefined,
      };
    }
    report.push(p);
  }

  const problems: string[] = [];
  for (const p of report) {
    for (const kind of ['trades', 'levelChanges'] as const) {
      const a = p[kind];
      if (a.duplicated) problems.push(`${p.product}: ${a.duplicated} ${kind} duplicated in the lake`);
      if (a.lostAccepted)
        problems.push(`${p.product}: ${a.lostAccepted} ${kind} accepted by the stream, not stored`);
      if (a.unexplained) {
        const at = new Date((a.firstUnexplainedUs ?? 0) / 1000).toISOString();
        problems.push(`${p.product}: ${a.unexplained} ${kind} lost with no resync (the first at ${at})`);
      }
      if (a.invented) problems.push(`${p.product}: ${a.invented} ${kind} stored but never sent`);
    }
    if (p.ticks.unexplainedHoles || p.ticks.repeated)
      problems.push(
        `${p.product}: ticks with ${p.ticks.unexplainedHoles} holes no resync explains (the first at ${new Date((p.ticks.firstHoleUs ?? 0) / 1000).toISOString()}), ${p.ticks.repeated} repeated`,
      );
    if (p.labels.repeated) problems.push(`${p.product}: ${p.labels.repeated} labels repeated`);
    if (p.predictions.missing || p.predictions.repeated)
      problems.push(
        `${p.product}: predictions ${p.predictions.missing} missing, ${p.predictions.repeated} repeated`,
      );
    if (p.book.mismatches)
      problems.push(`${p.product}: ${p.book.mismatches} books differ (${p.book.firstMismatch})`);
    if (p.latest.matches === false)
      problems.push(`${p.product}: the latest item's book differs from the exchange's`);
  }
  return {
    products: report,
    stream: { records: stream.records, undecodable: stream.undecodable },
    clean: problems.length === 0,
    problems,
  };
}

/**
 * Trades and level changes of one product: what the exchange sent, what the stream accepted (each event with its
 * record) and the product's raw rows, objects in any order; `fromUs`: the system's first accepted event.
 */
export function judgeEvents(
  product: string,
  sent: Pick<Sent, 'trades' | 'levels'>,
  stream: readonly Accepted[],
  rows: readonly RawRow[],
  fromUs: number,
): { trades: EventAudit; levelChanges: EventAudit } {
  // Stored events with their raw-zone position; accepted ones from the stream.
  const storedTrades = new Map<string, { us: number; at: number[] }>();
  const storedLevels = new Map<string, { us: number; at: number[] }>();
  const resyncAt: number[] = [];
  const breaks: Break[] = [];
  let throughRecord = 0n;
  // In the order the worker applied them: lake objects are listed by name, not by window, and a row's stream time
  // never goes back (a stable sort keeps each object's order).
  [...rows]
    .sort((a, b) => a.tsUs - b.tsUs)
    .forEach((r, i) => {
      const e = JSON.parse(r.event) as StreamEvent;
      throughRecord = maxBig(throughRecord, recordNumber(r.record));
      if (e.type === 'resync') {
        resyncAt.push(i);
        breaks.push({ resyncAt: i, snapshotAt: Number.POSITIVE_INFINITY, snapshotUs: 0, throughRecord: 0n });
      }
      const open = breaks.at(-1);
      if (
        (e.type === 'snapshot_ref' || e.type === 'book_snapshot') &&
        open?.snapshotAt === Number.POSITIVE_INFINITY
      )
        Object.assign(open, { snapshotAt: i, snapshotUs: e.exchUs, throughRecord });
      if (e.type === 'trade') note(storedTrades, e.tradeId, e.exchUs, i);
      if (e.type === 'book_changes') {
        for (const c of e.changes as LevelChange[])
          note(storedLevels, levelKey(product, c, e.exchUs), e.exchUs, i);
      }
    });
  // Accepted: the first record that carried each (trades are never superseded: first record "never").
  const acceptedTrades = new Map<string, bigint>();
  const acceptedLevels = new Map<string, bigint>();
  for (const { event: e, record } of stream) {
    if (e.product !== product) continue;
    if (e.type === 'trade') acceptedTrades.set(e.tradeId, 0n);
    if (e.type === 'book_changes')
      for (const c of e.changes) {
        const key = levelKey(product, c, e.exchUs);
        const first = acceptedLevels.get(key);
        if (first === undefined || record < first) acceptedLevels.set(key, record);
      }
  }
  const trades = emptyAudit();
  const levelChanges = emptyAudit();
  judge(trades, sent.trades, acceptedTrades, storedTrades, resyncAt, [], fromUs);
  judge(levelChanges, sent.levels, acceptedLevels, storedLevels, resyncAt, breaks, fromUs);
  return { trades, levelChanges };
}

/** A resync stored at raw position `resyncAt`, and the first snapshot stored after it (if any). */
interface Break {
  resyncAt: number;
  snapshotAt: number;
  snapshotUs: number;
  /** The newest record of what was stored up to that snapshot: the stream had reached at least this far. */
  throughRecord: bigint;
}

const maxBig = (a: bigint, b: bigint) => (a > b ? a : b);
/** A Kinesis sequence number as a number (0 for a row not read from Kinesis). */
const recordNumber = (record: string) => (/^\d+$/.test(record) ? BigInt(record) : 0n);

function note(m: Map<string, { us: number; at: number[] }>, key: string, us: number, at: number): void {
  const had = m.get(key);
  if (had) had.at.push(at);
  else m.set(key, { us, at: [at] });
}

/**
 * Fills `a` from what was sent, accepted and stored. A lost event is explained when a stored resync lies between
 * its stored neighbours in exchange time (in raw-zone order): the system said it lost data there. An accepted one
 * (`accepted`: the first record that carried it) is superseded when one of `breaks` between its neighbours was
 * rebuilt from a snapshot at or after its time before any copy of it reached the stream (module comment).
 */
function judge(
  a: EventAudit,
  sent: Map<string, number>,
  accepted: Map<string, bigint>,
  stored: Map<string, { us: number; at: number[] }>,
  resyncAt: readonly number[],
  breaks: readonly Break[],
  from: number,
): void {
  const byTime = [...stored.values()].sort((x, y) => x.us - y.us);
  const to = byTime[byTime.length - 1]?.us ?? Number.NEGATIVE_INFINITY;
  a.stored = stored.size;
  for (const s of stored.values()) a.duplicated += s.at.length - 1;
  for (const key of stored.keys()) if (!sent.has(key)) a.invented++;
  for (const key of accepted.keys()) if (sent.has(key)) a.accepted++;
  for (const [key, us] of sent) {
    if (us < from || us > to) {
      a.outside++;
      continue;
    }
    a.sent++;
    if (stored.has(key)) continue;
    a.lost++;
    // Stored neighbours in time: the last at or before, the first after.
    let lo = 0;
    let hi = byTime.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (byTime[mid]!.us <= us) lo = mid + 1;
      else hi = mid;
    }
    const before = byTime[lo - 1]?.at[0] ?? -1;
    const after = byTime[lo]?.at[0] ?? Number.POSITIVE_INFINITY;
    const [min, max] = before < after ? [before, after] : [after, before];
    const firstRecord = accepted.get(key);
    if (firstRecord !== undefined) {
      const superseded = breaks.some(
        (b) => b.resyncAt > min && b.snapshotAt < max && b.snapshotUs >= us && firstRecord > b.throughRecord,
      );
      if (superseded) {
        a.superseded++;
        continue;
      }
      a.lostAccepted++;
    } else if (resyncAt.some((i) => i > min && i < max)) continue;
    else a.unexplained++;
    a.firstUnexplainedUs = Math.min(a.firstUnexplainedUs ?? us, us);
    a.examples ??= [];
    if (a.examples.length < 5) a.examples.push(`${key} at ${new Date(us / 1000).toISOString()}`);
  }
}

/** A one-screen summary of a report. */
export function formatAudit(r: AuditReport): string {
  const lines = [
    `stream: ${r.stream.records} records (${r.stream.undecodable} undecodable)`,
    'product   kind           sent  accepted  stored  dup  lost  lost-accepted  superseded  unexplained  invented  outside',
  ];
  for (const p of r.products) {
    for (const [kind, a] of [
      ['trades', p.trades],
      ['levelChanges', p.levelChanges],
    ] as const) {
      lines.push(
        `${p.product.padEnd(9)} ${kind.padEnd(13)} ${[
          a.sent,
          a.accepted,
          a.stored,
          a.duplicated,
          a.lost,
          a.lostAccepted,
          a.superseded,
          a.unexplained,
          a.invented,
          a.outside,
        ]
          .map((n, i) => String(n).padStart([5, 9, 7, 4, 5, 14, 11, 12, 9, 8][i]!))
          .join(' ')}`,
      );
    }
    lines.push(
      `${p.product.padEnd(9)} resyncs ${p.resyncs}; ticks ${p.ticks.written} (${p.ticks.holes} holes, ${p.ticks.unexplainedHoles} unexplained, ${p.ticks.repeated} repeated); ` +
        `predictions ${p.predictions.written}/${p.predictions.expected}; books ${p.book.checked - p.book.mismatches}/${p.book.checked} equal; ` +
        `latest ${p.latest.present ? (p.latest.matches === false ? 'differs' : 'ok') : 'absent'}`,
    );
  }
  lines.push(
    r.clean ? 'audit: clean' : `audit: ${r.problems.length} problem(s)\n  ${r.problems.join('\n  ')}`,
  );
  return lines.join('\n');
}
