import { Duration, FeatureFlags, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY } from 'aws-cdk-lib/cx-api';
import { Construct } from 'constructs';
import { type DeploymentSettings, PROVISIONED_UTILIZATION, type TableCapacity } from '../src/config.js';
import { BUCKETS, type KeyAttr, LAKE_PREFIXES, TABLES, type TableDef } from '../src/resources.js';
import { acknowledge } from './nag.js';
import { InvalidPropError, requireInt } from './validate.js';

export interface StorageProps {
  /**
   * Billing of the steadily written tables (latest, checkpoints) with their capacity, and the lake's retention
   * (snapshots, archive, Parquet zones). @default none: on-demand tables, lake kept lakeExpirationDays
   */
  readonly deployment?: Pick<
    DeploymentSettings,
    'dynamoCapacity' | 'tables' | 'snapshotRetentionDays' | 'archiveRetentionDays' | 'lakeRetentionDays'
  >;
  /** Lake objects move to Infrequent Access after this many days. @default 30 */
  readonly lakeInfrequentAccessDays?: number;
  /**
   * Lake objects expire after this many days (raw captures are re-recordable; models are not).
   * @default deployment.lakeRetentionDays, else 365
   */
  readonly lakeExpirationDays?: number;
  /** Non-current model versions are kept this long (promoted versions are immutable, never overwritten). @default 90 */
  readonly modelNoncurrentDays?: number;
  /** @default RemovalPolicy.RETAIN: market history and models are not re-creatable on a whim. */
  readonly removalPolicy?: RemovalPolicy;
}

type TableKey = keyof typeof TABLES;

const attr = (k: KeyAttr) => ({
  name: k.name,
  type: k.type === 'S' ? AttributeType.STRING : AttributeType.NUMBER,
});

/** DynamoDB tables (latest snapshot, model registry, consumer checkpoints) and S3 buckets (lake, models). */
export class Storage extends Construct {
  readonly tables: Readonly<Record<TableKey, Table>>;
  readonly latestTable: Table;
  readonly registryTable: Table;
  readonly checkpointTable: Table;
  /** The WebSocket API's open connections (push). */
  readonly connectionsTable: Table;
  readonly lakeBucket: Bucket;
  readonly modelBucket: Bucket;
  readonly accessLogsBucket: Bucket;
  /** MODEL_URI of the deployed registry: s3://<model bucket>/registry. */
  readonly modelUri: string;

  constructor(scope: Construct, id: string, props: StorageProps = {}) {
    const iaDays = requireInt(
      'Storage',
      'lakeInfrequentAccessDays',
      props.lakeInfrequentAccessDays ?? 30,
      30,
      3650,
    );
    const expireDays = requireInt(
      'Storage',
      'lakeExpirationDays',
      props.lakeExpirationDays ?? props.deployment?.lakeRetentionDays ?? 365,
      1,
      36500,
    );
    if (expireDays <= iaDays) {
      throw new InvalidPropError(
        'Storage',
        'lakeExpirationDays',
        `${expireDays} must be greater than lakeInfrequentAccessDays (${iaDays})`,
      );
    }
    const noncurrentDays = requireInt(
      'Storage',
      'modelNoncurrentDays',
      props.modelNoncurrentDays ?? 90,
      1,
      3650,
    );
    super(scope, id);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;

    // The latest and checkpoint tables take a steady, computed write rate: provisioned capacity with auto scaling
    // costs a fraction of on-demand for it. The registry is written a few times a day: on demand.
    const provisioned: Partial<Record<TableKey, TableCapacity>> =
      props.deployment?.dynamoCapacity === 'provisioned' ? props.deployment.tables : {};
    const tables = {} as Record<TableKey, Table>;
    for (const [key, def] of Object.entries(TABLES) as [TableKey, TableDef][]) {
      const capacity = provisioned[key];
      const table = new Table(this, def.logicalId, {
        partitionKey: attr(def.partitionKey),
        sortKey: def.sortKey ? attr(def.sortKey) : undefined,
        ...(capacity
          ? {
              billingMode: BillingMode.PROVISIONED,
              writeCapacity: capacity.writeUnits,
              readCapacity: capacity.readUnits,
            }
          : { billingMode: BillingMode.PAY_PER_REQUEST }),
        // An ephemeral table (open WebSocket connections) has nothing worth restoring or keeping.
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: !def.ephemeral },
        encryption: TableEncryption.AWS_MANAGED,
        timeToLiveAttribute: def.ttlAttribute,
        removalPolicy: def.ephemeral ? RemovalPolicy.DESTROY : removalPolicy,
      });
      if (def.ephemeral) {
        acknowledge(
          table,
          'AwsSolutions-DDB3',
          'Holds only open WebSocket connections, each gone within hours: nothing to recover to a point in time.',
        );
      }
      if (capacity?.autoScaling) {
        // The computed capacity is the floor; auto scaling keeps PROVISIONED_UTILIZATION above it (viewers,
        // more products than planned) up to 10x.
        const target = Math.round(PROVISIONED_UTILIZATION * 100);
        table
          .autoScaleWriteCapacity({ minCapacity: capacity.writeUnits, maxCapacity: capacity.writeUnits * 10 })
          .scaleOnUtilization({ targetUtilizationPercent: target });
        table
          .autoScaleReadCapacity({
            minCapacity: capacity.readUnits,
            maxCapacity: Math.max(100, capacity.readUnits * 10),
          })
          .scaleOnUtilization({ targetUtilizationPercent: target });
      }
      tables[key] = table;
    }
    this.tables = tables;
    this.latestTable = tables.latest;
    this.registryTable = tables.registry;
    this.checkpointTable = tables.checkpoints;
    this.connectionsTable = tables.connections;

    const secure = {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      removalPolicy,
    };

    // With @aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy (set in cdk.json) S3 log delivery is granted by bucket
    // policy, so ACLs can be disabled here too; without the flag CDK needs the LogDeliveryWrite ACL (ObjectWriter).
    const logsByPolicy = FeatureFlags.of(this).isEnabled(S3_SERVER_ACCESS_LOGS_USE_BUCKET_POLICY) ?? false;
    this.accessLogsBucket = new Bucket(this, 'AccessLogsBucket', {
      ...secure,
      objectOwnership: logsByPolicy ? ObjectOwnership.BUCKET_OWNER_ENFORCED : undefined,
      lifecycleRules: [{ expiration: Duration.days(90) }],
    });
    Validations.of(this.accessLogsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket; logging it to itself would loop.',
    });

    this.lakeBucket = new Bucket(this, BUCKETS.lake.logicalId, {
      ...secure,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'lake/',
      lifecycleRules: [
        {
          id: 'zones',
          transitions: [
            { storageClass: StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(iaDays) },
          ],
          expiration: Duration.days(expireDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        // Full-depth books (~1 MB gzip each, two a minute per product) matter only while the stream still holds
        // refs to them: the largest and least useful objects in the lake.
        ...(props.deployment
          ? [
              {
                id: 'snapshots',
                prefix: LAKE_PREFIXES.snapshots,
                expiration: Duration.days(props.deployment.snapshotRetentionDays),
              },
              {
                id: 'archive',
                prefix: LAKE_PREFIXES.archive,
                expiration: Duration.days(props.deployment.archiveRetentionDays),
              },
            ]
          : []),
      ],
    });

    this.modelBucket = new Bucket(this, BUCKETS.models.logicalId, {
      ...secure,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'models/',
      lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(noncurrentDays) }],
    });

    this.modelUri = `s3://${this.modelBucket.bucketName}/registry`;
  }
}
