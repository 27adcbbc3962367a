/**
 * The local gateway over the real handlers and real emulators, for the gateway and dashboard tests.
 */
import { rmSync } from 'node:fs';
import { loadRoutes } from '../../src/gateway/handlers.js';
import { type RunningGateway, startGateway } from '../../src/gateway/server.js';
import { type Emulators, startEmulators } from '../../src/local/emulators.js';
import { provision } from '../../src/local/provision.js';
import type { LatestSnapshotInput } from '../../src/storage/latest.js';
import { tempDataDir } from './system.js';

export interface LocalGateway {
  emulators: Emulators;
  gateway: RunningGateway;
  /** Closes the gateway, stops the emulators and deletes their data. */
  close(): Promise<void>;
}

/**
 * Emulators on free ports with the resources provisioned, process.env pointed at them plus `env`, `seed` run
 * (e.g. putLatest), then the gateway on a free port with every route of the table. The handlers read their config
 * and create their clients from process.env when loaded, as in a Lambda container, so they are loaded only then.
 */
export async function startLocalGateway(options: {
  tempPrefix: string;
  env: Record<string, string>;
  seed?: () => Promise<void>;
}): Promise<LocalGateway> {
  const dataDir = tempDataDir(options.tempPrefix);
  // The SDK takes region and credentials from process.env, also for the emulators' readiness probes.
  Object.assign(process.env, {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: 'S3RVER',
  });
  let emulators: Emulators | undefined;
  let gateway: RunningGateway | undefined;
  const close = async () => {
    await gateway?.close();
    await emulators?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    emulators = await startEmulators({ dataDir, ports: { kinesis: 0, dynamodb: 0, s3: 0 } });
    Object.assign(process.env, emulators.env, options.env);
    await provision(emulators.env, { seed: false });
    await options.seed?.();
    gateway = await startGateway({ routes: await loadRoutes(), port: 0 });
  } catch (err) {
    await close();
    throw err;
  }
  return { emulators, gateway, close };
}

/** A fresh latest snapshot of `product` at `mid` (one level a side, no predictions), written as the worker would. */
export function snapshotAt(
  product: string,
  mid: number,
  features: Record<string, number> = { a: 1 },
): LatestSnapshotInput {
  const now = Date.now();
  return {
    product,
    tsUs: now * 1000,
    seq: now,
    bestBid: String(mid - 0.5),
    bestAsk: String(mid + 0.5),
    mid,
    spread: 1,
    spreadBps: (1 / mid) * 10_000,
    bids: [[String(mid - 0.5), '2']],
    asks: [[String(mid + 0.5), '3']],
    features,
    predictions: {},
    latencyMs: 5,
    updatedAtMs: now,
  };
}
