/**
 * The model registry: immutable versions in S3 under MODEL_URI (s3://<bucket>/<prefix>) at
 * `<prefix>/<target>/<version>/{model.onnx, feature_spec.json, metrics.json}`, and one active pointer per
 * target in the registry table (pk="active#<target>", sk="active", version, activatedAt: REGISTRY_KEYS in
 * src/resources.ts). Each published version also gets a row (pk=<target>, sk="v#<version>") holding the files' SHA-256, which is what makes versions immutable.
 *
 * For offline use MODEL_URI=file:///path/to/dir serves `<dir>/<target>/` directly (no S3, no DynamoDB).
 */

import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetObjectCommand, ListObjectsV2Command, NoSuchKey, PutObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { dynamoClient, s3Client } from '../aws/clients.js';
import { isConditionFailure } from '../aws/errors.js';
import { readCoreConfig, readResourceNames } from '../config.js';
import { QuoteWatchError } from '../errors.js';
import { FEATURE_VERSION } from '../features/spec.js';
import type { FeatureSpec } from '../features/types.js';
import { REGISTRY_KEYS, VERSION_TAGS } from '../resources.js';
import { readActiveVersion } from './pointer.js';
import {
  type FeatureSetName,
  MODEL_SETS,
  type ModelMetrics,
  slotKey,
  TARGETS,
  type Target,
} from './types.js';

type Env = Record<string, string | undefined>;

export const MODEL_FILES = ['model.onnx', 'feature_spec.json', 'metrics.json'] as const;
export type ModelFile = (typeof MODEL_FILES)[number];

export class RegistryError extends QuoteWatchError {}

export type ModelLocation = { kind: 's3'; bucket: string; prefix: string } | { kind: 'file'; dir: string };

export function parseModelUri(uri: string): ModelLocation {
  const s3 = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(\/.*)?$/.exec(uri);
  if (s3) return { kind: 's3', bucket: s3[1]!, prefix: (s3[2] ?? '').replace(/^\/+|\/+$/g, '') };
  if (uri.startsWith('file://')) {
    try {
      return { kind: 'file', dir: fileURLToPath(uri) };
    } catch (err) {
      throw new RegistryError(`MODEL_URI ${JSON.stringify(uri)}: not a valid file URL (file:///abs/path)`, {
        cause: err,
      });
    }
  }
  throw new RegistryError(
    `MODEL_URI ${JSON.stringify(uri)}: expected s3://<bucket>/<prefix> (bucket: 3-63 lowercase letters, digits, ` +
      `dots, dashes) or file:///path/to/dir`,
  );
}

const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function checkTarget(target: string): asserts target is Target {
  if (!(TARGETS as readonly string[]).includes(target)) {
    throw new RegistryError(`unknown target ${JSON.stringify(target)}; known: ${TARGETS.join(', ')}`);
  }
}

function checkVersion(version: string): void {
  if (!VERSION_PATTERN.test(version)) {
    throw new RegistryError(
      `invalid version ${JSON.stringify(version)}: letters, digits, ".", "_", "-" only`,
    );
  }
}

/** The S3 registry of `env` (its bucket and prefix); a RegistryError for a file:// MODEL_URI, which has no versions. */
export function s3Location(env: Env): { bucket: string; prefix: string } {
  const location = parseModelUri(readCoreConfig(env).modelUri);
  if (location.kind !== 's3')
    throw new RegistryError('this operation needs MODEL_URI=s3://...; it is a file:// URI');
  return location;
}

/** A version's files are `<prefix>/<target>/<version>/<file>`; besides MODEL_FILES, training writes its records there. */
function objectKey(prefix: string, target: string, version: string, file: string): string {
  return [prefix, target, version, file].filter(Boolean).join('/');
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

async function getObject(env: Env, bucket: string, key: string): Promise<Uint8Array | undefined> {
  try {
    const res = await s3Client(env).send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await res.Body!.transformToByteArray();
  } catch (err) {
    if (err instanceof NoSuchKey || (err as { name?: string }).name === 'NoSuchKey') return undefined;
    throw err;
  }
}

export function parseJson<T>(bytes: Uint8Array, what: string): T {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as T;
  } catch (err) {
    throw new RegistryError(`${what} is not valid JSON`, { cause: err });
  }
}

/** A version's files in a local folder (a file:// registry, or a model about to be published). */
export async function readModelDir(dir: string): Promise<Record<ModelFile, Uint8Array>> {
  const files = {} as Record<ModelFile, Uint8Array>;
  for (const file of MODEL_FILES) {
    try {
      files[file] = await readFile(join(dir, file));
    } catch (err) {
      throw new RegistryError(`cannot read ${join(dir, file)}`, { cause: err });
    }
  }
  return files;
}

export interface PublishResult {
  uploaded: ModelFile[];
  /** Already in the registry with identical bytes (publishing is idempotent). */
  unchanged: ModelFile[];
}

/**
 * Uploads `<dir>/{model.onnx, feature_spec.json, metrics.json}` as `<target>/<version>`. A version is
 * immutable: publishing different bytes under an existing version fails with a RegistryError.
 */
export async function publishVersion(
  dir: string,
  target: string,
  version: string,
  env: Env = process.env,
): Promise<PublishResult> {
  checkTarget(target);
  checkVersion(version);
  const { bucket, prefix } = s3Location(env);
  const files = await readModelDir(dir);
  parseJson<FeatureSpec>(files['feature_spec.json'], `${dir}/feature_spec.json`);
  const metrics = parseJson<Partial<ModelMetrics>>(files['metrics.json'], `${dir}/metrics.json`);
  if (metrics.version !== undefined && metrics.version !== version) {
    throw new RegistryError(`${dir}/metrics.json says version ${metrics.version}, publishing as ${version}`);
  }
  const hashes: Record<string, string> = {};
  for (const file of MODEL_FILES) hashes[file] = sha256(files[file]);
  // One string identifies the version's content in the registry row.
  const digest = sha256(new TextEncoder().encode(MODEL_FILES.map((f) => hashes[f]).join('\n')));

  const result: PublishResult = { uploaded: [], unchanged: [] };
  for (const file of MODEL_FILES) {
    const key = objectKey(prefix, target, version, file);
    const existing = await getObject(env, bucket, key);
    if (existing) {
      if (sha256(existing) !== hashes[file]) {
        throw new RegistryError(
          `${target}/${version} is already published with a different ${file}; versions are immutable, ` +
            'publish under a new version',
        );
      }
      result.unchanged.push(file);
      continue;
    }
    await s3Client(env).send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: files[file] }));
    result.uploaded.push(file);
  }

  // The version row settles races between two publishers of the same version: the first one's files win.
  const table = readResourceNames(env).registryTable;
  const db = dynamoClient(env);
  const row = {
    pk: target,
    sk: `v#${version}`,
    version,
    digest,
    files: hashes,
    publishedAt: new Date().toISOString(),
  };
  try {
    await db.send(
      new PutCommand({ TableName: table, Item: row, ConditionExpression: 'attribute_not_exists(pk)' }),
    );
  } catch (err) {
    if (!isConditionFailure(err)) throw err;
    const existing = await db.send(
      new GetCommand({ TableName: table, Key: { pk: target, sk: `v#${version}` }, ConsistentRead: true }),
    );
    if (existing.Item?.digest !== digest) {
      throw new RegistryError(`${target}/${version} was published concurrently with different files`, {
        cause: err,
      });
    }
  }
  return result;
}

/** Versions are immutable: the registry table has a row for every published one. */
export async function isPublished(target: string, version: string, env: Env = process.env): Promise<boolean> {
  const out = await dynamoClient(env).send(
    new GetCommand({
      TableName: readResourceNames(env).registryTable,
      Key: { pk: target, sk: `v#${version}` },
      ConsistentRead: true,
    }),
  );
  return out.Item !== undefined;
}

export interface PublishedVersion {
  version: string;
  publishedAt: string | null;
}

/** The published versions of `target`, newest first (at most `limit`), from the registry table's rows. */
export async function listVersions(
  target: string,
  limit = 20,
  env: Env = process.env,
): Promise<PublishedVersion[]> {
  checkTarget(target);
  const out = await dynamoClient(env).send(
    new QueryCommand({
      TableName: readResourceNames(env).registryTable,
      KeyConditionExpression: 'pk = :t AND begins_with(sk, :v)',
      ExpressionAttributeValues: { ':t': target, ':v': 'v#' },
    }),
  );
  return (out.Items ?? [])
    .map((i) => ({
      version: String(i.version),
      publishedAt: typeof i.publishedAt === 'string' ? i.publishedAt : null,
    }))
    .sort(
      (a, b) =>
        (b.publishedAt ?? '').localeCompare(a.publishedAt ?? '') || b.version.localeCompare(a.version),
    )
    .slice(0, limit);
}

/** A version's file if it exists (records training may or may not have left), undefined when absent. */
export async function findVersionFile(
  target: string,
  version: string,
  file: string,
  env: Env = process.env,
): Promise<Uint8Array | undefined> {
  const { bucket, prefix } = s3Location(env);
  return getObject(env, bucket, objectKey(prefix, target, version, file));
}

/**
 * The versions of `target` that have a record `file` beside them (run.json of every run, published or not: a run
 * that failed before publishing still leaves its record), in key order.
 */
export async function versionsWithRecord(
  target: string,
  file: string,
  env: Env = process.env,
): Promise<string[]> {
  checkTarget(target);
  const { bucket, prefix } = s3Location(env);
  const base = `${objectKey(prefix, target, '', '')}/`;
  const versions: string[] = [];
  let token: string | undefined;
  do {
    const page = await s3Client(env).send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: base, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      const rest = o.Key?.slice(base.length) ?? '';
      if (rest.endsWith(`/${file}`) && !rest.slice(0, -file.length - 1).includes('/')) {
        versions.push(rest.slice(0, -file.length - 1));
      }
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return versions;
}

/**
 * The next version tag of `target`, `qs-<feature version>.0.<n>` (VERSION_TAGS in src/resources.ts): n comes
 * from the tag series' counter row (an atomic ADD), then the tag's claim row is put on condition that it does
 * not exist; a tag already claimed (a run given that version by hand) is skipped by taking the next n. Two runs
 * starting at once cannot get the same tag. The training state machine claims a tag the same way, with the same
 * keys (lib/training-pipeline.ts, the NextVersionTag and ClaimVersionTag states), so the CLI and scheduled runs
 * draw from one series. It ends: every pass advances the counter past one of the finitely many claimed tags.
 */
export async function claimNextVersion(target: string, env: Env = process.env): Promise<string> {
  checkTarget(target);
  const table = readResourceNames(env).registryTable;
  const db = dynamoClient(env);
  const series = VERSION_TAGS.series(FEATURE_VERSION);
  for (;;) {
    const counted = await db.send(
      new UpdateCommand({
        TableName: table,
        Key: REGISTRY_KEYS.tagCounter(target, series),
        UpdateExpression: 'ADD n :one',
        ExpressionAttributeValues: { ':one': 1 },
        ReturnValues: 'UPDATED_NEW',
      }),
    );
    const tag = VERSION_TAGS.tag(series, Number(counted.Attributes?.n));
    try {
      await db.send(
        new PutCommand({
          TableName: table,
          Item: { ...REGISTRY_KEYS.tagClaim(target, tag), claimedAt: new Date().toISOString() },
          ConditionExpression: 'attribute_not_exists(sk)',
        }),
      );
      return tag;
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
  }
}

/** One file of a version (a model file, or a record training left beside them); a RegistryError when absent. */
export async function readVersionFile(
  target: string,
  version: string,
  file: string,
  env: Env = process.env,
): Promise<Uint8Array> {
  const { bucket, prefix } = s3Location(env);
  const key = objectKey(prefix, target, version, file);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await getObject(env, bucket, key);
  } catch (cause) {
    throw new RegistryError(`cannot read s3://${bucket}/${key}`, { cause });
  }
  if (!bytes) throw new RegistryError(`s3://${bucket}/${key} does not exist`);
  return bytes;
}

/**
 * Writes a record beside a version's files (evaluation.json, run records). The model files themselves are only
 * ever written by publishVersion, which keeps them immutable.
 */
export async function writeVersionRecord(
  target: string,
  version: string,
  file: string,
  body: string | Uint8Array,
  env: Env = process.env,
): Promise<void> {
  if ((MODEL_FILES as readonly string[]).includes(file)) {
    throw new RegistryError(`${file} is a model file: publish it with publishVersion`);
  }
  const { bucket, prefix } = s3Location(env);
  const contentType = file.endsWith('.json')
    ? 'application/json'
    : file.endsWith('.html')
      ? 'text/html'
      : undefined;
  await s3Client(env).send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: objectKey(prefix, target, version, file),
      Body: body,
      ...(contentType ? { ContentType: contentType } : {}),
    }),
  );
}

export interface ActivateOptions {
  /** Compare-and-set: activate only if the active version is this one (null: only if none is active). */
  ifCurrent?: string | null;
}

export class ActivationConflictError extends RegistryError {}

/** How many earlier active versions a pointer remembers (what `quotewatch models rollback` goes back to). */
export const POINTER_HISTORY = 20;

/** The feature set a published version takes (its feature_spec.json's `set`; none = the whole row, l2). */
export async function versionFeatureSet(
  target: string,
  version: string,
  env: Env = process.env,
): Promise<FeatureSetName> {
  const spec = parseJson<Partial<FeatureSpec>>(
    await readVersionFile(target, version, 'feature_spec.json', env),
    `${target}/${version}/feature_spec.json`,
  );
  const set = spec.set ?? 'l2';
  if (!MODEL_SETS.includes(set)) {
    throw new RegistryError(
      `${target}/${version}/feature_spec.json names an unknown feature set ${JSON.stringify(set)}`,
    );
  }
  return set;
}

export interface ActivePointer {
  version: string;
  activatedAt: string | null;
  /** The versions active before, newest first. */
  previous: string[];
}

/** The active pointer of a slot with its history, or undefined when none was activated. */
export async function readPointer(
  target: string,
  set: FeatureSetName = 'l2',
  env: Env = process.env,
): Promise<ActivePointer | undefined> {
  checkTarget(target);
  const out = await dynamoClient(env).send(
    new GetCommand({
      TableName: readResourceNames(env).registryTable,
      Key: REGISTRY_KEYS.active(target, set),
      ConsistentRead: true,
    }),
  );
  const item = out.Item;
  if (!item || typeof item.version !== 'string') return undefined;
  return {
    version: item.version,
    activatedAt: typeof item.activatedAt === 'string' ? item.activatedAt : null,
    previous: Array.isArray(item.previous)
      ? item.previous.filter((v): v is string => typeof v === 'string')
      : [],
  };
}

/**
 * Points the slot of a published version (its target and feature set) at it: a conditional write on the
 * pointer, against `ifCurrent` when given, else against the pointer as read here (so two activations racing
 * cannot both win). The version replaced goes to the pointer's `previous` list.
 */
export async function activate(
  target: string,
  version: string,
  env: Env = process.env,
  options: ActivateOptions = {},
): Promise<void> {
  checkTarget(target);
  checkVersion(version);
  const table = readResourceNames(env).registryTable;
  const db = dynamoClient(env);
  if (!(await isPublished(target, version, env)))
    throw new RegistryError(`${target}/${version} is not published; publish it first`);
  const set = await versionFeatureSet(target, version, env);
  const current = await readPointer(target, set, env);
  const expected = options.ifCurrent === undefined ? (current?.version ?? null) : options.ifCurrent;
  const condition =
    expected === null
      ? { ConditionExpression: 'attribute_not_exists(pk)' }
      : { ConditionExpression: 'version = :current', ExpressionAttributeValues: { ':current': expected } };
  const previous =
    current && current.version !== version
      ? [current.version, ...current.previous]
      : (current?.previous ?? []);
  try {
    await db.send(
      new PutCommand({
        TableName: table,
        Item: {
          ...REGISTRY_KEYS.active(target, set),
          version,
          activatedAt: new Date().toISOString(),
          previous: previous.slice(0, POINTER_HISTORY),
        },
        ...condition,
      }),
    );
  } catch (err) {
    if (isConditionFailure(err)) {
      const what = expected === null ? 'no active version' : `active version ${expected}`;
      throw new ActivationConflictError(
        `${slotKey(target, set)}: expected ${what}, but the pointer changed`,
        {
          cause: err,
        },
      );
    }
    throw err;
  }
}

/**
 * Goes back: activates `version`, or without one the version active before the current one (the pointer's
 * history), as a compare-and-set on the current pointer. Returns the version now active.
 */
export async function rollback(
  target: string,
  set: FeatureSetName = 'l2',
  version?: string,
  env: Env = process.env,
): Promise<{ from: string; to: string }> {
  const current = await readPointer(target, set, env);
  if (!current) throw new RegistryError(`${slotKey(target, set)} has no active version to roll back from`);
  const to = version ?? current.previous[0];
  if (!to)
    throw new RegistryError(
      `${slotKey(target, set)}: no earlier version was active before ${current.version}`,
    );
  if (to === current.version) throw new RegistryError(`${slotKey(target, set)}: ${to} is already active`);
  const toSet = await versionFeatureSet(target, to, env);
  if (toSet !== set) throw new RegistryError(`${target}/${to} takes the ${toSet} feature set, not ${set}`);
  await activate(target, to, env, { ifCurrent: current.version });
  return { from: current.version, to };
}

/** The active version of a target's slot (l2 unless `set` says otherwise), undefined when none was activated. */
export async function activeVersion(
  target: string,
  env: Env = process.env,
  set: FeatureSetName = 'l2',
): Promise<string | undefined> {
  checkTarget(target);
  return readActiveVersion(dynamoClient(env), readResourceNames(env).registryTable, target, set);
}

export interface SeedResult {
  published: string[];
  activated: string[];
}

/**
 * Publishes each `<baselineDir>/<slot>/` (slotKey: `<target>` for l2, `<target>.ticker`; version from its
 * metrics.json) and activates it when its slot has no active version. Idempotent; never replaces an active
 * version.
 */
export async function seedRegistry(baselineDir: string, env: Env = process.env): Promise<SeedResult> {
  const result: SeedResult = { published: [], activated: [] };
  if (parseModelUri(readCoreConfig(env).modelUri).kind === 'file') return result;
  for (const target of TARGETS) {
    for (const set of MODEL_SETS) {
      const dir = join(baselineDir, slotKey(target, set));
      if (!existsSync(join(dir, 'metrics.json'))) continue;
      const metrics = parseJson<Partial<ModelMetrics>>(
        await readFile(join(dir, 'metrics.json')),
        `${dir}/metrics.json`,
      );
      if (typeof metrics.version !== 'string')
        throw new RegistryError(`${dir}/metrics.json has no "version"`);
      const published = await publishVersion(dir, target, metrics.version, env);
      if (published.uploaded.length > 0) result.published.push(`${target}/${metrics.version}`);
      if ((await activeVersion(target, env, set)) !== undefined) continue;
      try {
        await activate(target, metrics.version, env, { ifCurrent: null });
        result.activated.push(`${slotKey(target, set)}/${metrics.version}`);
      } catch (err) {
        // Another process seeded first: that is the outcome we wanted.
        if (!(err instanceof ActivationConflictError)) throw err;
      }
    }
  }
  return result;
}
