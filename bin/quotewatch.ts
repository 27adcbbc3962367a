#!/usr/bin/env -S node --import tsx
/**
 * quotewatch <command>: the local runner. `npm start` is `quotewatch start`.
 * New commands (replay, baseline...) are one entry in COMMANDS.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runSmokeCommand } from '../src/api/smoke.js';
import {
  orExit,
  readCoreConfig,
  readLocalConfig,
  readSimulatorConfig,
  readTrainingConfig,
} from '../src/config.js';
import { runCostCommand } from '../src/cost/report.js';
import { DEFAULT_EMULATOR_PORTS, emulatorEnv, startEmulators } from '../src/local/emulators.js';
import { provision } from '../src/local/provision.js';
import { startSystem } from '../src/local/supervisor.js';
import { jsonLogger } from '../src/log.js';
import { RECORDING_FORMATS, type RecordingFormat } from '../src/replay/readers.js';
import { runReplay } from '../src/replay/replay.js';
import type { ReplaySpeed } from '../src/replay/server.js';

interface Command {
  usage: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

const TRAINING_STEPS = ['train', 'evaluate', 'promote'] as const;
const TRAINING_ENTRY = fileURLToPath(new URL('../models/train/main.ts', import.meta.url));

class UsageError extends Error {
  override name = 'UsageError';
}

/** Splits `--flag` arguments from the rest and rejects flags the command does not know. */
function flags(args: string[], known: string[]): Set<string> {
  const given = new Set(args.filter((a) => a.startsWith('--')));
  const unknown = [...given].filter((f) => !known.includes(f));
  if (unknown.length > 0) throw new UsageError(`unknown option ${unknown.join(', ')}`);
  const positional = args.filter((a) => !a.startsWith('--'));
  if (positional.length > 0) throw new UsageError(`unexpected argument ${positional.join(' ')}`);
  return given;
}

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

/** `--name value` / `--name=value` options and positional arguments; unknown options are a UsageError. */
function options(args: string[], known: string[]): { values: Map<string, string>; positional: string[] } {
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.split(/=(.*)/s) as [string, string | undefined];
    if (!known.includes(name)) throw new UsageError(`unknown option ${name}`);
    const value = inline ?? args[++i];
    if (value === undefined) throw new UsageError(`${name} needs a value`);
    values.set(name, value);
  }
  return { values, positional };
}

/** The AWS endpoints: the caller's AWS_ENDPOINT_URL_* if set, else the local emulators on their fixed ports. */
function awsEnv(): Record<string, string | undefined> {
  const hasEndpoints = Object.keys(process.env).some((key) => key.startsWith('AWS_ENDPOINT_URL'));
  // Never a real AWS account by accident: without endpoint variables, the local emulators.
  return hasEndpoints ? process.env : { ...process.env, ...emulatorEnv(DEFAULT_EMULATOR_PORTS) };
}

function dataDir(): string {
  return resolve(orExit(() => readLocalConfig()).dataDir);
}

const COMMANDS: Record<string, Command> = {
  start: {
    usage: 'start [--live]',
    summary: 'emulators, provisioning and every component; --live reads Coinbase instead of the simulator',
    async run(args) {
      const live = flags(args, ['--live']).has('--live');
      const { gatewayPort } = orExit(() => readLocalConfig());
      const simulatorPort = orExit(() => readSimulatorConfig()).port;
      const signal = untilSignal();
      const ports = { gateway: gatewayPort, simulator: simulatorPort };
      const system = await startSystem({ dataDir: dataDir(), live, ports });
      console.log(`[quotewatch] running (feed ${system.urls.feed}); Ctrl-C stops everything`);
      console.log(`[quotewatch] ${await signal}: stopping`);
      await system.stop();
      return 0;
    },
  },
  emulators: {
    usage: 'emulators',
    summary: `only the emulators, on ports ${Object.values(DEFAULT_EMULATOR_PORTS).join('/')}, until Ctrl-C`,
    async run(args) {
      flags(args, []);
      const signal = untilSignal();
      const emulators = await startEmulators({ dataDir: dataDir(), ports: DEFAULT_EMULATOR_PORTS });
      console.log(`# emulators running, data in ${emulators.dataDir}; for another shell:`);
      for (const [key, value] of Object.entries(emulators.env)) console.log(`export ${key}=${value}`);
      await signal;
      await emulators.stop();
      return 0;
    },
  },
  provision: {
    usage: 'provision',
    summary: 'create the stream, tables and buckets (idempotent) and seed the model registry',
    async run(args) {
      flags(args, []);
      // Without endpoint variables: the local emulators (deployed resources come from CDK).
      const env = awsEnv();
      const where = ['KINESIS', 'DYNAMODB', 'S3'].map(
        (s) => env[`AWS_ENDPOINT_URL_${s}`] ?? env.AWS_ENDPOINT_URL,
      );
      console.log(`[provision] endpoints: ${where.join(', ')}`);
      await provision(env, { log: (line) => console.log(`[provision] ${line}`) });
      return 0;
    },
  },
  replay: {
    usage: 'replay FILE [--speed 1|N|max] [--format auto|archive|cryptofeed|exchange|volatility]',
    summary: 'feed a recording through the ingest path into the stream (emulators must be running)',
    async run(args) {
      const { values, positional } = options(args, ['--speed', '--format']);
      if (positional.length !== 1) throw new UsageError('expected exactly one FILE');
      const speedText = values.get('--speed') ?? '1';
      const speed: ReplaySpeed = speedText === 'max' ? 'max' : Number(speedText);
      if (speed !== 'max' && !(speed > 0)) throw new UsageError(`--speed: expected a number > 0 or max`);
      const format = (values.get('--format') ?? 'auto') as RecordingFormat | 'auto';
      if (format !== 'auto' && !RECORDING_FORMATS.includes(format))
        throw new UsageError(`--format: expected auto or one of ${RECORDING_FORMATS.join(', ')}`);
      const env = awsEnv();
      const symbols = env.SYMBOLS ? orExit(() => readCoreConfig(env)).symbols : undefined;
      const summary = await runReplay({
        path: resolve(positional[0]!),
        speed,
        format,
        env,
        ...(symbols ? { products: symbols } : {}),
        log: jsonLogger('replay'),
      });
      console.log(`[replay] ${JSON.stringify(summary)}`);
      return 0;
    },
  },
  train: {
    usage: 'train train|evaluate|promote',
    summary: 'the training job (CANDIDATE_VERSION=...) against the local emulators, or AWS_ENDPOINT_URL_*',
    async run(args) {
      const [step, ...rest] = args;
      if (rest.length > 0 || !TRAINING_STEPS.some((s) => s === step))
        throw new UsageError(`expected one of ${TRAINING_STEPS.join(', ')}`);
      const env = awsEnv();
      orExit(() => readTrainingConfig(env));
      // The same entry the training state machine runs, as its own process (it brings onnxruntime).
      const child = spawn(process.execPath, ['--import', 'tsx', TRAINING_ENTRY, step!], {
        env,
        stdio: 'inherit',
      });
      const [code] = (await once(child, 'exit')) as [number | null];
      return code ?? 1;
    },
  },
  cost: {
    usage: 'cost [-c key=value ...] [--viewers N] [--requests N] [--json]',
    summary: 'the monthly AWS cost of the deployment cdk.json and -c describe, polling vs fan-out',
    run: (args) => runCostCommand(args, fileURLToPath(new URL('..', import.meta.url))),
  },
  smoke: {
    usage: 'smoke --api URL [--auth none|iam|jwt] [--token JWT] [--wait S]',
    summary: 'after a deploy: health, version, latest, predict (with auth) against the API',
    run: (args) => runSmokeCommand(args),
  },
  help: {
    usage: 'help',
    summary: 'this list',
    async run() {
      console.log('usage: quotewatch <command>   (default: start; settings: QW_DATA_DIR, PORT, SIM_PORT)\n');
      for (const command of Object.values(COMMANDS))
        console.log(`  ${command.usage.padEnd(18)} ${command.summary}`);
      return 0;
    },
  },
};

async function main(argv: string[]): Promise<number> {
  // `quotewatch --live` means `quotewatch start --live`.
  const [name = 'start', ...args] =
    argv[0]?.startsWith('--') && argv[0] !== '--help' ? ['start', ...argv] : argv;
  const command = COMMANDS[name === '--help' || name === '-h' ? 'help' : name];
  if (!command) {
    console.error(`quotewatch: unknown command "${name}" (try: quotewatch help)`);
    return 2;
  }
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`quotewatch ${name}: ${err.message} (usage: quotewatch ${command.usage})`);
      return 2;
    }
    const error = err as Error;
    console.error(`quotewatch ${name} failed: ${error.name}: ${error.message}`);
    if (error.cause instanceof Error)
      console.error(`  caused by ${error.cause.name}: ${error.cause.message}`);
    return 1;
  }
}

process.exit(await main(process.argv.slice(2)));
