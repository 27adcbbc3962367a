/**
 * Recordings of the simulator for tests: its Advanced Trade frames, every channel, written as our raw archive
 * (src/ingest/archive.ts, what `npm start -- --live` with ARCHIVE=file writes), without a network.
 */
import { FileArchive } from '../../src/ingest/archive.js';
import { seedEpochUs } from '../../src/simulator/exchange.js';
import type { ProductSpec } from '../../src/simulator/market.js';
import { Session } from '../../src/simulator/session.js';

export async function recordSimulation(
  path: string,
  products: readonly ProductSpec[],
  seed: number,
  seconds: number,
): Promise<void> {
  const startUs = seedEpochUs(seed);
  const session = new Session(products, seed, startUs, 0);
  const archive = new FileArchive(path);
  const ids = products.map((p) => p.productId);
  for (const channel of ['heartbeats', 'level2', 'market_trades', 'ticker']) {
    const subscribe = { type: 'subscribe', channel, product_ids: ids };
    for (const f of session.handleMessage(JSON.stringify(subscribe))) archive.write('sim.1', f.text, startUs);
  }
  const endUs = startUs + seconds * 1e6;
  for (let t = startUs; t < endUs; ) {
    t = Math.min(t + 10e6, endUs);
    for (const f of session.advanceTo(t)) archive.write('sim.1', f.text, session.timeUs);
    // Let the gzip stream drain now and then (the archive does not wait).
    await new Promise((r) => setImmediate(r));
  }
  await archive.close();
}
