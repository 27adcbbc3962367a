/**
 * The simulator's batches as normalized market events (src/marketdata/events.ts), without the WebSocket
 * protocol in between: what the Advanced Trade mapper makes of the simulator's frames, for in-process
 * consumers (the statistics of long runs, worker tests and benchmarks). Exchange and receive time are both
 * the simulated exchange time.
 */
import { fromUnits } from '../marketdata/decimal.js';
import type { BookChangesEvent, BookSnapshotEvent, Level, TradeEvent } from '../marketdata/events.js';
import type { Market, MarketBatch } from './market.js';

/** One batch's events: its book changes (if any) then its trades, all carrying `seq`. */
export function batchEvents(
  batch: MarketBatch,
  tickUnits: number,
  seq: number,
): [BookChangesEvent | undefined, TradeEvent[]] {
  const changes: BookChangesEvent | undefined =
    batch.changes.length > 0
      ? {
          type: 'book_changes',
          product: batch.productId,
          exchUs: batch.timeUs,
          recvUs: batch.timeUs,
          seq,
          changes: batch.changes.map((c) => ({
            side: c.side,
            price: fromUnits(c.priceTicks * tickUnits),
            size: fromUnits(c.qtyUnits),
          })),
        }
      : undefined;
  const trades = batch.trades.map(
    (t): TradeEvent => ({
      type: 'trade',
      product: batch.productId,
      exchUs: t.timeUs,
      recvUs: t.timeUs,
      seq,
      tradeId: String(t.tradeId),
      price: fromUnits(t.priceTicks * tickUnits),
      size: fromUnits(t.sizeUnits),
      aggressor: t.aggressor,
    }),
  );
  return [changes, trades];
}

/** The full book of `m` as a snapshot event at `atUs`. */
export function snapshotEvent(m: Market, atUs: number, seq: number): BookSnapshotEvent {
  const levels = (side: 'bid' | 'ask'): Level[] =>
    m.levels(side).map((l) => [fromUnits(l.priceTicks * m.tickUnits), fromUnits(l.qtyUnits)] as const);
  return {
    type: 'book_snapshot',
    product: m.productId,
    exchUs: atUs,
    recvUs: atUs,
    seq,
    bids: levels('bid'),
    asks: levels('ask'),
  };
}
