#!/usr/bin/env -S node --import tsx
/**
 * quotewatch <command>: the local runner. `npm start` is `quotewatch start`.
 * A new command is one entry in COMMANDS: defineCommand({ usage, summary, options, positionals, run }), its
 * options declared as node:util parseArgs options (bin/cli.ts parses them and reports usage errors).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { evaluateMarkets, formatPooled, HELD_OUT_SEEDS, MARKET_HOURS } from '../models/eval/markets.js';
import { formatWalkForward } from '../models/eval/walkForward.js';
import { formatListedRuns, listRunsWithFailures } from '../models/runs.js';
import { TRAINING_STEPS } from '../models/train/steps.js';
import { regionOf, type SmokeAuth, smokeCommand } from '../src/api/smoke.js';
import { audit, formatAudit } from '../src/audit/audit.js';
import {
  orExit,
  readCoreConfig,
  readLocalConfig,
  readSimulatorConfig,
  readTrainingConfig,
} from '../src/config.js';
import { CostUsageError, costCommand } from '../src/cost/report.js';
import { DEFAULT_EMULATOR_PORTS, emulatorEnv, startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { startSystem } from '../src/local/supervisor.js';
import { componentLogger } from '../src/log.js';
import { rollback } from '../src/model/registry.js';
import { MODEL_SETS, TARGETS } from '../src/model/types.js';
import { RECORDING_FORMATS } from '../src/replay/readers.js';
import { runReplay } from '../src/replay/replay.js';
import type { ReplaySpeed } from '../src/replay/server.js';
import { LOCAL_MODEL_URI } from '../src/resources.js';
import { calibrateCommand } from '../src/simulator/calibrate.js';
import { simulateCommand } from '../src/simulator/longrun.js';
import { type Command, defineCommand, oneOf, runCli, UsageError } from './cli.js';

const TRAINING_ENTRY = fileURLToPath(new URL('../models/train/main.ts', import.meta.url));
const LOCAL_TRAINING_ENTRY = fileURLToPath(new URL('./localTraining.ts', import.meta.url));

/**
 * Resolves on the first SIGINT/SIGTERM. A second one exits at once: the exit hooks still kill every child, but
 * without the graceful shutdown.
 */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((done) => {
    let received = false;
    const handler = (signal: NodeJS.Signals) => {
      if (received) {
        console.error(`[quotewatch] ${signal} again: exiting without waiting`);
        process.exit(1);
      }
      received = true;
      done(signal);
    };
    process.on('SIGINT', handler);
    process.on('SIGTERM', handler);
  });
}

/** The AWS endpoints: the caller's AWS_ENDPOINT_URL_* if set, else the local emulators on their fixed ports. */
function awsEnv(): Record<string, string | undefined> {
  const hasEndpoints = Object.keys(process.env).some((key) => key.startsWith('AWS_ENDPOINT_URL'));
  // Never a real AWS account by accident: without endpoint variables, the local emulators.
  return hasEndpoints ? process.env : { ...process.env, ...emulatorEnv(DEFAULT_EMULATOR_PORTS) };
}

/** A whole number from 0 to `max` given for option `what`, else a UsageError. */
function wholeNumberArg(what: string, value: string, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < 0 || n > max)
    throw new UsageError(`${what}: expected a whole number from 0 to ${max}; got ${JSON.stringify(value)}`);
  return n;
}

/** A simulator seed given on the command line: 32 bits. */
const seedArg = (value: string) => wholeNumberArg('--seed', value, 0xffffffff);

function dataDir(): string {
  return resolve(orExit(() => readLocalConfig()).dataDir);
}

const COMMANDS: Record<string, Command> = {
  start: defineCommand({
    usage: 'start [--live]',
    summary: 'emulators, provisioning and every component; --live reads Coinbase instead of the simulator',
    options: { live: { type: 'boolean' } },
    async run({ values }) {
      const { gatewayPort, ingestors, workers } = orExit(() => readLocalConfig());
      const simulatorPort = orExit(() => readSimulatorConfig()).port;
      const signal = untilSignal();
      const ports = { gateway: gatewayPort, simulator: simulatorPort };
      const system = await startSystem({
        dataDir: dataDir(),
        live: values.live ?? false,
        ports,
        ingestors,
        workers,
      });
      console.log(
        `[quotewatch] running (feed ${system.urls.feed}, push ${system.urls.websocket}); Ctrl-C stops everything`,
      );
      console.log(`[quotewatch] ${await signal}: stopping`);
      await system.stop();
      return 0;
    },
  }),
  emulators: defineCommand({
    usage: 'emulators',
    summary: `only the emulators, on ports ${Object.values(DEFAULT_EMULATOR_PORTS).join('/')}, until Ctrl-C`,
    async run() {
      const signal = untilSignal();
      const emulators = await startEmulators({ dataDir: dataDir(), ports: DEFAULT_EMULATOR_PORTS });
      console.log(`# emulators running, data in ${emulators.dataDir}; for another shell:`);
      for (const [key, value] of Object.entries(emulators.env)) console.log(`export ${key}=${value}`);
      await signal;
      await emulators.stop();
      return 0;
    },
  }),
  provision: defineCommand({
    usage: 'provision',
    summary: 'create the stream, tables and buckets (idempotent) and seed the model registry',
    async run() {
      // Without endpoint variables: the local emulators (deployed resources come from CDK).
      const env = awsEnv();
      const where = ['KINESIS', 'DYNAMODB', 'S3'].map(
        (s) => env[`AWS_ENDPOINT_URL_${s}`] ?? env.AWS_ENDPOINT_URL,
      );
      console.log(`[provision] endpoints: ${where.join(', ')}`);
      await provision(env, { log: (line) => console.log(`[provision] ${line}`) });
      return 0;
    },
  }),
  replay: defineCommand({
    usage: `replay FILE [--speed 1|N|max] [--format auto|${RECORDING_FORMATS.join('|')}]`,
    summary: 'feed a recording through the ingest path into the stream (emulators must be running)',
    options: { speed: { type: 'string', default: '1' }, format: { type: 'string', default: 'auto' } },
    positionals: ['FILE'],
    async run({ values, positionals: [file] }) {
      const speed: ReplaySpeed = values.speed === 'max' ? 'max' : Number(values.speed);
      if (speed !== 'max' && !(speed > 0)) throw new UsageError('--speed: expected a number > 0 or max');
      const format = oneOf('--format', values.format, ['auto', ...RECORDING_FORMATS]);
      const env = awsEnv();
      const symbols = env.SYMBOLS ? orExit(() => readCoreConfig(env)).symbols : undefined;
      const summary = await runReplay({
        path: resolve(file),
        speed,
        format,
        env,
        ...(symbols ? { products: symbols } : {}),
        log: componentLogger('replay'),
      });
      console.log(`[replay] ${JSON.stringify(summary)}`);
      return 0;
    },
  }),
  calibrate: defineCommand({
    usage: `calibrate RECORDING [--out FILE] [--format auto|${RECORDING_FORMATS.join('|')}] [--seed N] [--products P,...]`,
    summary:
      'fit a simulator profile (SIM_PROFILE) to a recording; prints recording and simulation side by side',
    options: {
      out: { type: 'string' },
      format: { type: 'string', default: 'auto' },
      seed: { type: 'string', default: '1' },
      products: { type: 'string' },
    },
    positionals: ['RECORDING'],
    async run({ values, positionals: [recording] }) {
      return calibrateCommand({
        path: recording,
        format: oneOf('--format', values.format, ['auto', ...RECORDING_FORMATS]),
        seed: seedArg(values.seed),
        ...(values.out ? { out: values.out } : {}),
        ...(values.products ? { products: values.products.split(',').map((p) => p.trim()) } : {}),
      });
    },
  }),
  simulate: defineCommand({
    usage: 'simulate --hours N [--products P,...] [--seed S]',
    summary:
      'fill the lake with N hours of simulated market (mapper, record codec, worker; starts emulators if none run)',
    options: { hours: { type: 'string' }, products: { type: 'string' }, seed: { type: 'string' } },
    async run({ values }) {
      const hours = Number(values.hours);
      if (values.hours === undefined || !(hours > 0) || hours > 24 * 365)
        throw new UsageError('--hours: expected a number of hours > 0');
      const env = awsEnv();
      const seed =
        values.seed === undefined ? orExit(() => readSimulatorConfig(env)).seed : seedArg(values.seed);
      const products = orExit(() =>
        readCoreConfig(values.products ? { ...env, SYMBOLS: values.products } : env),
      ).symbols;
      return simulateCommand({ hours, seed, products }, env);
    },
  }),
  train: defineCommand({
    usage: `train ${TRAINING_STEPS.join('|')}`,
    summary: 'a training job step (CANDIDATE_VERSION=...) against the local emulators, or AWS_ENDPOINT_URL_*',
    positionals: ['STEP'],
    async run({ positionals: [name] }) {
      const step = oneOf('STEP', name, TRAINING_STEPS);
      const env = awsEnv();
      orExit(() => readTrainingConfig(env));
      // The same entry the training state machine runs, as its own process (it brings onnxruntime).
      const child = spawn(process.execPath, ['--import', 'tsx', TRAINING_ENTRY, step], {
        env,
        stdio: 'inherit',
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      return code ?? 1;
    },
  }),
  audit: defineCommand({
    usage: 'audit SIM_LOG [--json]',
    summary:
      "exactly-once audit: the simulator's log of what it sent (SIM_LOG) against the stream, the lake and the latest table",
    options: { json: { type: 'boolean', default: false } },
    positionals: ['SIM_LOG'],
    async run({ values, positionals: [simLog] }) {
      if (!existsSync(simLog)) throw new UsageError(`SIM_LOG: no such file ${simLog}`);
      const report = await audit({ simLog, env: awsEnv(), targets: TARGETS });
      console.log(values.json ? JSON.stringify(report, null, 2) : formatAudit(report));
      return report.clean ? 0 : 1;
    },
  }),
  pipeline: defineCommand({
    usage: 'pipeline [--target T] [--set l2|ticker] [--version V]',
    summary:
      "the training state machine (the CDK app's definition) run locally: claim a version tag (without --version), train, evaluate, gate, promote or keep the slot's model (--set, in the input; absent, the l2 slot), notify (printed and appended to <QW_DATA_DIR>/training-notifications.jsonl)",
    options: { target: { type: 'string' }, set: { type: 'string' }, version: { type: 'string' } },
    async run({ values }) {
      const targets = values.target === undefined ? TARGETS : [oneOf('--target', values.target, TARGETS)];
      // Given, the input's `set`; absent, the input has none and the definition takes l2 (as a {target} input).
      const set = values.set === undefined ? [] : ['--set', oneOf('--set', values.set, MODEL_SETS)];
      const env = { MODEL_URI: LOCAL_MODEL_URI, ...awsEnv() };
      let failed = 0;
      for (const target of targets) {
        // Without --version the execution claims the next qs-x.y.z tag itself, as a scheduled one does.
        const version = values.version === undefined ? [] : [values.version];
        // Its own process, as `train` does: the CDK app and the Step Functions interpreter load only here.
        const args = ['--import', 'tsx', LOCAL_TRAINING_ENTRY, target, ...version, ...set];
        const child = spawn(process.execPath, args, { env, stdio: 'inherit' });
        const [code] = (await once(child, 'exit')) as [number | null];
        if (code !== 0) failed++;
      }
      return failed === 0 ? 0 : 1;
    },
  }),
  models: defineCommand({
    usage: 'models rollback TARGET [--set l2|ticker] [--version V]',
    summary:
      'activate the version active before the current one (or --version), compare-and-set on the pointer',
    positionals: ['ACTION', 'TARGET'],
    options: { set: { type: 'string', default: 'l2' }, version: { type: 'string' } },
    async run({ values, positionals: [action, target] }) {
      oneOf('ACTION', action, ['rollback'] as const);
      const { from, to } = await rollback(
        oneOf('TARGET', target, TARGETS),
        oneOf('--set', values.set, MODEL_SETS),
        values.version,
        { MODEL_URI: LOCAL_MODEL_URI, ...awsEnv() },
      );
      console.log(`${target}: ${from} -> ${to}`);
      return 0;
    },
  }),
  walkforward: defineCommand({
    usage: 'walkforward [--hours H] [--seeds S,...] [--target T] [--set l2|ticker] [--json]',
    summary:
      'walk-forward evaluation of the chosen learner against the baselines on simulated markets, each market and pooled (the quality bench, models/eval/markets.ts)',
    options: {
      hours: { type: 'string', default: String(MARKET_HOURS) },
      seeds: { type: 'string', default: HELD_OUT_SEEDS.join(',') },
      target: { type: 'string' },
      set: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    async run({ values }) {
      const hours = wholeNumberArg('--hours', values.hours, 24 * 30);
      if (hours === 0) throw new UsageError('--hours: at least 1');
      const seeds = values.seeds.split(',').map(seedArg);
      const { runs, pooled } = await evaluateMarkets({
        seeds,
        hours,
        targets: values.target === undefined ? TARGETS : [oneOf('--target', values.target, TARGETS)],
        sets: values.set === undefined ? MODEL_SETS : [oneOf('--set', values.set, MODEL_SETS)],
        onRun: ({ seed, report }) => console.error(`seed ${seed}: ${report.target} ${report.set} done`),
      });
      const reports = [...runs.values()].flat().map(({ seed, report }) => ({ seed, ...report }));
      console.log(
        values.json
          ? JSON.stringify({ markets: reports, pooled }, null, 2)
          : `${formatWalkForward(reports)}\n\n${formatPooled(pooled)}`,
      );
      return 0;
    },
  }),
  runs: defineCommand({
    usage: 'runs [--target T] [--json]',
    summary:
      'the records of the training runs (passed, rejected, failed), newest first, from the model registry',
    options: { target: { type: 'string' }, json: { type: 'boolean', default: false } },
    async run({ values }) {
      const targets = values.target === undefined ? TARGETS : [oneOf('--target', values.target, TARGETS)];
      const runs = await listRunsWithFailures(awsEnv(), targets);
      console.log(values.json ? JSON.stringify(runs, null, 2) : formatListedRuns(runs));
      return 0;
    },
  }),
  cost: defineCommand({
    usage: 'cost [-c key=value ...] [--viewers N] [--requests N] [--json]',
    summary: 'the monthly AWS cost of the deployment cdk.json and -c describe, polling vs fan-out',
    options: {
      context: { type: 'string', short: 'c', multiple: true },
      requests: { type: 'string', default: '0' },
      viewers: { type: 'string', default: '0' },
      json: { type: 'boolean', default: false },
    },
    async run({ values }) {
      const options = {
        context: values.context ?? [],
        requests: wholeNumberArg('--requests', values.requests),
        viewers: wholeNumberArg('--viewers', values.viewers),
        json: values.json,
      };
      try {
        return orExit(() => costCommand(options, fileURLToPath(new URL('..', import.meta.url))));
      } catch (err) {
        if (err instanceof CostUsageError) throw new UsageError(err.message, { cause: err });
        throw err;
      }
    },
  }),
  smoke: defineCommand({
    usage: 'smoke --api URL [--auth none|iam|jwt] [--token JWT] [--region R] [--wait S]',
    summary: 'after a deploy: health, version, latest, predict (with auth) against the API',
    options: {
      api: { type: 'string' },
      auth: { type: 'string', default: 'none' },
      token: { type: 'string' },
      region: { type: 'string' },
      wait: { type: 'string', default: '0' },
    },
    async run({ values }) {
      const api = values.api;
      if (!api || !/^https?:\/\//.test(api))
        throw new UsageError('--api URL is required (http:// or https://)');
      const mode = oneOf('--auth', values.auth, ['none', 'iam', 'jwt']);
      let auth: SmokeAuth = { mode: 'none' };
      if (mode === 'jwt') {
        const token = values.token ?? process.env.QW_API_TOKEN;
        if (!token) throw new UsageError('--auth jwt needs --token or QW_API_TOKEN');
        auth = { mode, token };
      } else if (mode === 'iam') {
        const region = values.region ?? regionOf(api) ?? process.env.AWS_REGION;
        if (!region) throw new UsageError('--auth iam needs --region (or an execute-api URL, or AWS_REGION)');
        auth = { mode, region };
      }
      return smokeCommand({ api, auth, waitS: wholeNumberArg('--wait', values.wait) });
    },
  }),
  help: defineCommand({
    usage: 'help',
    summary: 'this list',
    async run() {
      console.log('usage: quotewatch <command>   (default: start; settings: QW_DATA_DIR, PORT, SIM_PORT)\n');
      for (const command of Object.values(COMMANDS))
        console.log(`  ${command.usage.padEnd(18)} ${command.summary}`);
      return 0;
    },
  }),
};

process.exit(await runCli(process.argv.slice(2), COMMANDS, { name: 'quotewatch', defaultCommand: 'start' }));
