import { describe, expect, it } from 'vitest';
import { OrderBook } from '../src/book/book.js';
import { FeedError, MalformedFrameError } from '../src/marketdata/advancedTrade.js';
import { fromUnits, normalizeDecimal, toUnits } from '../src/marketdata/decimal.js';
import type { MarketEvent } from '../src/marketdata/events.js';
import { exchangeSubscribeMessage, mapExchangeFrame } from '../src/marketdata/exchange.js';
import { describeCapture, receivedFrames } from './support/captures.js';

const RECV = 1_618_677_817_000_000;
const one = (frame: unknown) => mapExchangeFrame(JSON.stringify(frame), RECV).events;

describe('mapExchangeFrame', () => {
  it('maps a level2 snapshot and l2update, normalizing prices and sizes', () => {
    const [snap] = one({
      type: 'snapshot',
      product_id: 'BTC-USD',
      bids: [['8442.65000000', '1.50000000']],
      asks: [['8443.1', '0.2']],
    });
    expect(snap).toEqual({
      type: 'book_snapshot',
      product: 'BTC-USD',
      exchUs: RECV, // a snapshot has no time: the receive time stands in, and the frame says so
      recvUs: RECV,
      seq: -1,
      bids: [['8442.65', '1.5']],
      asks: [['8443.1', '0.2']],
    });
    const snapshot = { type: 'snapshot', product_id: 'BTC-USD', bids: [], asks: [] };
    expect(mapExchangeFrame(JSON.stringify(snapshot), RECV).untimedSnapshot).toBe(true);
    // One with a time of its own is timed by it; other frames are never untimed snapshots.
    const timed = mapExchangeFrame(
      JSON.stringify({ ...snapshot, time: '2021-04-17T16:43:37.075687Z' }),
      RECV,
    );
    expect(timed.untimedSnapshot).toBeUndefined();
    expect(timed.events[0]!.exchUs).toBe(Date.UTC(2021, 3, 17, 16, 43, 37) * 1000 + 75_687);
    const [upd] = one({
      type: 'l2update',
      product_id: 'BTC-USD',
      time: '2021-04-17T16:43:37.075687Z',
      changes: [
        ['buy', '8442.65', '0.00000000'],
        ['sell', '8443.10000000', '3.0'],
      ],
    });
    expect(upd).toMatchObject({
      type: 'book_changes',
      exchUs: Date.UTC(2021, 3, 17, 16, 43, 37) * 1000 + 75_687,
      changes: [
        { side: 'bid', price: '8442.65', size: '0' },
        { side: 'ask', price: '8443.1', size: '3' },
      ],
    });
  });

  it('turns the maker side of match and last_match into the taker (aggressor) side', () => {
    const match = (type: string, side: string) =>
      one({
        type,
        trade_id: 881613,
        side,
        size: '0.04',
        price: '14.7775',
        product_id: 'BAND-GBP',
        sequence: 333938798,
        time: '2021-04-17T16:43:30.244075Z',
      })[0];
    expect(match('match', 'sell')).toMatchObject({ type: 'trade', aggressor: 'buy', tradeId: '881613' });
    expect(match('last_match', 'buy')).toMatchObject({ type: 'trade', aggressor: 'sell', price: '14.7775' });
  });

  it('maps ticker (with optional sizes) and per-product heartbeat; subscriptions map to nothing', () => {
    expect(
      one({
        type: 'ticker',
        product_id: 'NMR-EUR',
        price: '67.021',
        best_bid: '66.9082',
        best_ask: '67.0210',
        best_bid_size: '1.00000000',
        time: '2021-04-17T16:43:35.964718Z',
      })[0],
    ).toMatchObject({ type: 'ticker', bestBid: '66.9082', bestAsk: '67.021', bestBidSize: '1' });
    expect(
      one({
        type: 'heartbeat',
        sequence: 90,
        last_trade_id: 20,
        product_id: 'BTC-USD',
        time: '2021-04-17T16:43:35Z',
      })[0],
    ).toMatchObject({ type: 'heartbeat', product: 'BTC-USD', counter: 90 });
    expect(one({ type: 'subscriptions', channels: [] })).toEqual([]);
  });

  it('reports error frames as FeedError and broken frames as MalformedFrameError, naming the field', () => {
    expect(() =>
      one({ type: 'error', message: 'Failed to subscribe', reason: 'level2 requires auth' }),
    ).toThrow(FeedError);
    expect(() => one({ type: 'error', message: 'Failed to subscribe', reason: 'x' })).toThrow(
      /Exchange feed error: Failed to subscribe: x/,
    );
    expect(() => mapExchangeFrame('{"type":"l2up', RECV)).toThrow(MalformedFrameError);
    expect(() => one({ type: 'l2update', product_id: 'A-B', changes: [['up', '1', '1']] })).toThrow(
      /changes\[0\]\[0\] is "up"/,
    );
    expect(() => one({ type: 'snapshot', product_id: 'A-B', bids: [['1e3', '1']], asks: [] })).toThrow(
      /bids\[0\]\[0\] is not a decimal/,
    );
    expect(() => one({ type: 'match', product_id: 'A-B', side: 'sell', price: '1', size: '1' })).toThrow(
      /trade_id/,
    );
  });

  it('builds one subscribe message with product_ids and channels (Exchange format)', () => {
    expect(JSON.parse(exchangeSubscribeMessage(['BTC-USD']))).toEqual({
      type: 'subscribe',
      product_ids: ['BTC-USD'],
      channels: ['level2_batch', 'matches', 'ticker', 'heartbeat'],
    });
  });
});

describeCapture('exchange', 'Exchange capture conformance (exchange-l2-10pairs-2021-04-17)', (c) => {
  it('maps every received frame, builds books that are never crossed, honours removals and trailing zeros', async () => {
    const frames = await receivedFrames(c);
    expect(frames.length).toBe(9946);
    const books = new Map<string, OrderBook>();
    const counts: Record<string, number> = {};
    let removals = 0;
    let trailingZeroHits = 0;
    let crossedChecks = 0;
    for (const { frame: raw, recvUs } of frames) {
      const events: MarketEvent[] = mapExchangeFrame(raw, recvUs).events;
      for (const e of events) counts[e.type] = (counts[e.type] ?? 0) + 1;
      const source = JSON.parse(raw) as { type: string; changes?: [string, string, string][] };
      for (const e of events) {
        if (e.type === 'book_snapshot') {
          const book = new OrderBook(e.product);
          book.applySnapshot(e.bids, e.asks);
          books.set(e.product, book);
        }
        if (e.type !== 'book_changes') continue;
        const book = books.get(e.product);
        expect(book, `l2update before snapshot for ${e.product}`).toBeDefined();
        e.changes.forEach((c, i) => {
          const rawPrice = source.changes![i]![1];
          const rawSize = source.changes![i]![2];
          const depth = book!.depth(c.side);
          const existed = levelSize(book!, c.side, c.price) !== undefined;
          book!.applyChange(c.side, c.price, c.size);
          if (rawSize === '0.00000000') {
            removals++;
            expect(levelSize(book!, c.side, c.price)).toBeUndefined();
          }
          if (rawPrice !== normalizeDecimal(rawPrice) && existed) {
            // A trailing-zero spelling of an existing level must address that level, not add a new one.
            trailingZeroHits++;
            expect(book!.depth(c.side)).toBeLessThanOrEqual(depth);
          }
        });
        crossedChecks++;
        expect(book!.isCrossed(), `${e.product} crossed after ${raw.slice(0, 120)}`).toBe(false);
      }
    }
    expect(counts).toMatchObject({ book_snapshot: 10, book_changes: 9719, ticker: 107, trade: 107 });
    expect(removals).toBeGreaterThan(100);
    expect(trailingZeroHits).toBeGreaterThan(0);
    expect(crossedChecks).toBe(9719);
    console.info(`exchange capture: ${removals} removals, ${trailingZeroHits} trailing-zero level hits`);
  });
});

function levelSize(book: OrderBook, side: 'bid' | 'ask', price: string): string | undefined {
  const p = toUnits(price);
  for (let i = 0; i < book.depth(side); i++)
    if (book.priceAt(side, i) === p) return fromUnits(book.sizeAt(side, i));
  return undefined;
}
