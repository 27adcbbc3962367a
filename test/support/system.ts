/**
 * Helpers for tests that need real local AWS: emulators (and optionally the whole system, possibly fed by a
 * simulator in the test's process) in a temp data dir on free ports, torn down after the test file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect } from 'vitest';
import { type FeedKind, simulatorFeedUrl } from '../../src/config.js';
import { type Emulators, startEmulators } from '../../src/local/emulators.js';
import { freePort } from '../../src/local/ports.js';
import { provision } from '../../src/local/provision.js';
import { type System, type SystemOptions, startSystem } from '../../src/local/supervisor.js';
import { normalizeDecimal } from '../../src/marketdata/decimal.js';
import { productSpecs } from '../../src/simulator/exchange.js';
import { type SimulatorServer, startSimulator } from '../../src/simulator/server.js';

export function tempDataDir(prefix = 'qw-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export interface EmulatorFixture {
  /** Valid inside tests (after beforeAll). */
  readonly emulators: Emulators;
  /** The emulators' SDK settings, for the clients in src/aws/clients.ts. */
  readonly env: Record<string, string>;
  readonly dataDir: string;
}

/**
 * Starts emulators for the calling test file (beforeAll) and stops them and deletes their data (afterAll).
 * With `provision: true` the QuoteWatch resources are created too (without seeding the model registry).
 */
export function withEmulators(options: { provision?: boolean } = {}): EmulatorFixture {
  let emulators: Emulators | undefined;
  const dataDir = tempDataDir();
  beforeAll(async () => {
    emulators = await startEmulators({ dataDir });
    if (options.provision) await provision(emulators.env, { seed: false });
  });
  afterAll(async () => {
    await emulators?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const started = () => {
    if (!emulators) throw new Error('emulators are only available inside tests (after beforeAll)');
    return emulators;
  };
  return {
    get emulators() {
      return started();
    },
    get env() {
      return started().env;
    },
    dataDir,
  };
}

export interface SystemFixture {
  readonly system: System;
  readonly dataDir: string;
}

/** The whole local system (emulators, provisioning, components) for one test file, on free ports. */
export function withSystem(options: Omit<SystemOptions, 'dataDir'> = {}): SystemFixture {
  let system: System | undefined;
  const dataDir = tempDataDir();
  beforeAll(async () => {
    system = await startSystem({ freePorts: true, quiet: true, ...options, dataDir });
  });
  afterAll(async () => {
    await system?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  return {
    get system() {
      if (!system) throw new Error('the system is only available inside tests (after beforeAll)');
      return system;
    },
    dataDir,
  };
}

export interface SimulatedSystemFixture extends SystemFixture {
  /** The simulator feeding the system; valid inside tests (after beforeAll). */
  readonly sim: SimulatorServer;
}

/**
 * The system fed by an exchange simulator running in the test's own process (realtime, on a free port), so a
 * test can ask its book at any sequence. The system's FEED_URL (the simulator's feed of `feed`: Advanced Trade by
 * default, or the legacy Exchange feed) and SYMBOLS point at it; `options.env` adds more.
 */
export async function withSimulatedSystem(
  options: { simulator: { seed: number; products: readonly string[]; feed?: FeedKind } } & Omit<
    SystemOptions,
    'dataDir'
  >,
): Promise<SimulatedSystemFixture> {
  const {
    simulator: { seed, products, feed = 'advanced' },
    env,
    ...systemOptions
  } = options;
  const port = await freePort();
  let sim: SimulatorServer | undefined;
  // Registered before the system's hooks: the simulator is up before the ingestor connects, and closes after it.
  beforeAll(async () => {
    sim = await startSimulator({ port, seed, products: productSpecs(products), mode: 'realtime' });
  });
  afterAll(async () => {
    await sim?.close();
  });
  const fixture = withSystem({
    ...systemOptions,
    env: { FEED_URL: simulatorFeedUrl(port, feed), FEED_KIND: feed, SYMBOLS: products.join(','), ...env },
  });
  return {
    get sim() {
      if (!sim) throw new Error('the simulator is only available inside tests (after beforeAll)');
      return sim;
    },
    get system() {
      return fixture.system;
    },
    dataDir: fixture.dataDir,
  };
}

/**
 * Expects a served best bid/ask to equal the simulator's top of book of `product` at position `seq` (a row's or
 * snapshot's seq: the exchange time of the newest event applied, FeatureRow.seq).
 */
export function expectSimulatorTop(
  sim: SimulatorServer,
  product: string,
  seq: number,
  bestBid: string,
  bestAsk: string,
): void {
  const top = sim.topOfBookAtTime(product, seq);
  expect(top, `simulator top of book for ${product} at ${seq}`).toBeDefined();
  expect(normalizeDecimal(bestBid)).toBe(normalizeDecimal(top!.bestBid));
  expect(normalizeDecimal(bestAsk)).toBe(normalizeDecimal(top!.bestAsk));
}
