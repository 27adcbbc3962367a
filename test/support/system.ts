/**
 * Helpers for tests that need real local AWS: emulators (and optionally the whole system) in a temp data dir on
 * free ports, torn down after the test file.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { type Emulators, startEmulators } from '../../src/local/emulators.js';
import { provision } from '../../src/local/provision.js';
import { type System, type SystemOptions, startSystem } from '../../src/local/supervisor.js';

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
