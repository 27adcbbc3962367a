import { trainGbdt } from '../models/train/gbdt.ts';
const n = Number(process.argv[2] ?? 200000), F = 47, rounds = Number(process.argv[3] ?? 20);
const values = new Float32Array(n * F);
const y = new Uint8Array(n);
let s = 7;
const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
for (let r = 0; r < n; r++) {
  for (let f = 0; f < F; f++) values[r * F + f] = f % 3 === 0 ? Math.floor(rnd() * 10) : rnd() * 2 - 1;
  const z = 2 * values[r * F + 1]! - values[r * F + 2]! * values[r * F + 4]! + 0.1 * values[r * F]!;
  y[r] = rnd() < 1 / (1 + Math.exp(-z)) ? 1 : 0;
}
const c0 = process.cpuUsage(); const t0 = performance.now();
const res = await trainGbdt({ rows: n, features: F, values }, y, { rounds, maxDepth: 6, earlyStoppingRounds: 1000 });
const s_ = (performance.now() - t0) / 1000;
console.log(n, "rows", res.treesBuilt, "trees", s_.toFixed(2), "s wall", ((process.cpuUsage(c0).user)/1e6).toFixed(2), "s cpu");
console.log("lvl", (globalThis as any).__lvl, "grow", (globalThis as any).__grow);
