/**
 * Every request and answer of the HTTP API as zod schemas, once: the handlers parse requests with them, the
 * domain's answer types are inferred from them, GET /openapi.json is generated from them (openapi.ts), and the
 * tests validate every route's real answers against that document.
 */
import * as z from 'zod';
import { PRODUCT_ID_PATTERN } from '../config.js';
import { TARGETS, type Target } from '../model/types.js';

export const Product = z
  .string({ message: 'product must be a string like "BTC-USD"' })
  .regex(PRODUCT_ID_PATTERN, 'product must look like BTC-USD (upper case BASE-QUOTE)')
  .meta({ example: 'BTC-USD' });

export const TargetName = z
  .string({ message: `target must be a string, one of: ${TARGETS.join(', ')}` })
  .refine((t): t is Target => (TARGETS as readonly string[]).includes(t), {
    message: `target must be one of: ${TARGETS.join(', ')}`,
  })
  .transform((t) => t as Target)
  .meta({ description: `one of ${TARGETS.join(', ')}` });

export const ErrorBody = z
  .object({ error: z.object({ code: z.string(), message: z.string() }) })
  .meta({ id: 'Error' });

const Level = z.tuple([z.string(), z.string()]).meta({ description: '[price, size] as decimal strings' });

export const Lineage = z
  .object({
    book: z.enum(['synced', 'ticker']),
    windowS: z.number().meta({ description: "the model's lookback: the longest window of its inputs, s" }),
    sinceResyncS: z
      .number()
      .nullable()
      .meta({ description: "s since the product's last resync; null: none lately" }),
    resyncs: z.number().meta({ description: "resyncs inside the model's window" }),
    gap: z.boolean().meta({ description: "a data gap inside the model's window" }),
    feedLatencyMs: z.number().nullable().meta({
      description:
        "exchange -> ingest latency of the product's newest event before the tick, ms (measured: a replay gives its own); null: none yet",
    }),
    verification: z.object({
      result: z.enum(['match', 'mismatch', 'unavailable', 'pending']),
      ageS: z.number().nullable(),
    }),
  })
  .meta({ id: 'Lineage', description: 'what the data a prediction was made from went through' });

const Prediction = z.object({
  probability: z.number(),
  lineage: Lineage.optional(),
  abstain: z
    .string()
    .optional()
    .meta({ description: 'why the prediction should not be acted on (its probability stays, marked)' }),
  modelVersion: z.string(),
  featureSet: z
    .enum(['l2', 'ticker'])
    .optional()
    .meta({ description: "the feature set of the model that scored it: what the product's data supports" }),
  drifted: z
    .boolean()
    .optional()
    .meta({ description: 'its inputs drifted out of the training distribution' }),
  threshold: z.number().nullable().optional().meta({
    description:
      "vol_spike_60s: the model's τ for this product (a spike: forward 60 s volatility / max(rv_300s_bps, 0.05 bps) above it); null: the model has none for the product, its prediction is given but cannot be judged",
  }),
});

const QualityFigures = {
  n: z.number().meta({ description: 'matured labels in the window' }),
  auc: z.number().nullable().meta({ description: 'ROC-AUC (null below the minimum count)' }),
  prAuc: z.number().nullable().optional().meta({ description: 'PR-AUC (average precision)' }),
  brier: z.number().nullable(),
  baseRate: z.number().nullable(),
  ece: z.number().nullable().optional().meta({ description: 'expected calibration error (10 bins)' }),
  coverage: z.number().nullable().optional().meta({
    description: "share of the window's predictions that did not abstain: the figures are over those",
  }),
};

export const Quality = z
  .record(
    z.string(),
    z.object({
      modelVersion: z.string(),
      ...QualityFigures,
      windowS: z.number().optional().meta({ description: 'the window, seconds of event time' }),
      minLabels: z.number().optional().meta({ description: 'figures are null below this many labels' }),
      unjudged: z.number().optional().meta({
        description:
          "this product's matured labels the version could not judge (it has no τ for the product); absent when none",
      }),
      product: z
        .object({ ...QualityFigures, prAuc: z.number().nullable(), ece: z.number().nullable() })
        .optional()
        .meta({ description: "the same figures over this product's own labels" }),
    }),
  )
  .meta({
    id: 'LiveQuality',
    description: 'rolling live quality per target of the version serving the product, over all products',
  });

export const Drift = z
  .record(
    z.string(),
    z.object({
      modelVersion: z.string(),
      psiMax: z.number().meta({ description: 'largest population stability index of an input, last hour' }),
      feature: z.string(),
      flagged: z
        .boolean()
        .meta({ description: 'psiMax above DRIFT_PSI_LIMIT: the inputs left the training range' }),
    }),
  )
  .meta({
    id: 'FeatureDrift',
    description: "per target, drift of the serving model's inputs against training",
  });

export const FeedHealth = z
  .object({
    exchUs: z.number(),
    messagesPerS: z.number(),
    bytesPerS: z.number(),
    lastHeartbeatUs: z.number(),
    reconnects: z.number(),
    resyncs: z.number(),
    producerRetries: z.number(),
    bufferDepth: z.number(),
  })
  .meta({ id: 'FeedHealth', description: "the ingestor's newest stats" });

export const BookState = z.enum(['synced', 'resyncing', 'stale']).meta({
  id: 'BookState',
  description:
    "the worker's L2 book of the product: synced; resyncing from a detected loss until the next snapshot; stale when its latest item is older than HEALTH_STALE_MS",
});

export const Verification = z
  .object({
    result: z.enum(['match', 'mismatch', 'unavailable', 'pending']),
    atUs: z
      .number()
      .nullable()
      .meta({ description: "the exchange REST book's time of the check (epoch µs); null before any check" }),
    reason: z.string().optional(),
  })
  .meta({ id: 'Verification', description: "the last check of the book against the exchange's own" });

export const Snapshot = z
  .object({
    product: z.string(),
    tsUs: z.number().meta({ description: 'tick time, epoch µs (exchange time)' }),
    seq: z.number(),
    bestBid: z.string(),
    bestAsk: z.string(),
    mid: z.number(),
    spread: z.number(),
    spreadBps: z.number(),
    bids: z.array(Level),
    asks: z.array(Level),
    features: z.record(z.string(), z.number()),
    predictions: z.record(z.string(), Prediction),
    quality: Quality.optional(),
    drift: Drift.optional(),
    feed: FeedHealth.optional(),
    book: BookState.optional().meta({ description: 'absent for a ticker-only product (no L2 book)' }),
    verification: Verification.optional(),
    latencyMs: z.number(),
    updatedAtMs: z.number(),
    ageMs: z.number(),
  })
  .meta({ id: 'Snapshot', description: "a product's latest tick: quote, top levels, features, predictions" });

export const LatestList = z
  .object({ products: z.array(Snapshot), serverTimeMs: z.number() })
  .meta({ id: 'LatestList' });

export const LatestQuery = z.object({ product: Product.optional() });

export const HealthReport = z
  .object({
    status: z.enum(['ok', 'degraded']),
    checkedAtMs: z.number(),
    dynamodb: z.enum(['ok', 'unreachable']),
    newestAgeMs: z.number().nullable(),
    staleAfterMs: z.number(),
    products: z.array(
      z.object({
        product: z.string(),
        ageMs: z.number(),
        book: BookState.optional(),
        verification: Verification.optional(),
      }),
    ),
    feed: z
      .object({
        status: z.enum(['ok', 'degraded']),
        product: z.string(),
        messagesPerS: z.number(),
        reconnects: z.number(),
        resyncs: z.number(),
        heartbeatAgeMs: z.number().nullable(),
        statsAgeMs: z.number(),
      })
      .nullable(),
    reasons: z.array(z.string()),
  })
  .meta({ id: 'Health' });

export const VersionInfo = z
  .object({
    app: z.string(),
    version: z.string(),
    buildSha: z.string().nullable(),
    models: z.record(z.string(), z.string().nullable()),
  })
  .meta({ id: 'Version' });

const FeatureValues = z
  .record(z.string(), z.number({ message: 'each feature value must be a finite number' }), {
    message: 'features must be an object of {"name": number}',
  })
  .meta({ description: "feature name -> value (the model's feature spec names every one)" });

/** The most vectors one /predict call may score. */
export const MAX_BATCH = 100;

export const PredictByProduct = z.strictObject({ product: Product, target: TargetName.optional() });
export const PredictByFeatures = z.strictObject({ features: FeatureValues, target: TargetName.optional() });
export const PredictBatch = z.strictObject({
  vectors: z
    .array(FeatureValues, { message: 'vectors must be an array of feature objects' })
    .min(1, 'vectors must hold at least one feature object')
    .max(MAX_BATCH, `at most ${MAX_BATCH} vectors per request`),
  target: TargetName.optional(),
});
export const PredictRequest = z
  .union([PredictByProduct, PredictByFeatures, PredictBatch])
  .meta({ id: 'PredictRequest', description: 'one product, one feature vector, or a batch of vectors' });

const ModelAbout = {
  target: z.string(),
  modelVersion: z.string(),
  featureSet: z
    .enum(['l2', 'ticker'])
    .optional()
    .meta({ description: "the model's feature set: ticker for a ticker-only product, else l2" }),
  threshold: z.number().nullable().optional().meta({
    description:
      "vol_spike_60s, a product's prediction: the model's τ for the product (a spike: forward 60 s volatility / max(rv_300s_bps, 0.05 bps) above it); null: the model has none for the product, the probability cannot be judged",
  }),
  thresholds: z.record(z.string(), z.number()).optional().meta({
    description: "vol_spike_60s, a caller's vectors (no product): the model's τ per product",
  }),
};
export const PredictResponse = z
  .object({
    ...ModelAbout,
    probability: z.number(),
    product: z.string().optional(),
    tsUs: z.number().optional(),
    lineage: Lineage.nullable().meta({
      description:
        "a product's prediction: the lineage of its latest tick's data for this model; a caller's vector: null",
    }),
    abstain: z.string().optional(),
  })
  .meta({ id: 'Prediction' });
export const PredictBatchResponse = z
  .object({ ...ModelAbout, probabilities: z.array(z.number()) })
  .meta({ id: 'PredictionBatch' });

export const HistoryQuery = z
  .object({
    product: Product,
    from: z.coerce.number({ message: 'from must be epoch ms' }).int('from must be epoch ms').optional(),
    to: z.coerce.number({ message: 'to must be epoch ms' }).int('to must be epoch ms').optional(),
    minutes: z.coerce
      .number({ message: 'minutes must be a number' })
      .int('minutes must be a whole number')
      .min(1, 'minutes must be >= 1')
      .max(360, 'minutes must be <= 360')
      .optional(),
    limit: z.coerce
      .number({ message: 'limit must be a number' })
      .int('limit must be a whole number')
      .min(1, 'limit must be >= 1')
      .max(1000, 'limit must be <= 1000')
      .optional(),
    next: z
      .string()
      .regex(/^\d{1,15}$/, 'next must be a token from a previous page')
      .optional(),
  })
  .meta({ description: 'a time range (from/to epoch ms, or the last `minutes`), paged by `next`' });

export const HistoryRow = z
  .object({
    tsUs: z.number(),
    bid: z.number(),
    ask: z.number(),
    mid: z.number(),
    spread: z.number(),
    predictions: z.record(
      z.string(),
      z.object({
        probability: z.number(),
        modelVersion: z.string(),
        threshold: z.number().nullable().optional().meta({
          description:
            "vol_spike_60s: the model's τ for the product; null: it has none (the prediction cannot be judged)",
        }),
        levelBps: z.number().optional().meta({
          description:
            'vol_spike_60s: the trailing level (rv_300s_bps) at the tick; a spike: forward volatility / max(level, 0.05) > τ',
        }),
      }),
    ),
    labels: z.record(z.string(), z.number()).optional().meta({ description: 'matured labels of this tick' }),
    quality: Quality.optional(),
    feed: z
      .object({
        messagesPerS: z.number(),
        reconnects: z.number(),
        resyncs: z.number(),
        heartbeatAgeMs: z.number().nullable(),
      })
      .optional(),
    latencyMs: z.number(),
  })
  .meta({ id: 'HistoryRow' });

export const HistoryPage = z
  .object({
    product: z.string(),
    fromMs: z.number(),
    toMs: z.number(),
    rows: z.array(HistoryRow),
    next: z.string().optional().meta({ description: 'pass as `next` for the following page' }),
  })
  .meta({ id: 'HistoryPage' });

export const ModelVersionView = z.object({
  version: z.string(),
  publishedAt: z.string().nullable(),
  active: z.boolean(),
  metrics: z.record(z.string(), z.unknown()).nullable(),
  run: z
    .record(z.string(), z.unknown())
    .nullable()
    .meta({ description: "the training run's record, if any" }),
  report: z.string().nullable().meta({ description: "path of the run's HTML report, if any" }),
});

export const ModelsResponse = z
  .object({
    targets: z.array(
      z.object({ target: z.string(), active: z.string().nullable(), versions: z.array(ModelVersionView) }),
    ),
  })
  .meta({ id: 'Models' });

export const ReportQuery = z.object({
  target: TargetName,
  version: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'version must be a registry version'),
});

export type SnapshotView = z.infer<typeof Snapshot>;
export type LatestListView = z.infer<typeof LatestList>;
export type HealthReportView = z.infer<typeof HealthReport>;
export type VersionInfoView = z.infer<typeof VersionInfo>;
export type PredictRequestBody = z.infer<typeof PredictRequest>;
export type PredictAnswer = z.infer<typeof PredictResponse>;
export type PredictBatchAnswer = z.infer<typeof PredictBatchResponse>;
export type HistoryRowView = z.infer<typeof HistoryRow>;
export type HistoryPageView = z.infer<typeof HistoryPage>;
export type ModelsView = z.infer<typeof ModelsResponse>;
