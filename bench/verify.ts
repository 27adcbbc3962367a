/**
 * The book check against the exchange's own (#17): runs of the whole local system (src/chaos/bookCheckRun.ts), 30
 * minutes of market each at 10x real time, two products, BOOK_CHECK_S=1 wall second (10 s of market), on each of
 * the simulator's two feeds (Advanced Trade, and the legacy Exchange feed with its own REST book), clean and with
 * lost updates; each key is over both feeds (per feed in the context):
 *   verify.false_mismatches_30min   mismatches in the runs without faults (goal 0)
 *   verify.detected_share           of the lost updates still wrong at a check that compared them, the share found
 *                                   (goal 1)
 *   verify.healed_share             of all lost updates, the share the exchange healed (changed that price again)
 *                                   before a check could compare them
 *   verify.detect_max_s             longest fault -> detection, market s, for faults within the compared depth from
 *                                   the first check after them (goal <= 2 x 10 s x 1.2 = 24 s)
 *   verify.abstain_share_1_reconnect_per_hour   a last run (Advanced Trade), one hour of market at 20x with the
 *                                   connection dropped every 30 minutes of market (the second drop is at the very
 *                                   end): the share of predictions, once the windows are warm (after the first
 *                                   310 s), that abstained. The windows that count are the served models' (301 s:
 *                                   their 300 s windows), so one reconnect an hour costs about 301 / 3290 s of them.
 * The clean runs' context also holds their abstained share once warm (goal 0).
 */
import {
  type BookCheckRunOptions,
  type BookCheckRunReport,
  runBookCheck,
} from '../src/chaos/bookCheckRun.js';
import { type BenchGroup, type BenchResult, machineContext } from './harness.js';

const RUN: BookCheckRunOptions = {
  seed: 20_261_205,
  products: ['BTC-USD', 'ETH-USD'],
  speed: 10,
  marketMs: 30 * 60_000,
  checkS: 1,
  skewMs: 1000,
};
/** 120 lost updates per connection over the 30 minutes, at seeded moments and products. */
const LOST_EVERY_MS = 15_000;
const FEEDS = ['advanced', 'exchange'] as const;
const RECONNECT_RUN: BookCheckRunOptions = {
  ...RUN,
  speed: 20,
  marketMs: 60 * 60_000,
  reconnectEveryMs: 30 * 60_000,
};

export const verifyGroup: BenchGroup = {
  name: 'verify',
  description: "the book checked against the exchange's REST book: a clean run, and one with lost updates",
  async run(): Promise<BenchResult[]> {
    const log = (line: string) => console.log(line);
    const perFeed: { feed: (typeof FEEDS)[number]; clean: BookCheckRunReport; faulty: BookCheckRunReport }[] =
      [];
    for (const feed of FEEDS) {
      const clean = await runBookCheck({ ...RUN, feed, log });
      const faulty = await runBookCheck({ ...RUN, feed, lostEveryMs: LOST_EVERY_MS, log });
      perFeed.push({ feed, clean, faulty });
    }
    const reconnecting = await runBookCheck({ ...RECONNECT_RUN, log });
    const sum = (f: (r: (typeof perFeed)[number]) => number) => perFeed.reduce((n, r) => n + f(r), 0);
    const wrongAtACheck = sum((r) => r.faulty.wrongAtACheck);
    const faults = sum((r) => r.faulty.faults.length);
    const detectMax = perFeed.map((r) => r.faulty.detectMaxS).filter((x): x is number => x !== null);
    const context = {
      ...machineContext(),
      run: RUN,
      lostEveryMs: LOST_EVERY_MS,
      feeds: Object.fromEntries(
        perFeed.map(({ feed, clean, faulty }) => {
          const fates: Record<string, number> = {};
          for (const f of faulty.faults) fates[f.fate] = (fates[f.fate] ?? 0) + 1;
          return [
            feed,
            {
              clean: {
                checks: clean.checks,
                resyncs: clean.resyncs,
                unavailable: clean.unavailableReasons,
                abstainOnceWarm: clean.abstain,
                wallS: clean.wallS,
              },
              faulty: {
                checks: faulty.checks,
                faults: faulty.faults.length,
                fates,
                detected: faulty.detected,
                wrongAtACheck: faulty.wrongAtACheck,
                falseMismatches: faulty.falseMismatches,
                detectMaxS: faulty.detectMaxS,
                detectMaxAllS: faulty.detectMaxAllS,
                resyncs: faulty.resyncs,
                unavailable: faulty.unavailableReasons,
                wallS: faulty.wallS,
              },
            },
          ];
        }),
      ),
    };
    return [
      {
        name: 'verify.false_mismatches_30min',
        value: sum((r) => r.clean.checks.mismatch),
        unit: 'checks',
        context,
      },
      {
        name: 'verify.detected_share',
        value: wrongAtACheck ? sum((r) => r.faulty.detected) / wrongAtACheck : Number.NaN,
        unit: 'share',
        context: { detected: sum((r) => r.faulty.detected), wrongAtACheck },
      },
      {
        name: 'verify.healed_share',
        value: faults ? sum((r) => r.faulty.healed) / faults : Number.NaN,
        unit: 'share',
        context: { healed: sum((r) => r.faulty.healed), faults },
      },
      {
        name: 'verify.detect_max_s',
        value: detectMax.length ? Math.max(...detectMax) : Number.NaN,
        unit: 's (market)',
        context: {
          goalS: 2 * RUN.checkS * RUN.speed * 1.2,
          allFaultsS: Math.max(...perFeed.map((r) => r.faulty.detectMaxAllS ?? 0)),
        },
      },
      {
        name: 'verify.abstain_share_1_reconnect_per_hour',
        value: reconnecting.abstain.share,
        unit: 'share',
        context: {
          run: RECONNECT_RUN,
          reconnects: reconnecting.reconnects,
          abstain: reconnecting.abstain,
          windowS: 301,
          checks: reconnecting.checks,
          wallS: reconnecting.wallS,
        },
      },
    ];
  },
};
