/**
 * The exchange's REST book for a replayed capture (#17): a reference book per product, built from the raw frames
 * the replay server has sent so far by its own simple rules — deliberately NOT the project's book (src/book) or
 * mappers (src/marketdata), so a test comparing the system's verdicts with it checks them against something
 * computed independently — and a loopback HTTP server answering the two book endpoints in the exact shape of the
 * real ones:
 * - Advanced Trade `GET /api/v3/brokerage/market/product_book?product_id=&limit=` (default and most 250 levels):
 *   `{pricebook: {product_id, bids: [{price, size}], asks, time}, last, mid_market, spread_bps, spread_absolute}`;
 * - Exchange `GET /products/{id}/book?level=2`, the whole aggregated book:
 *   `{bids: [[price, size, num_orders]], asks, sequence, time, auction_mode, auction}`.
 *
 * The book is taken when the request comes in (the frames sent by then), its `time` is the exchange's "now" as
 * those frames tell it, and the answer leaves after a seeded 20-300 ms delay, like a real REST answer in flight while
 * the feed goes on. The exchange's now: Advanced Trade stamps every frame with its send time (`timestamp`, never
 * going back in the captures); on the Exchange feed the newest `time` of a book update or a trade (a ticker's may
 * be a minute old: the first ones repeat the last trade's).
 *
 * A product whose snapshot has not been sent yet has no book to give: 503 (the check is unavailable, then retried).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Rng } from '../../src/simulator/rng.js';

export type ReferenceFeed = 'advanced' | 'exchange';

/** One level as the feed last wrote it. */
interface Level {
  price: string;
  size: string;
}

/** A side: normalized price -> the level as last written. */
type Side = Map<string, Level>;

interface Book {
  bids: Side;
  asks: Side;
  /** Exchange: the product's last ticker/match `sequence`. */
  sequence: number;
  /** Advanced Trade: the last trade's price. */
  last: string | undefined;
}

/** "8442.65000000" -> "8442.65", "0050" -> "50", "1.0" -> "1": one spelling per number. */
export function normalizePrice(text: string): string {
  if (!/^\d+(\.\d+)?$/.test(text)) throw new Error(`not a decimal: ${JSON.stringify(text)}`);
  const [int, frac = ''] = text.split('.') as [string, string?];
  const i = int.replace(/^0+(?=\d)/, '');
  const f = frac.replace(/0+$/, '');
  return f ? `${i}.${f}` : i;
}

/** A decimal as an exact integer of 1e-12 units (ordering, arithmetic). */
function units(text: string): bigint {
  const [int, frac = ''] = normalizePrice(text).split('.') as [string, string?];
  return BigInt(int + frac.padEnd(12, '0'));
}

function fromUnits(u: bigint): string {
  const s = u.toString().padStart(13, '0');
  return normalizePrice(`${s.slice(0, -12)}.${s.slice(-12)}`);
}

/** RFC 3339 with up to nanoseconds -> epoch µs (Date.parse keeps only milliseconds). */
export function isoUs(text: string): number {
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$/.exec(text);
  if (!m) throw new Error(`not an RFC 3339 UTC time: ${JSON.stringify(text)}`);
  return Date.parse(`${m[1]}Z`) * 1000 + Number((m[2] ?? '').padEnd(6, '0').slice(0, 6));
}

/** Epoch µs -> "2021-04-17T16:43:37.075687Z" (six fraction digits, as both REST APIs write times). */
export function usIso(us: number): string {
  return `${new Date(Math.floor(us / 1000)).toISOString().slice(0, 19)}.${String(us % 1_000_000).padStart(6, '0')}Z`;
}

const isZero = (size: string) => /^0*(\.0*)?$/.test(size);

/** The reference books of one capture, advanced frame by frame. */
export class ReferenceBooks {
  private readonly books = new Map<string, Book>();
  /** The exchange's now as the frames applied tell it (µs; 0 before any). */
  timeUs = 0;
  /** Frames applied. */
  applied = 0;

  constructor(readonly feed: ReferenceFeed) {}

  /** Applies one raw frame (anything it does not know is skipped: a reference needs only the book). */
  apply(raw: string): void {
    this.applied++;
    const o = JSON.parse(raw) as Record<string, unknown>;
    if (this.feed === 'advanced') this.applyAdvanced(o);
    else this.applyExchange(o);
  }

  /** Products with a book (a snapshot applied). */
  products(): string[] {
    return [...this.books.keys()];
  }

  /** The top `depth` levels of each side of `product`, best first, as last written; undefined without a book. */
  top(product: string, depth: number): { bids: Level[]; asks: Level[] } | undefined {
    const b = this.books.get(product);
    if (!b) return undefined;
    const sorted = (side: Side, descending: boolean) =>
      [...side.values()]
        .map((l) => ({ l, u: units(l.price) }))
        .sort((x, y) => (x.u === y.u ? 0 : x.u < y.u !== descending ? -1 : 1))
        .slice(0, depth)
        .map((x) => x.l);
    return { bids: sorted(b.bids, true), asks: sorted(b.asks, false) };
  }

  book(product: string): Book | undefined {
    return this.books.get(product);
  }

  private fresh(product: string): Book {
    const b: Book = { bids: new Map(), asks: new Map(), sequence: 0, last: this.books.get(product)?.last };
    this.books.set(product, b);
    return b;
  }

  private static set(side: Side, price: string, size: string): void {
    const key = normalizePrice(price);
    if (isZero(size)) side.delete(key);
    else side.set(key, { price, size });
  }

  private applyAdvanced(o: Record<string, unknown>): void {
    if (typeof o.timestamp === 'string') this.timeUs = Math.max(this.timeUs, isoUs(o.timestamp));
    const events = Array.isArray(o.events) ? (o.events as Record<string, unknown>[]) : [];
    if (o.channel === 'market_trades') {
      for (const e of events)
        for (const t of (e.trades as { product_id: string; price: string }[] | undefined) ?? []) {
          const b = this.books.get(t.product_id);
          if (b) b.last = t.price;
        }
    }
    if (o.channel !== 'l2_data') return;
    for (const e of events) {
      const product = e.product_id as string;
      const b = e.type === 'snapshot' ? this.fresh(product) : this.books.get(product);
      if (!b) continue;
      for (const u of e.updates as { side: string; price_level: string; new_quantity: string }[]) {
        ReferenceBooks.set(u.side === 'bid' ? b.bids : b.asks, u.price_level, u.new_quantity);
      }
    }
  }

  private applyExchange(o: Record<string, unknown>): void {
    const product = o.product_id as string;
    if ((o.type === 'l2update' || o.type === 'match') && typeof o.time === 'string')
      this.timeUs = Math.max(this.timeUs, isoUs(o.time));
    if (o.type === 'snapshot') {
      const b = this.fresh(product);
      for (const [price, size] of o.bids as [string, string][]) ReferenceBooks.set(b.bids, price, size);
      for (const [price, size] of o.asks as [string, string][]) ReferenceBooks.set(b.asks, price, size);
      return;
    }
    const b = this.books.get(product);
    if (!b) return;
    if (typeof o.sequence === 'number') b.sequence = Math.max(b.sequence, o.sequence);
    if (o.type === 'l2update') {
      for (const [side, price, size] of o.changes as [string, string, string][])
        ReferenceBooks.set(side === 'buy' ? b.bids : b.asks, price, size);
    }
  }

  /** The REST answer to `url` from the books as they stand (status and JSON body). */
  answer(url: URL): { status: number; body: string; product?: string; levels?: number } {
    const error = (status: number, message: string) => ({
      status,
      body: JSON.stringify({ error: status === 503 ? 'UNAVAILABLE' : 'NOT_FOUND', message }),
    });
    if (this.feed === 'advanced') {
      if (url.pathname !== '/api/v3/brokerage/market/product_book') return error(404, 'no such route');
      const product = url.searchParams.get('product_id') ?? '';
      const limit = Number(url.searchParams.get('limit') ?? '0') || 250;
      const top = this.top(product, Math.min(limit, 250));
      if (!top) return { ...error(503, `no book of ${product} yet`), product };
      const bid = top.bids[0];
      const ask = top.asks[0];
      const b = this.books.get(product)!;
      const spread = bid && ask ? units(ask.price) - units(bid.price) : 0n;
      const mid = bid && ask ? (units(ask.price) + units(bid.price)) / 2n : 0n;
      return {
        status: 200,
        product,
        levels: top.bids.length + top.asks.length,
        body: JSON.stringify({
          pricebook: {
            product_id: product,
            // Advanced Trade writes its REST levels without trailing zeros.
            bids: top.bids.map((l) => ({ price: normalizePrice(l.price), size: normalizePrice(l.size) })),
            asks: top.asks.map((l) => ({ price: normalizePrice(l.price), size: normalizePrice(l.size) })),
            time: usIso(this.timeUs),
          },
          last: b.last ?? '0',
          mid_market: fromUnits(mid),
          spread_bps: mid > 0n ? String(Number((spread * 10_000_000_000n) / mid) / 1e6) : '0',
          spread_absolute: fromUnits(spread),
        }),
      };
    }
    const m = /^\/products\/([^/]+)\/book$/.exec(url.pathname);
    if (!m) return error(404, 'NotFound');
    const product = decodeURIComponent(m[1]!);
    if (url.searchParams.get('level') !== '2') return { ...error(400, 'level 2 only here'), product };
    const top = this.top(product, Number.POSITIVE_INFINITY);
    if (!top) return { ...error(503, `no book of ${product} yet`), product };
    // The Exchange writes levels as its feed does (trailing zeros and all), with the count of orders.
    const levels = (side: Level[]) => side.map((l) => [l.price, l.size, 1]);
    return {
      status: 200,
      product,
      levels: top.bids.length + top.asks.length,
      body: JSON.stringify({
        bids: levels(top.bids),
        asks: levels(top.asks),
        sequence: this.books.get(product)!.sequence,
        auction_mode: false,
        auction: null,
        time: usIso(this.timeUs),
      }),
    };
  }
}

/** One REST request the reference server answered. */
export interface ReferenceRequest {
  product: string | undefined;
  status: number;
  /** The book's time (the exchange's now when the request came in), µs. */
  timeUs: number;
  /** Frames sent when the request came in (the book's) and when its answer left. */
  sentAtRequest: number;
  sentAtAnswer: number;
  levels: number;
  delayMs: number;
}

export interface ReferenceServer {
  /** The REST base (BOOK_REST_URL). */
  url: string;
  readonly requests: readonly ReferenceRequest[];
  close(): Promise<void>;
}

/**
 * Serves `books` over loopback HTTP: each request first brings the books up to the frames sent so far
 * (`frames.slice(0, sent())`), takes its answer there, and sends it after a seeded 20-300 ms.
 */
export async function startReferenceServer(o: {
  books: ReferenceBooks;
  frames: readonly { frame: string }[];
  sent: () => number;
  seed: number;
}): Promise<ReferenceServer> {
  const rng = new Rng(o.seed);
  const requests: ReferenceRequest[] = [];
  const timers = new Set<NodeJS.Timeout>();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const sentAtRequest = o.sent();
    while (o.books.applied < sentAtRequest) o.books.apply(o.frames[o.books.applied]!.frame);
    const a = o.books.answer(new URL(req.url ?? '/', 'http://reference'));
    const delayMs = 20 + rng.int(281);
    const r: ReferenceRequest = {
      product: a.product,
      status: a.status,
      timeUs: o.books.timeUs,
      sentAtRequest,
      sentAtAnswer: sentAtRequest,
      levels: a.levels ?? 0,
      delayMs,
    };
    requests.push(r);
    const timer = setTimeout(() => {
      timers.delete(timer);
      r.sentAtAnswer = o.sent();
      res.writeHead(a.status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(a.body);
    }, delayMs);
    timers.add(timer);
  };
  const server: Server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
