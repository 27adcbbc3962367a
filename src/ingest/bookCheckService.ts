/**
 * The book check around one ingestor, as its entry (containers/ingestor/main.ts) and the tests run it: the lease
 * (only its holder fetches; bookCheckLease.ts), the checker (bookCheck.ts) publishing through the ingestor, and the
 * verdict poller (verdictPoller.ts) resyncing through it.
 */
import type { Clock } from '../clock.js';
import type { BookCheckConfig } from '../config.js';
import type { Logger } from '../log.js';
import { readBookVerdicts } from '../storage/bookVerdicts.js';
import type { LatestStoreOptions } from '../storage/latest.js';
import type { Telemetry } from '../telemetry/telemetry.js';
import { BookChecker, bookSourceOf, RequestLimiter } from './bookCheck.js';
import { BookCheckLease } from './bookCheckLease.js';
import type { Ingestor } from './ingestor.js';
import { VerdictPoller } from './verdictPoller.js';

export interface BookCheckServiceOptions {
  ingestor: Ingestor;
  products: string[];
  config: BookCheckConfig;
  /** The latest table (verdicts, lease); default: this process's (LATEST_TABLE, src/aws/clients.ts). */
  latest?: LatestStoreOptions;
  log: Logger;
  telemetry?: Telemetry;
  /** Lease timing (default BOOK_CHECK_LEASE). */
  lease?: { leaseMs: number; renewMs: number };
  clock?: Clock;
  /** The HTTP client (default the global fetch; a test may observe what the exchange answered). */
  fetch?: typeof fetch;
  /** This process's start, wall-clock epoch µs (default now). */
  startedAtUs?: number;
}

export interface BookCheckService {
  readonly checker: BookChecker;
  readonly verdicts: VerdictPoller;
  readonly lease: BookCheckLease | undefined;
  /** Stops fetching and polling (and gives the lease up): call before the ingestor stops. */
  stop(): Promise<void>;
}

export function startBookChecks(o: BookCheckServiceOptions): BookCheckService {
  const { ingestor, config, log } = o;
  const latest = o.latest ?? {};
  const lease =
    config.everyS > 0
      ? new BookCheckLease({ ...latest, ...o.lease, owner: ingestor.session, log, clock: o.clock })
      : undefined;
  const checker = new BookChecker({
    products: o.products,
    source: bookSourceOf(ingestor.kind),
    restUrl: config.restUrl,
    everyS: config.everyS,
    depth: config.depth,
    jitter: config.jitter,
    timeoutMs: config.timeoutMs,
    limiter: new RequestLimiter(undefined, o.clock),
    publish: (check) => ingestor.publishBookCheck(check),
    exchangeNowUs: () => ingestor.exchangeTimeUs,
    // Checks wait while the feed is down (the book is being rebuilt anyway) or another ingestor holds the lease.
    active: () => ingestor.state === 'subscribed' && (lease?.held() ?? false),
    clock: o.clock,
    fetch: o.fetch,
    log,
    telemetry: o.telemetry ?? ingestor.telemetry,
  });
  const verdicts = new VerdictPoller({
    products: o.products,
    everyMs: config.verdictPollMs,
    read: (products) =>
      readBookVerdicts(products, {
        ...latest,
        onMalformed: (product, problem) => log('warn', 'book verdict item skipped', { product, problem }),
      }),
    act: (v) => ingestor.resyncOnVerdict(v.product, v.reason),
    startedAtUs: o.startedAtUs ?? Date.now() * 1000,
    clock: o.clock,
    log,
  });
  lease?.start();
  checker.start();
  verdicts.start();
  return {
    checker,
    verdicts,
    lease,
    async stop() {
      await Promise.all([checker.stop(), verdicts.stop()]);
      await lease?.stop();
    },
  };
}
