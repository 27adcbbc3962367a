/**
 * The verdict channel end to end on the ingestor's side: the exchange simulator -> the real Ingestor with its book
 * check service (startBookChecks, as containers/ingestor/main.ts runs it) -> kinesalite, the verdicts in dynalite's
 * latest table. A verdict item makes the ingestor resync that product alone, and the exchange's fresh snapshot
 * follows; the same verdict polled again does nothing.
 */
import { describe, expect, it } from 'vitest';
import { dynamoClient } from '../src/aws/clients.js';
import { startBookChecks } from '../src/ingest/bookCheckService.js';
import type { Logger } from '../src/log.js';
import { TABLES } from '../src/resources.js';
import { putBookVerdict } from '../src/storage/bookVerdicts.js';
import { FEED } from '../src/telemetry/catalog.js';
import {
  eventsOf,
  expectSimulatorBook,
  localIngestor,
  localProducer,
  PRODUCTS,
  withSimulator,
} from './support/ingest.js';
import { withEmulators } from './support/system.js';
import { until } from './support/until.js';

const local = withEmulators({ provision: true });
const simulator = withSimulator(17, 100);

describe('the verdict channel: worker verdict -> ingestor resync of that product', () => {
  it('resyncs only the product named, once per verdict, and the fresh snapshot follows', async () => {
    const sim = simulator.sim;
    const lines: { level: string; msg: string }[] = [];
    const log: Logger = (level, msg) => lines.push({ level, msg });
    const session = `v${Math.random().toString(36).slice(2, 8)}`;
    const latest = { client: dynamoClient(local.env), table: TABLES.latest.localName };
    const ingestor = localIngestor(local.env, {
      feedUrl: sim.url,
      producer: localProducer(local.env),
      log,
      session,
      snapshotIntervalMs: 0,
    });
    ingestor.start();
    const service = startBookChecks({
      ingestor,
      products: PRODUCTS,
      // Only the verdicts: the REST checks have their own test.
      config: {
        everyS: 0,
        depth: 10,
        jitter: 0,
        timeoutMs: 2000,
        restUrl: 'http://unused',
        verdictPollMs: 100,
      },
      latest,
      log,
    });
    try {
      await until(
        'both products synced and flowing',
        () => ingestor.counters.exchangeSnapshots >= PRODUCTS.length && ingestor.counters.frames >= 300,
      );
      const resyncsBefore = ingestor.counters.resyncs;
      const snapshotsBefore = ingestor.counters.exchangeSnapshots;
      await putBookVerdict(
        {
          product: 'ETH-USD',
          result: 'mismatch',
          checkId: 'v:ETH-USD:1:abcd',
          atUs: Date.now() * 1000,
          reason: 'bid 10.1: ours 1.5, exchange 0.7',
        },
        latest,
      );
      await until(
        'the resync and a fresh ETH-USD snapshot',
        () =>
          ingestor.counters.resyncs === resyncsBefore + 1 &&
          ingestor.counters.exchangeSnapshots === snapshotsBefore + 1,
      );
      // The same verdict, read again and again, does nothing more.
      const polls = service.verdicts.polls;
      await until('five more polls', () => service.verdicts.polls >= polls + 5);
      await until('more traffic', () => ingestor.counters.frames >= 600);
      expect(ingestor.counters.resyncs).toBe(resyncsBefore + 1);
      expect(ingestor.counters.exchangeSnapshots).toBe(snapshotsBefore + 1);
      expect(ingestor.telemetry.value(FEED.bookVerdicts)).toBe(1);
    } finally {
      await service.stop();
      await ingestor.stop();
    }
    expect(ingestor.counters.reconnects).toBe(0);
    expect(lines).toContainEqual({ level: 'warn', msg: 'book verdict: resync' });

    const eth = await eventsOf(local.env, session, 'ETH-USD');
    const btc = await eventsOf(local.env, session, 'BTC-USD');
    const resyncs = (events: typeof eth) => events.flatMap((e) => (e.type === 'resync' ? [e.reason] : []));
    expect(resyncs(eth)).toEqual(['connect', 'book check mismatch: bid 10.1: ours 1.5, exchange 0.7']);
    expect(resyncs(btc)).toEqual(['connect']);
    // After the verdict's resync: no book change before the fresh snapshot, then the book goes on.
    const at = eth.findIndex((e) => e.type === 'resync' && e.reason.startsWith('book check'));
    const next = eth.slice(at + 1).find((e) => e.type === 'snapshot_ref' || e.type === 'book_changes');
    expect(next).toMatchObject({ type: 'snapshot_ref', source: 'exchange' });
    expect(eth.slice(at).filter((e) => e.type === 'book_changes').length).toBeGreaterThan(0);
    const [conn] = sim.connections();
    for (const [product, events] of [
      ['ETH-USD', eth],
      ['BTC-USD', btc],
    ] as const) {
      expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
      await expectSimulatorBook(local.env, sim, conn, product, events);
    }
  });
});
