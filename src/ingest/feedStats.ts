/**
 * The ingestor's own health, every few seconds: rates since the last report, the producer's retries, buffer and
 * throttling, the heartbeat age, as metrics of the telemetry kit, one summary log line, and a FeedStatsEvent for
 * the stream's "_feed" partition (the worker shows it as the feed's health).
 */
import type { FeedKind } from '../config.js';
import type { Logger } from '../log.js';
import type { FeedStatsEvent, StreamEvent } from '../stream/record.js';
import { FEED } from '../telemetry/catalog.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import type { ProducerStats } from './producer.js';

export const FEED_PARTITION = '_feed';

export interface FeedStatsOptions {
  session: string;
  kind: FeedKind;
  telemetry: Telemetry;
  log: Logger;
  /** The id of the `n`th stats event (the ingestor's: src/stream/record.ts eventKey). */
  id: (stats: FeedStatsEvent, n: number) => string;
}

/** The counters a report reads (IngestorCounters has them). */
export interface FeedCounters {
  reconnects: number;
  resyncs: number;
  frames: number;
  malformed: number;
  lastHeartbeatUs: number;
}

export class FeedStats {
  private last: { atUs: number; messages: number; bytes: number; retries: number; throttledMs: number };
  private count = 0;

  /** `startUs`: when counting started (the first report's rates are over the time since). */
  constructor(
    private readonly o: FeedStatsOptions,
    startUs = Date.now() * 1000,
  ) {
    this.last = { atUs: startUs, messages: 0, bytes: 0, retries: 0, throttledMs: 0 };
  }

  /** The report of time `t` (µs): records the feed's gauges, logs a summary, returns the stream event to publish. */
  next(
    t: number,
    totals: { messages: number; bytes: number },
    counters: FeedCounters,
    producer: ProducerStats,
  ): StreamEvent {
    const { telemetry } = this.o;
    const last = this.last;
    const seconds = Math.max((t - last.atUs) / 1e6, 1e-3);
    const messagesPerS = (totals.messages - last.messages) / seconds;
    const bytesPerS = (totals.bytes - last.bytes) / seconds;
    telemetry.gauge(FEED.messagesPerSecond, messagesPerS);
    telemetry.gauge(FEED.bytesPerSecond, bytesPerS);
    telemetry.count(FEED.producerRetries, producer.retries - last.retries);
    telemetry.gauge(FEED.bufferDepth, producer.bufferDepth);
    // Time spent holding records back to stay under a shard's quota: sustained growth means too many products
    // for the stream's shards.
    telemetry.count(FEED.throttledMs, producer.throttledMs - last.throttledMs);
    telemetry.gauge(FEED.heartbeatAge, counters.lastHeartbeatUs ? (t - counters.lastHeartbeatUs) / 1e6 : -1);
    const stats: FeedStatsEvent = {
      type: 'stats',
      product: FEED_PARTITION,
      exchUs: t,
      recvUs: t,
      seq: -1,
      messagesPerS,
      bytesPerS,
      lastHeartbeatUs: counters.lastHeartbeatUs,
      reconnects: counters.reconnects,
      resyncs: counters.resyncs,
      producerRetries: producer.retries,
      bufferDepth: producer.bufferDepth,
      metrics: telemetry.snapshot(),
    };
    this.last = { atUs: t, ...totals, retries: producer.retries, throttledMs: producer.throttledMs };
    const { metrics: _, ...summary } = stats;
    this.o.log('info', 'feed stats', { ...summary, frames: counters.frames, malformed: counters.malformed });
    return { ...stats, id: this.o.id(stats, this.count++) };
  }
}
