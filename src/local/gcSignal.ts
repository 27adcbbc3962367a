/**
 * Benchmarks compare a process's memory after a full collection (bench/push.ts: the gateway's and the worker's RSS
 * with 1,000 subscribers against none). Only when the process runs with `--expose-gc` (NODE_OPTIONS): then SIGUSR2
 * runs one. Without it nothing is registered, and SIGUSR2 keeps its default meaning.
 */
export function collectGarbageOnSignal(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return;
  process.on('SIGUSR2', () => gc());
}
