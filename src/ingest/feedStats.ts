/**
 * The ingestor's own health, every few seconds: rates since the last report, the producer's retries, buffer and
 * throttling, the heartbeat age, as gauges of the ingestor's Metrics, one summary log line and one CloudWatch EMF
 * line, and a FeedStatsEvent for the stream's "_feed" partition (the worker shows it as the feed's health).
 */
import type { FeedKind } from '../config.js';
import type { Logger } from '../log.js';
import { eventId, type FeedStatsEvent, type StreamEvent } from '../stream/record.js';
import type { Metrics } from './metrics.js';
import type { ProducerStats } from './producer.js';

export const FEED_PARTITION = '_feed';
export const EMF_NAMESPACE = 'QuoteWatch/Ingestor';

export interface FeedStatsOptions {
  session: string;
  kind: FeedKind;
  metrics: Metrics;
  log: Logger;
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
  private last: { atUs: number; messages: number; bytes: number };
  private count = 0;

  /** `startUs`: when counting started (the first report's rates are over the time since). */
  constructor(
    private readonly o: FeedStatsOptions,
    startUs = Date.now() * 1000,
  ) {
    this.last = { atUs: startUs, messages: 0, bytes: 0 };
  }

  /** The report of time `t` (µs): sets the gauges, logs, and returns the stream event to publish. */
  next(
    t: number,
    totals: { messages: number; bytes: number },
    counters: FeedCounters,
    producer: ProducerStats,
  ): StreamEvent {
    const { metrics } = this.o;
    const last = this.last;
    const seconds = Math.max((t - last.atUs) / 1e6, 1e-3);
    const messagesPerS = (totals.messages - last.messages) / seconds;
    const bytesPerS = (totals.bytes - last.bytes) / seconds;
    metrics.set('ingest.messages_per_s', messagesPerS);
    metrics.set('ingest.bytes_per_s', bytesPerS);
    metrics.set('ingest.producer_retries', producer.retries);
    metrics.set('ingest.buffer_depth', producer.bufferDepth);
    // Time spent holding records back to stay under a shard's quota: sustained growth means too many products
    // for the stream's shards.
    metrics.set('ingest.producer_throttled_waits', producer.throttledWaits);
    metrics.set('ingest.producer_throttled_ms', producer.throttledMs);
    metrics.set(
      'ingest.last_heartbeat_age_s',
      counters.lastHeartbeatUs ? (t - counters.lastHeartbeatUs) / 1e6 : -1,
    );
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
      metrics: metrics.snapshot(),
    };
    this.last = { atUs: t, ...totals };
    const { metrics: _, ...summary } = stats;
    this.o.log('info', 'feed stats', { ...summary, frames: counters.frames, malformed: counters.malformed });
    this.o.log('info', 'metrics', metrics.emf(EMF_NAMESPACE, { Service: 'ingestor', Feed: this.o.kind }));
    return { ...stats, id: eventId(`${this.o.session}.stats`, this.count++, 0) };
  }
}
