/**
 * How each feed's protocol is spoken: the mapper, the subscribe messages, how to get fresh level2 snapshots of
 * some products, and whether frames carry one per-connection sequence counter.
 */
import type { FeedKind } from '../config.js';
import { type MappedFrame, mapAdvancedTradeFrameAsync } from '../marketdata/advancedTrade.js';
import { exchangeSubscribeMessage, mapExchangeFrame } from '../marketdata/exchange.js';
import { CHANNELS, subscribeMessage } from './connection.js';

/** How one feed's protocol is spoken. */
export interface FeedProtocol {
  map(raw: string, recvUs: number): MappedFrame | Promise<MappedFrame>;
  subscribe(products: string[]): string[];
  /** Messages that make the feed send fresh level2 snapshots of `products`. */
  resubscribeBook(products: string[]): string[];
  /** Frames carry one per-connection sequence counter to check. */
  sequenced: boolean;
}

export function protocolFor(kind: FeedKind, jwt: (() => string) | undefined): FeedProtocol {
  if (kind === 'exchange') {
    return {
      map: mapExchangeFrame,
      subscribe: (products) => [exchangeSubscribeMessage(products)],
      resubscribeBook: (products) => [
        exchangeSubscribeMessage(products, ['level2_batch'], 'unsubscribe'),
        exchangeSubscribeMessage(products, ['level2_batch'], 'subscribe'),
      ],
      sequenced: false,
    };
  }
  return {
    // Maps a multi-megabyte snapshot in slices, yielding to the event loop between them (same output and errors
    // as the sync mapper). Frames stay in order: the connection's pump awaits each frame before the next.
    // The Exchange feed above has a sync mapper only; its snapshots are smaller and arrive once per product.
    map: (raw, recvUs) => mapAdvancedTradeFrameAsync(raw, recvUs),
    subscribe: (products) => CHANNELS.map((c) => subscribeMessage(c, products, 'subscribe', jwt?.())),
    resubscribeBook: (products) => [
      subscribeMessage('level2', products, 'unsubscribe', jwt?.()),
      subscribeMessage('level2', products, 'subscribe', jwt?.()),
    ],
    sequenced: true,
  };
}
