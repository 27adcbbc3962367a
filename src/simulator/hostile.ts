/**
 * Hostile frames: what a broken or malicious exchange could send, for the simulator's hostile mode and its fault
 * calls. Each is in the connection's sequence when it pretends to be market data (so a client that drops it sees a
 * gap and resyncs) and outside it when it is plain garbage. The slow-loris socket starts a WebSocket frame and
 * then trickles its payload a byte at a time: the client sees no whole frame, so only its silence watchdog can
 * tell, and the frames due meanwhile are lost to it.
 */
import type { Socket } from 'node:net';
import { rfc3339Nano } from './protocol.js';
import type { Rng } from './rng.js';

export const HOSTILE_KINDS = ['huge', 'nested', 'nan', 'negative', 'unknown-channel', 'wrong-types'] as const;
export type HostileKind = (typeof HOSTILE_KINDS)[number] | 'slowloris';

/** A hostile frame's text. `seq` is the connection's next sequence number (used by the in-sequence kinds). */
export function hostileFrame(
  kind: (typeof HOSTILE_KINDS)[number],
  seq: number,
  timeUs: number,
  product: string,
): string {
  const timestamp = rfc3339Nano(timeUs);
  const update = (price: string, size: string) => ({
    channel: 'l2_data',
    timestamp,
    sequence_num: seq,
    events: [
      {
        type: 'update',
        product_id: product,
        updates: [{ side: 'bid', event_time: timestamp, price_level: price, new_quantity: size }],
      },
    ],
  });
  switch (kind) {
    case 'huge':
      // ~8 MB of valid JSON in sequence, on a channel nobody subscribed to.
      return JSON.stringify({
        channel: 'candles',
        timestamp,
        sequence_num: seq,
        events: [
          {
            type: 'update',
            candles: Array.from({ length: 80_000 }, (_, i) => ({ start: String(i), pad: 'x'.repeat(80) })),
          },
        ],
      });
    case 'nested':
      // 100,000 levels of nesting: deeper than any recursive parser's stack.
      return `{"channel":"l2_data","sequence_num":${seq},"events":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    case 'nan':
      return JSON.stringify(update('NaN', '1'));
    case 'negative':
      return JSON.stringify(update('-5', '1'));
    case 'unknown-channel':
      return JSON.stringify({
        channel: 'futures_balance_summary',
        timestamp,
        sequence_num: seq,
        events: [{ x: 1 }],
      });
    case 'wrong-types':
      return JSON.stringify({
        channel: 'market_trades',
        timestamp,
        sequence_num: seq,
        events: [{ type: 'update', trades: [{ trade_id: 7, price: 1 }] }],
      });
  }
}

/** Whether the kind consumes a sequence number (the client must notice the frame it could not use). */
export function inSequence(kind: (typeof HOSTILE_KINDS)[number]): boolean {
  return kind !== 'nested';
}

/** A seeded pick of the next hostile kind. */
export function pickHostile(rng: Rng): (typeof HOSTILE_KINDS)[number] {
  return HOSTILE_KINDS[rng.int(HOSTILE_KINDS.length)]!;
}

/**
 * Starts a text frame announcing `bytes` of payload on the raw socket, then writes one byte every `everyMs` until
 * the socket closes. Returns a stop function. The WebSocket is unusable afterwards (a frame is half written).
 */
export function slowLoris(socket: Socket, bytes = 1 << 20, everyMs = 200): () => void {
  // FIN + text opcode; 127 = 64-bit length follows (server frames are not masked).
  const header = Buffer.alloc(10);
  header[0] = 0x81;
  header[1] = 127;
  header.writeBigUInt64BE(BigInt(bytes), 2);
  socket.write(header);
  const timer = setInterval(() => {
    if (socket.destroyed) clearInterval(timer);
    else socket.write('[');
  }, everyMs);
  socket.once('close', () => clearInterval(timer));
  return () => clearInterval(timer);
}
