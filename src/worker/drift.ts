/**
 * Feature drift of the served models' inputs: per model version and product, the inputs scored over the last
 * hour of event time, binned by the model's training distribution (src/model/inputs.ts, stored with the model),
 * against that distribution: the population stability index of each input, the largest of them, and a flag when
 * it passes the limit (0.25: a different population, the usual rule of thumb). Counted in one-minute buckets so
 * the hour slides; recomputed at most every `everyMs` of event time.
 */
import { binOf } from '../model/inputs.js';
import { populationStability } from '../model/metrics.js';
import type { LoadedModel } from '../model/types.js';

export interface DriftFigure {
  modelVersion: string;
  /** The largest PSI over the model's inputs. */
  psiMax: number;
  /** The input with that PSI. */
  feature: string;
  flagged: boolean;
}

export interface DriftOptions {
  /** Event time the live distribution covers (default one hour). */
  windowMs?: number;
  /** PSI above this flags the product (default 0.25). */
  limit?: number;
  /** Figures are recomputed at most this often, in event time (default 10 s). */
  everyMs?: number;
  /** Fewer scored rows than this in the window say nothing yet (default 600: a minute of one product). */
  minRows?: number;
}

const BUCKET_US = 60_000_000;

interface Track {
  model: LoadedModel;
  /** Counts per bucket (minute number): features × bins, flattened at each feature's offset. */
  buckets: Map<number, Uint32Array>;
  offsets: Int32Array;
  width: number;
  newestUs: number;
  computedAtUs: number;
  figure?: DriftFigure;
}

export class DriftMonitor {
  private readonly tracks = new Map<string, Track>();
  private readonly windowUs: number;
  private readonly everyUs: number;
  readonly limit: number;
  private readonly minRows: number;

  constructor(opts: DriftOptions = {}) {
    this.windowUs = (opts.windowMs ?? 3_600_000) * 1000;
    this.everyUs = (opts.everyMs ?? 10_000) * 1000;
    this.limit = opts.limit ?? 0.25;
    this.minRows = opts.minRows ?? 600;
  }

  /** One scored row: `input` holds the model's inputs in spec order. Models without a distribution are skipped. */
  observe(model: LoadedModel, product: string, tsUs: number, input: ArrayLike<number>): void {
    const dist = model.inputs;
    if (!dist) return;
    const key = `${model.version}|${product}`;
    let t = this.tracks.get(key);
    if (!t || t.model !== model) {
      const offsets = new Int32Array(dist.features.length);
      let width = 0;
      dist.features.forEach((f, j) => {
        offsets[j] = width;
        width += f.edges.length + 1;
      });
      t = {
        model,
        buckets: new Map(),
        offsets,
        width,
        newestUs: tsUs,
        computedAtUs: Number.NEGATIVE_INFINITY,
      };
      this.tracks.set(key, t);
    }
    const minute = Math.floor(tsUs / BUCKET_US);
    let counts = t.buckets.get(minute);
    if (!counts) {
      counts = new Uint32Array(t.width);
      t.buckets.set(minute, counts);
      for (const m of t.buckets.keys()) if ((minute - m) * BUCKET_US >= this.windowUs) t.buckets.delete(m);
    }
    dist.features.forEach((f, j) => {
      counts[t.offsets[j]! + binOf(f.edges, input[j]!)]!++;
    });
    if (tsUs > t.newestUs) t.newestUs = tsUs;
  }

  /** The drift of the inputs `model` scored for `product` over the window; undefined until enough rows. */
  figure(model: LoadedModel, product: string): DriftFigure | undefined {
    const t = this.tracks.get(`${model.version}|${product}`);
    if (!t || t.model !== model) return undefined;
    if (t.newestUs < t.computedAtUs + this.everyUs) return t.figure;
    t.computedAtUs = t.newestUs;
    const total = new Float64Array(t.width);
    for (const counts of t.buckets.values()) for (let i = 0; i < t.width; i++) total[i]! += counts[i]!;
    const dist = model.inputs!;
    const firstBins = dist.features[0] ? dist.features[0].edges.length + 1 : 0;
    let rows = 0;
    for (let i = 0; i < firstBins; i++) rows += total[i]!;
    if (rows < this.minRows) {
      t.figure = undefined;
      return undefined;
    }
    let psiMax = 0;
    let feature = '';
    dist.features.forEach((f, j) => {
      const observed = total.subarray(t.offsets[j]!, t.offsets[j]! + f.edges.length + 1);
      const psi = populationStability(f.shares, observed);
      if (psi > psiMax || feature === '') {
        psiMax = psi;
        feature = f.name;
      }
    });
    t.figure = { modelVersion: model.version, psiMax, feature, flagged: psiMax > this.limit };
    return t.figure;
  }
}
