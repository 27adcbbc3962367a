/**
 * Simulator process: `node --import tsx src/simulator/main.ts`. Settings: SYMBOLS, SIM_PORT, SIM_SEED,
 * SIM_MODE (realtime | fast), SIM_LOG, SIM_PROFILE, SIM_SPEED, SIM_HOSTILE_MS, SIM_REST_DELAY_MS, SIM_LOST_UPDATE_MS
 * (see src/config.ts). Advanced Trade on `/`, the legacy Exchange feed on `/exchange` (the same market), and both
 * REST books, on the same port.
 */
import { orExit, readCoreConfig, readSimulatorConfig } from '../config.js';
import { componentLogger } from '../log.js';
import { productSpecs } from './exchange.js';
import { startSimulator } from './server.js';

const core = orExit(() => readCoreConfig());
const cfg = orExit(() => readSimulatorConfig());

const sim = await startSimulator({
  port: cfg.port,
  seed: cfg.seed,
  mode: cfg.mode,
  products: productSpecs(core.symbols, cfg.profile),
  ...(cfg.logPath ? { logPath: cfg.logPath } : {}),
  speed: cfg.speed,
  hostileEveryMs: cfg.hostileEveryMs,
  restDelayMs: cfg.restDelayMs,
  ...(cfg.lostUpdateEveryMs > 0 ? { lostUpdates: { everyMs: cfg.lostUpdateEveryMs } } : {}),
});
const log = componentLogger('simulator');
log('info', 'simulator listening', {
  url: sim.url,
  exchangeUrl: sim.exchangeUrl,
  restUrl: sim.restUrl,
  mode: cfg.mode,
  seed: cfg.seed,
});

let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  await sim.close();
  log('info', 'simulator stopped', { signal });
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
