/** The CLI frame (bin/cli.ts) in-process: declared arguments, usage errors and exit codes. */
import { describe, expect, it } from 'vitest';
import { type Command, defineCommand, oneOf, parseCommandArgs, runCli, UsageError } from '../bin/cli.js';
import { QuoteWatchError } from '../src/errors.js';

const replaySpec = {
  options: { speed: { type: 'string', default: '1' }, live: { type: 'boolean' } },
  positionals: ['FILE'],
} as const;

/** The UsageError message `fn` throws (fails the test when it throws nothing or something else). */
function usageError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    expect(err).toBeInstanceOf(QuoteWatchError);
    expect((err as Error).name).toBe('UsageError');
    return (err as Error).message;
  }
  throw new Error('expected a UsageError');
}

describe('parseCommandArgs', () => {
  it('parses the declared options (both spellings, defaults) and positionals', () => {
    expect(parseCommandArgs(['f.ndjson', '--speed', '10', '--live'], replaySpec)).toEqual({
      values: { speed: '10', live: true },
      positionals: ['f.ndjson'],
    });
    expect(parseCommandArgs(['--speed=max', 'f'], replaySpec).values).toEqual({ speed: 'max' });
    expect(parseCommandArgs(['f'], replaySpec).values).toEqual({ speed: '1' });
    // After "--" an argument that starts with a dash is a positional.
    expect(parseCommandArgs(['--', '-f'], replaySpec).positionals).toEqual(['-f']);
    expect(parseCommandArgs([], {})).toEqual({ values: {}, positionals: [] });
  });

  it('names an unknown option, long or short, and ignores what follows it', () => {
    expect(usageError(() => parseCommandArgs(['f', '--bogus'], replaySpec))).toBe('unknown option --bogus');
    expect(usageError(() => parseCommandArgs(['-x', 'f'], replaySpec))).toBe('unknown option -x');
    expect(usageError(() => parseCommandArgs(['--bogus=1'], {}))).toBe('unknown option --bogus');
  });

  it('names a missing, ambiguous or unwanted option value', () => {
    expect(usageError(() => parseCommandArgs(['f', '--speed'], replaySpec))).toMatch(
      /^Option '--speed <value>' argument missing/,
    );
    const ambiguous = usageError(() => parseCommandArgs(['f', '--speed', '--live'], replaySpec));
    expect(ambiguous).toMatch(/^Option '--speed' argument is ambiguous/);
    expect(ambiguous).not.toContain('\n');
    expect(usageError(() => parseCommandArgs(['f', '--live=yes'], replaySpec))).toMatch(
      /^Option '--live' does not take an argument/,
    );
  });

  it('counts positionals against the declared names', () => {
    expect(usageError(() => parseCommandArgs([], replaySpec))).toBe('missing FILE');
    expect(usageError(() => parseCommandArgs(['a', 'b', 'c'], replaySpec))).toBe('unexpected argument b c');
    expect(usageError(() => parseCommandArgs(['x'], {}))).toBe('unexpected argument x');
  });

  it('lets a programming error in the declaration through as it is', () => {
    const bad = { options: { speed: { type: 'number' } } } as unknown as typeof replaySpec;
    expect(() => parseCommandArgs(['f'], bad)).toThrow(TypeError);
  });
});

describe('oneOf', () => {
  it('returns a valid choice and names the option and the choices otherwise', () => {
    expect(oneOf('--format', 'exchange', ['auto', 'exchange'])).toBe('exchange');
    expect(usageError(() => oneOf('--format', 'csv', ['auto', 'exchange']))).toBe(
      '--format: expected one of auto, exchange; got "csv"',
    );
  });
});

describe('runCli', () => {
  const runs: { name: string; args: unknown }[] = [];
  const commands: Record<string, Command> = {
    start: defineCommand({
      usage: 'start [--live]',
      summary: 'starts',
      options: { live: { type: 'boolean' } },
      async run({ values }) {
        runs.push({ name: 'start', args: values });
        return 0;
      },
    }),
    replay: defineCommand({
      usage: 'replay FILE [--speed N]',
      summary: 'replays',
      ...replaySpec,
      async run({ values, positionals }) {
        const speed = Number(values.speed);
        if (!(speed > 0)) throw new UsageError('--speed: expected a number > 0');
        runs.push({ name: 'replay', args: { speed, positionals } });
        return 7;
      },
    }),
    fail: defineCommand({
      usage: 'fail',
      summary: 'fails',
      async run() {
        throw new QuoteWatchError('could not', { cause: new RangeError('too far') });
      },
    }),
    help: defineCommand({ usage: 'help', summary: 'this list', run: async () => 0 }),
  };

  async function cli(...argv: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(argv, commands, {
      name: 'qw',
      defaultCommand: 'start',
      print: (l) => out.push(l),
      error: (l) => err.push(l),
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  }

  it("runs the named command with its parsed arguments and returns the command's exit code", async () => {
    runs.length = 0;
    expect(await cli('replay', 'f', '--speed', '2')).toEqual({ code: 7, out: '', err: '' });
    expect(await cli()).toMatchObject({ code: 0 });
    expect(await cli('--live')).toMatchObject({ code: 0 }); // an option first: the default command's
    expect(runs).toEqual([
      { name: 'replay', args: { speed: 2, positionals: ['f'] } },
      { name: 'start', args: {} },
      { name: 'start', args: { live: true } },
    ]);
  });

  it('exit code 2 with the usage line for an unknown command, option or argument or a bad value', async () => {
    expect(await cli('frobnicate')).toEqual({
      code: 2,
      out: '',
      err: 'qw: unknown command "frobnicate" (try: qw help)',
    });
    expect((await cli('constructor')).code).toBe(2); // not a command, though every object has one
    expect(await cli('start', '--bogus')).toMatchObject({
      code: 2,
      err: 'qw start: unknown option --bogus (usage: qw start [--live])',
    });
    expect(await cli('replay')).toMatchObject({
      code: 2,
      err: 'qw replay: missing FILE (usage: qw replay FILE [--speed N])',
    });
    expect(await cli('replay', 'f', '--speed', '0')).toMatchObject({
      code: 2,
      err: 'qw replay: --speed: expected a number > 0 (usage: qw replay FILE [--speed N])',
    });
  });

  it('exit code 1 with the error and its cause for a failure', async () => {
    expect(await cli('fail')).toEqual({
      code: 1,
      out: '',
      err: 'qw fail failed: QuoteWatchError: could not\n  caused by RangeError: too far',
    });
  });

  it('prints a command\'s usage for --help or -h (before "--"), and "help" for a bare --help', async () => {
    expect(await cli('replay', '--help')).toEqual({
      code: 0,
      out: 'usage: qw replay FILE [--speed N]\n  replays',
      err: '',
    });
    expect((await cli('start', '-h')).out).toBe('usage: qw start [--live]\n  starts');
    expect(await cli('replay', '--', '--help')).toMatchObject({ code: 7 }); // a FILE named --help
    runs.length = 0;
    expect(await cli('--help')).toEqual({ code: 0, out: '', err: '' });
    expect(await cli('-h')).toEqual({ code: 0, out: '', err: '' });
    expect(runs).toEqual([]); // help ran, not start
  });
});
