/**
 * The training state machine of the CDK app, run locally (bin/localTraining.ts: the synthesized definition, each
 * Task bound to the same code) against real local AWS (s3rver, dynalite), on a lake written by the project's own
 * LakeWriter from a seeded simulated market: a run without a version claims the next version tag inside the
 * machine (one series with the CLI's claimNextVersion, skipping a tag a run given by hand took), every end
 * publishes its notification (promoted, kept with the gate's reasons, failed with error and cause), and a failed
 * execution leaves failure.json beside the run's files, which `quotewatch runs` lists as failed even when the
 * trainer never wrote a run record. The input's `set` picks the model slot: absent, l2; `ticker` trains with
 * TRAIN_SET=ticker and moves only the ticker slot's pointer; another set fails the run before any claim.
 */

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LocalRun,
  type Notification,
  runTrainingStateMachine,
  type SynthesizedDefinition,
  synthesizeTrainingDefinition,
} from '../bin/localTraining.js';
import { simulateRows } from '../models/baseline.js';
import { formatListedRuns, listRunsWithFailures } from '../models/runs.js';
import { dynamoClient, s3Client } from '../src/aws/clients.js';
import { FEATURE_VERSION } from '../src/features/spec.js';
import { type Emulators, startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { activeVersion, claimNextVersion, readPointer } from '../src/model/registry.js';
import type { FeatureSetName } from '../src/model/types.js';
import {
  BUCKETS,
  EXECUTION_FAILURE_RECORD,
  LOCAL_MODEL_URI,
  REGISTRY_KEYS,
  TABLES,
  VERSION_TAGS,
} from '../src/resources.js';
import { LakeWriter } from '../src/storage/lake.js';

const TARGET = 'quote_change_500ms';
const SERIES = VERSION_TAGS.series(FEATURE_VERSION);
const tag = (n: number) => VERSION_TAGS.tag(SERIES, n);

describe('the training state machine, run locally: version tags, notifications, failure records', () => {
  let root: string;
  let emulators: Emulators;
  let env: Record<string, string>;
  let synth: SynthesizedDefinition;
  let notificationsFile: string;
  const progress: string[] = [];

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'qw-sm-'));
    notificationsFile = join(root, 'notifications', 'training.jsonl');
    emulators = await startEmulators({ dataDir: join(root, 'data') });
    // No baseline seeded: the first candidate is judged against the base rate (PromoteFirst). The gate's limits
    // are loose: this file tests the state machine's paths, not how good the learner is on 20 minutes (the
    // training job's own tests hold the default gate); a run meant to be kept is given an unreachable margin.
    env = {
      ...emulators.env,
      MODEL_URI: LOCAL_MODEL_URI,
      PROMOTE_BLOCK_S: '10',
      PROMOTE_MAX_ECE: '0.5',
      PROMOTE_MIN_HORIZONS: '1',
      PROMOTE_MIN_POSITIVES: '1',
    };
    await provision(env, { seed: false });
    // 20 minutes: enough held-out rows for the gate to tell a model from noise (as models/train/main.test.ts).
    const data = simulateRows(11, 20);
    const writer = new LakeWriter({
      s3: s3Client(env),
      bucket: BUCKETS.lake.localName,
      shardId: 'shardId-000000000000',
      tickMs: 100,
    });
    writer.addFeatures(data.rows);
    writer.addLabels(data.labels);
    await writer.close();
    // The CDK app's synth (its Lambda functions bundled) and 20 simulated minutes: minutes on a loaded machine.
    synth = synthesizeTrainingDefinition();
  }, 300_000);

  afterAll(async () => {
    await emulators?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  const run = (
    version: string | undefined,
    extra: Record<string, string> = {},
    set?: FeatureSetName,
  ): Promise<LocalRun> =>
    runTrainingStateMachine(TARGET, version, { ...env, ...extra }, (l) => progress.push(l), synth, {
      notificationsFile,
      ...(set === undefined ? {} : { set }),
    });
  const readRecord = async (version: string, file: string) => {
    const res = await s3Client(env).send(
      new GetObjectCommand({
        Bucket: BUCKETS.models.localName,
        Key: `registry/${TARGET}/${version}/${file}`,
      }),
    );
    return JSON.parse(await res.Body!.transformToString()) as Record<string, unknown>;
  };
  const claimRow = async (version: string) =>
    (
      await dynamoClient(env).send(
        new GetCommand({
          TableName: TABLES.registry.localName,
          Key: REGISTRY_KEYS.tagClaim(TARGET, version),
          ConsistentRead: true,
        }),
      )
    ).Item;
  const only = (r: LocalRun): Notification => {
    expect(r.notifications).toHaveLength(1);
    return r.notifications[0]!;
  };

  let first: LocalRun;

  it('an execution without a version claims the next tag itself, trains it, promotes it and notifies', async () => {
    first = await run(undefined);
    expect(first.error).toBeUndefined();
    expect(first.status).toBe('SUCCEEDED');
    expect(first.version).toBe(tag(1));
    // Named as a scheduled execution is (a UUID), not after the version.
    expect(first.execution).toMatch(/^[0-9a-f-]{36}$/);
    expect(first.states).toEqual([
      // No set in the input: the l2 slot.
      'WhichSlot?',
      'Slot-l2',
      'HasVersion?',
      'NextVersionTag',
      'ClaimVersionTag',
      'UseVersionTag',
      'Train',
      'Evaluate',
      'ReadEvaluation',
      'PassesGate?',
      'PromoteFirst',
      'NotifyPromoted',
      'Promoted',
    ]);
    expect(await activeVersion(TARGET, env)).toBe(tag(1));
    expect(await claimRow(tag(1))).toMatchObject({
      execution: expect.stringContaining(first.execution),
    });
    const n = only(first);
    expect(n.subject).toBe('QuoteWatch training: promoted');
    expect(n.attributes).toEqual({ outcome: 'promoted', target: TARGET });
    const evaluation = await readRecord(tag(1), 'evaluation.json');
    expect(n.message).toMatchObject({
      outcome: 'promoted',
      target: TARGET,
      version: tag(1),
      active: null,
      reference: 'base_rate',
      candidate: evaluation.candidate,
      reasons: [],
    });
    expect(progress).toContain(`[${TARGET} ${tag(1)}] claimed version ${tag(1)}`);
    expect(
      progress.some((l) => l.startsWith(`[${TARGET} ${tag(1)}] notification QuoteWatch training: promoted`)),
    ).toBe(true);
  }, 240_000);

  it("the CLI's claimNextVersion draws from the same series; a version given by hand is kept from the claims", async () => {
    expect(await claimNextVersion(TARGET, env)).toBe(tag(2));
    // By hand, a version that is the series' next tag, and a margin no candidate can clear.
    const kept = await run(tag(3), { PROMOTE_MARGIN: '1000' });
    expect(kept.error).toBeUndefined();
    expect(kept.execution).toBe(tag(3));
    expect(kept.states.slice(0, 6)).toEqual([
      'WhichSlot?',
      'Slot-l2',
      'HasVersion?',
      'Prepare',
      'ReserveVersion',
      'Train',
    ]);
    expect(kept.states.slice(-3)).toEqual(['PassesGate?', 'NotifyKept', 'KeptActive']);
    expect(await claimRow(tag(3))).toBeDefined();
    expect(await activeVersion(TARGET, env)).toBe(tag(1));
    const evaluation = (await readRecord(tag(3), 'evaluation.json')) as {
      decision: { reasons: string[] };
      active: { version: string };
    };
    expect(evaluation.decision.reasons).toContainEqual(expect.stringMatching(/not above the margin 1000/));
    const n = only(kept);
    expect(n.attributes.outcome).toBe('kept');
    expect(n.message).toMatchObject({
      outcome: 'kept',
      version: tag(3),
      active: { version: tag(1) },
      reasons: evaluation.decision.reasons,
    });
  }, 240_000);

  it('a failing run: the claim skips the taken tag; the failure is recorded beside the run, notified, and fails the execution', async () => {
    const failing = await run(undefined, { LAKE_BUCKET: 'qw-test-lake-missing' });
    expect(failing.status).toBe('FAILED');
    // tag(3) was taken by hand: its claim fails and the next n is taken.
    expect(failing.version).toBe(tag(4));
    expect(failing.states.slice(0, 8)).toEqual([
      'WhichSlot?',
      'Slot-l2',
      'HasVersion?',
      'NextVersionTag',
      'ClaimVersionTag',
      'NextVersionTag',
      'ClaimVersionTag',
      'UseVersionTag',
    ]);
    expect(failing.retries).toBe(2); // taskAttempts 3 in all
    expect(failing.states.slice(-4)).toEqual([
      'DescribeFailure',
      'RecordFailure',
      'NotifyFailed',
      'TrainingFailed',
    ]);
    expect(failing.error).toMatch(/trainer train exited 1/);
    expect(await activeVersion(TARGET, env)).toBe(tag(1));
    const failure = await readRecord(tag(4), EXECUTION_FAILURE_RECORD);
    expect(failure).toEqual({
      outcome: 'failed',
      target: TARGET,
      version: tag(4),
      execution: expect.stringContaining(failing.execution),
      failedAt: expect.any(String),
      error: 'States.TaskFailed',
      cause: expect.stringMatching(/trainer train exited 1/),
    });
    // The notification is the record.
    const n = only(failing);
    expect(n.attributes).toEqual({ outcome: 'failed', target: TARGET });
    expect(n.message).toEqual(failure);
    // The trainer wrote its own failed run record too (its step threw): the listing keeps the trainer's error.
    expect((await readRecord(tag(4), 'run.json')).status).toBe('failed');
  }, 240_000);

  it('a task that fails before the trainer can write a run record (here a configuration it refuses) is listed by its failure record', async () => {
    const broken = await run('broken-1', { TRAIN_FRACTION: 'most' });
    expect(broken.status).toBe('FAILED');
    expect(broken.states.at(-1)).toBe('TrainingFailed');
    expect(broken.error).toMatch(/trainer train exited 2/);
    await expect(readRecord('broken-1', 'run.json')).rejects.toThrow();
    expect(await readRecord('broken-1', EXECUTION_FAILURE_RECORD)).toMatchObject({
      outcome: 'failed',
      error: 'States.TaskFailed',
    });
    const runs = new Map((await listRunsWithFailures(env, [TARGET])).map((r) => [r.version, r]));
    expect(runs.get('broken-1')).toMatchObject({
      status: 'failed',
      error: { step: 'state machine', name: 'States.TaskFailed', message: expect.stringMatching(/exited 2/) },
    });
    expect(runs.get(tag(4))).toMatchObject({ status: 'failed', error: { step: 'train' } });
    expect(runs.get(tag(1))?.status).toBe('passed');
    expect(runs.get(tag(3))?.status).toBe('rejected');
    expect(formatListedRuns([...runs.values()])).toMatch(
      /quote_change_500ms\s+broken-1\s+failed\s+state machine: trainer train exited 2/,
    );
  }, 240_000);

  it("{target, set: 'ticker'}: trains the ticker slot (TRAIN_SET=ticker) and moves only its pointer, as the gate decided", async () => {
    const l2Before = await readPointer(TARGET, 'l2', env);
    expect(l2Before?.version).toBe(tag(1));
    expect(await activeVersion(TARGET, env, 'ticker')).toBeUndefined();
    const ticker = await run(undefined, {}, 'ticker');
    expect(ticker.error).toBeUndefined();
    expect(ticker.status).toBe('SUCCEEDED');
    // One tag series per target, shared by its slots: tag(4) went to the failed run, broken-1 was given by hand.
    expect(ticker.version).toBe(tag(5));
    expect(ticker.states.slice(0, 8)).toEqual([
      'WhichSlot?',
      'Slot-ticker',
      'HasVersion?',
      'NextVersionTag',
      'ClaimVersionTag',
      'UseVersionTag',
      'Train',
      'Evaluate',
    ]);
    // The trainer got TRAIN_SET=ticker: a candidate of the ticker set, judged against the ticker slot (empty).
    const spec = await readRecord(tag(5), 'feature_spec.json');
    expect(spec.set).toBe('ticker');
    const evaluation = (await readRecord(tag(5), 'evaluation.json')) as {
      featureSet: string;
      active: unknown;
      decision: { promote: boolean; reasons: string[] };
    };
    expect(evaluation.featureSet).toBe('ticker');
    expect(evaluation.active).toBeNull();
    const promoted = evaluation.decision.promote;
    const n = only(ticker);
    if (promoted) {
      expect(ticker.states.slice(-4)).toEqual(['PassesGate?', 'PromoteFirst', 'NotifyPromoted', 'Promoted']);
      expect(await activeVersion(TARGET, env, 'ticker')).toBe(tag(5));
      expect((await readPointer(TARGET, 'ticker', env))?.previous).toEqual([]);
    } else {
      expect(ticker.states.slice(-3)).toEqual(['PassesGate?', 'NotifyKept', 'KeptActive']);
      expect(evaluation.decision.reasons.length).toBeGreaterThan(0);
      expect(n.message).toMatchObject({ reasons: evaluation.decision.reasons });
      expect(await activeVersion(TARGET, env, 'ticker')).toBeUndefined();
    }
    expect(n.attributes).toEqual({ outcome: promoted ? 'promoted' : 'kept', target: TARGET });
    expect(n.message).toMatchObject({ target: TARGET, set: 'ticker', version: tag(5), active: null });
    // The l2 slot's pointer is untouched, history and all.
    expect(await readPointer(TARGET, 'l2', env)).toEqual(l2Before);
    expect(progress).toContain(`[${TARGET}.ticker ${tag(5)}] claimed version ${tag(5)}`);
  }, 240_000);

  it('a ticker run given a version (Prepare carries the slot) is judged against the ticker slot, never the l2 one', async () => {
    const tickerActive = await activeVersion(TARGET, env, 'ticker');
    const kept = await run('ticker-kept', { PROMOTE_MARGIN: '1000' }, 'ticker');
    expect(kept.error).toBeUndefined();
    expect(kept.states.slice(0, 6)).toEqual([
      'WhichSlot?',
      'Slot-ticker',
      'HasVersion?',
      'Prepare',
      'ReserveVersion',
      'Train',
    ]);
    expect(kept.states.slice(-3)).toEqual(['PassesGate?', 'NotifyKept', 'KeptActive']);
    const evaluation = (await readRecord('ticker-kept', 'evaluation.json')) as {
      featureSet: string;
      active: { version: string } | null;
    };
    expect(evaluation.featureSet).toBe('ticker');
    expect(evaluation.active?.version).toBe(tickerActive);
    expect(evaluation.active?.version).not.toBe(tag(1));
    expect(await activeVersion(TARGET, env, 'ticker')).toBe(tickerActive);
    expect(await activeVersion(TARGET, env)).toBe(tag(1));
  }, 240_000);

  it('an input whose set is none of the slots fails, notified, before a tag is claimed or anything trained', async () => {
    const bad = await run(undefined, {}, 'depth' as FeatureSetName);
    expect(bad.status).toBe('FAILED');
    expect(bad.version).toBeUndefined();
    expect(bad.states).toEqual([
      'WhichSlot?',
      'UnknownSet',
      'DescribeClaimFailure',
      'NotifyFailed',
      'TrainingFailed',
    ]);
    expect(bad.error).toMatch(/set must be one of: l2, ticker/);
    expect(only(bad).message).toMatchObject({
      outcome: 'failed',
      target: TARGET,
      error: 'QuoteWatch.UnknownSet',
      cause: expect.stringContaining('l2, ticker'),
    });
    expect(only(bad).message).not.toHaveProperty('version');
    // Nothing claimed: the CLI's next tag is the one after the ticker run's.
    expect(await claimNextVersion(TARGET, env)).toBe(tag(6));
  }, 60_000);

  it('every notification was appended to the notifications file, one JSON line each, in order', () => {
    const lines = readFileSync(notificationsFile, 'utf8').trim().split('\n');
    const outcomes = lines.map((l) => (JSON.parse(l) as Notification).attributes.outcome);
    expect(outcomes.slice(0, 4)).toEqual(['promoted', 'kept', 'failed', 'failed']);
    // The ticker runs' (the first as its gate decided), then the unknown set's.
    expect(outcomes.slice(4)).toEqual([expect.stringMatching(/^(promoted|kept)$/), 'kept', 'failed']);
    expect(JSON.parse(lines[0]!)).toEqual(first.notifications[0]);
  });
});
