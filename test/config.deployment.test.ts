/**
 * The deployment's context reader (src/config.ts readDeploymentContext): defaults, derived sizes for any number
 * of products (a property test), and the write cadences the worker reads (readLatestWriteConfig).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  deploymentHistory,
  FARGATE_SIZES,
  MEASURED_VCPU_PER_PRODUCT,
  PRODUCTS_PER_SHARD,
  PROVISIONED_UTILIZATION,
  readDeploymentContext,
  readHistoryConfig,
  readLatestWriteConfig,
  TARGET_CPU_UTILIZATION,
  taskSizeFor,
} from '../src/config.js';

describe('deployment context', () => {
  it('has the documented defaults', () => {
    const d = readDeploymentContext({});
    expect(d).toMatchObject({
      products: ['BTC-USD', 'ETH-USD'],
      shards: 1,
      consumer: 'polling',
      workers: 1,
      ingestors: 1,
      ingestorTask: { cpu: 256, memoryMiB: 512 },
      workerTask: { cpu: 256, memoryMiB: 1024 },
      latestWriteMs: 300,
      historyWriteMs: 1000,
      dynamoCapacity: 'provisioned',
      streamRetentionHours: 24,
      snapshotRetentionDays: 2,
      archive: 's3',
      archiveRetentionDays: 30,
      lakeRetentionDays: 365,
      lakeObjectMinutes: 5,
      containerInsights: false,
      api: { auth: 'iam', publicReads: true, reservedConcurrency: true, corsOrigins: [] },
      baseImage: 'node:22-slim',
      prod: false,
      featuresStream: false,
      trainingSchedule: undefined,
    });
    // cdk.json feature flags and CDK's own keys are not deployment settings, and not typos either.
    expect(() =>
      readDeploymentContext({ '@aws-cdk/core:checkSecretUsage': true, 'aws:cdk:bundling-stacks': [] }),
    ).not.toThrow();
  });

  it('reads -c trainingSchedule: a recurring rate or cron expression, off (none) when absent or `off`', () => {
    const schedule = (v: string) => readDeploymentContext({ trainingSchedule: v }).trainingSchedule;
    for (const ok of [
      'rate(1 day)',
      'rate(12 hours)',
      'rate(30 minutes)',
      'cron(0 3 * * ? *)',
      'cron(15 2 ? * MON-FRI *)',
    ]) {
      expect(schedule(ok)).toBe(ok);
    }
    expect(schedule('off')).toBeUndefined();
    const bad: [string, RegExp][] = [
      ['daily', /expected rate\(<n> <minutes\|hours\|days>\), cron\(/],
      ['rate(1 days)', /singular for 1, plural otherwise/],
      ['rate(2 day)', /singular for 1, plural otherwise/],
      ['rate(0 hours)', /at least 1/],
      ['rate(1 week)', /expected rate/],
      ['cron(0 3 * * *)', /takes 6 fields .* got 5/],
      ['cron(0 3 * * 1 *)', /exactly one of day-of-month and day-of-week must be \?/],
      ['cron(0 3 ? * ? *)', /exactly one of day-of-month and day-of-week must be \?/],
      ['at(2030-01-01T00:00:00)', /expected rate/],
    ];
    for (const [value, why] of bad) {
      expect(() => schedule(value), value).toThrow(`-c trainingSchedule: invalid value "${value}"`);
      expect(() => schedule(value), value).toThrow(why);
    }
  });

  it('takes JSON values from cdk.json as well as strings from -c', () => {
    const d = readDeploymentContext({
      products: ['SOL-USD'],
      shards: 2,
      containerInsights: true,
      prod: false,
    });
    expect([d.products, d.shards, d.workers, d.containerInsights]).toEqual([['SOL-USD'], 2, 2, true]);
  });

  it('sizes any number of products: shards, valid Fargate sizes under the CPU target, capacity above the rates', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 60 }), fc.constantFrom('polling', 'fanout'), (n, consumer) => {
        const products = Array.from({ length: n }, (_, i) => `P${String(i).padStart(2, '0')}-USD`);
        const d = readDeploymentContext({ products: products.join(','), consumer });
        expect(d.shards).toBe(Math.ceil(n / PRODUCTS_PER_SHARD));
        expect(d.workers).toBe(d.shards);
        for (const [task, load] of [
          [d.ingestorTask, n * MEASURED_VCPU_PER_PRODUCT.ingestor],
          [d.workerTask, Math.ceil(n / d.workers) * MEASURED_VCPU_PER_PRODUCT.worker],
        ] as const) {
          expect(FARGATE_SIZES[task.cpu]).toContain(task.memoryMiB);
          if (task.cpu < 4096) expect(load).toBeLessThanOrEqual((task.cpu / 1024) * TARGET_CPU_UTILIZATION);
        }
        // Auto-scaled tables at the target utilization; fixed ones at their rate (an upper bound).
        for (const t of Object.values(d.tables)) {
          const utilization = t.autoScaling ? PROVISIONED_UTILIZATION : 1;
          expect(t.writeUnits * utilization).toBeGreaterThanOrEqual(t.writeUnitsPerS);
          expect(t.writeUnits * utilization).toBeLessThan(t.writeUnitsPerS + 1);
        }
      }),
    );
  });

  it('picks the smallest task size for a load, with its least memory', () => {
    expect(taskSizeFor(0.1)).toEqual({ cpu: 256, memoryMiB: 512 });
    expect(taskSizeFor(0.2, 1024)).toEqual({ cpu: 512, memoryMiB: 1024 });
    expect(taskSizeFor(0.9, 1024)).toEqual({ cpu: 2048, memoryMiB: 4096 });
  });

  it('reads the worker write cadences: latest every 300 ms, history every 1 s kept 6 h', () => {
    expect(readLatestWriteConfig({})).toEqual({ latestWriteMs: 300 });
    expect(readLatestWriteConfig({ LATEST_WRITE_MS: '0' })).toEqual({ latestWriteMs: 0 });
    expect(() => readLatestWriteConfig({ LATEST_WRITE_MS: 'fast' })).toThrow(
      /^LATEST_WRITE_MS: invalid value "fast"/,
    );
    expect(readHistoryConfig({})).toEqual({ writeMs: 1000, ttlS: 21_600 });
    // The deployment's history: its context cadence, the default lifetime.
    expect(deploymentHistory(readDeploymentContext({ historyWriteMs: '5000' }))).toEqual({
      writeMs: 5000,
      ttlS: 21_600,
    });
  });
});
