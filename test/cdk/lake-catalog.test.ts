/**
 * The Glue catalog of the lake, synthesized in a small stack (no Lambda bundling): one external Parquet table
 * per zone whose columns are what src/storage/parquet.ts writes, partition projection over the lake's folder
 * layout, and no cdk-nag finding. The full stack's nag run (stack.test.ts) covers it wired in QuoteWatchStack.
 */
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { AwsSolutionsChecks } from 'cdk-nag';
import { describe, expect, it } from 'vitest';
import { LAKE_COLUMNS, LakeCatalog } from '../../lib/lake-catalog.js';
import { FEATURE_SPEC } from '../../src/features/spec.js';
import { lakeKey } from '../../src/storage/lake.js';
import {
  encodeFeatureRows,
  encodeLabelRows,
  encodePredictionRows,
  encodeRawRows,
  readParquetObjects,
} from '../../src/storage/parquet.js';

const app = new App();
const stack = new Stack(app, 'Catalog', { env: { account: '123456789012', region: 'us-east-1' } });
const bucket = new Bucket(stack, 'Lake', { enforceSSL: true });
Validations.of(bucket).acknowledge({
  id: 'AwsSolutions-S1',
  reason: 'Test stand-in for the lake bucket (Storage logs it).',
});
new LakeCatalog(stack, 'LakeCatalog', { lakeBucket: bucket, products: ['BTC-USD', 'ETH-USD'] });
const nag = new AwsSolutionsChecks(app);
Validations.of(app).addPlugins(nag);
const template = Template.fromStack(stack);

// CloudFormation's casing, as synthesized.
type TableInput = {
  Name: string;
  PartitionKeys: { Name: string }[];
  Parameters: Record<string, string>;
  StorageDescriptor: { Columns: { Name: string; Type: string }[] };
};
const tables = Object.values(template.findResources('AWS::Glue::Table')).map(
  (r) => (r as { Properties: { TableInput: TableInput } }).Properties.TableInput,
);

describe('lake catalog', () => {
  it('registers one table per zone, partitioned and projected like the lake keys', () => {
    template.resourceCountIs('AWS::Glue::Database', 1);
    expect(tables.map((t) => t.Name).sort()).toEqual(['features', 'labels', 'predictions', 'raw']);
    for (const t of tables) {
      expect(t.PartitionKeys.map((k) => k.Name)).toEqual(['product', 'date', 'hour']);
      expect(t.Parameters['projection.enabled']).toBe('true');
      expect(t.Parameters['projection.product.values']).toBe('BTC-USD,ETH-USD');
      const template = JSON.stringify(t.Parameters['storage.location.template']);
      // The writer's key for the same partition values must fit the projected location.
      const key = lakeKey(t.Name as 'raw', 'BTC-USD', Date.UTC(2026, 0, 2, 3) * 1000, 's', 1, 2);
      const folder = key.slice(0, key.lastIndexOf('/'));
      expect(folder).toBe(`${t.Name}/product=BTC-USD/date=2026-01-02/hour=03`);
      expect(template).toContain(`/${t.Name}/product=\${product}/date=\${date}/hour=\${hour}`);
    }
  });

  it('declares exactly the columns the Parquet writer produces (product comes from the partition)', async () => {
    const files = {
      raw: encodeRawRows([]),
      features: encodeFeatureRows([]),
      labels: encodeLabelRows([]),
      predictions: encodePredictionRows([]),
    };
    for (const t of tables) {
      const zone = t.Name as keyof typeof files;
      const { parquetMetadata } = await import('hyparquet');
      const bytes = files[zone];
      const schema = parquetMetadata(
        bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer,
      ).schema;
      const written = schema
        .slice(1)
        .map((s) => s.name)
        .filter((n) => n !== 'product');
      expect(
        t.StorageDescriptor.Columns.map((c) => c.Name),
        zone,
      ).toEqual(written);
      expect(LAKE_COLUMNS[zone].length).toBe(written.length);
    }
    expect(await readParquetObjects(files.features)).toEqual([]);
    expect(tables.find((t) => t.Name === 'features')!.StorageDescriptor.Columns.length).toBe(
      6 + FEATURE_SPEC.features.length,
    );
  });

  it('has no cdk-nag finding', () => {
    const report = nag.validateScope(stack);
    const findings = report.violations.flatMap((v) =>
      v.violatingResources.map((r) => `${v.ruleName} at ${r.constructPath}`),
    );
    expect(findings).toEqual([]);
    expect(report.success).toBe(true);
  });
});
