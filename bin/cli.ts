/**
 * The command-line frame of bin/quotewatch.ts: a command declares its options (node:util parseArgs options) and
 * its positional arguments, and run() receives them parsed. An unknown option, a missing or extra argument, a
 * value parseArgs rejects, or a value the command rejects itself (oneOf, or a UsageError of its own) is a usage
 * error: one line naming it, the command's usage line, exit code 2.
 */
import { type ParseArgsOptionsConfig, parseArgs } from 'node:util';
import { QuoteWatchError } from '../src/errors.js';

export class UsageError extends QuoteWatchError {}

export interface Command {
  /** `replay FILE [--speed 1|N|max]`: printed by help and after a usage error. */
  usage: string;
  summary: string;
  run(args: string[]): Promise<number>;
}

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>
>;

type Names = readonly string[];

export interface CommandArgs<O extends ParseArgsOptionsConfig, P extends Names = Names> {
  /** By option name (without the dashes); a string option has a string, a boolean one true, absent undefined. */
  values: Parsed<O>['values'];
  /** One string per declared positional name, in order. */
  positionals: { -readonly [K in keyof P]: string };
}

export interface CommandSpec<O extends ParseArgsOptionsConfig, P extends Names = Names> {
  usage: string;
  summary: string;
  /** parseArgs options, e.g. `{ speed: { type: 'string', default: '1' }, live: { type: 'boolean' } }`. */
  options?: O;
  /** The positional arguments, all required, by the names usage errors give them: `['FILE']`. */
  positionals?: P;
  run(args: CommandArgs<O, P>): Promise<number>;
}

/** A command whose run() gets its declared arguments parsed and checked. */
export function defineCommand<
  const O extends ParseArgsOptionsConfig = Record<never, never>,
  const P extends Names = [],
>(spec: CommandSpec<O, P>): Command {
  return {
    usage: spec.usage,
    summary: spec.summary,
    run: (args) => spec.run(parseCommandArgs(args, spec)),
  };
}

/** parseArgs with the command's declarations; anything else is a UsageError. */
export function parseCommandArgs<const O extends ParseArgsOptionsConfig, const P extends Names = []>(
  args: readonly string[],
  spec: Pick<CommandSpec<O, P>, 'options' | 'positionals'>,
): CommandArgs<O, P> {
  const options = spec.options ?? ({} as O);
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args: [...args], options, allowPositionals: true, strict: true });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code !== 'string' || !code.startsWith('ERR_PARSE_ARGS_')) throw err;
    throw new UsageError(parseErrorMessage(code, err as Error, args, options), { cause: err });
  }
  const names: Names = spec.positionals ?? [];
  const { positionals } = parsed;
  if (positionals.length > names.length) {
    throw new UsageError(`unexpected argument ${positionals.slice(names.length).join(' ')}`);
  }
  if (positionals.length < names.length) {
    throw new UsageError(`missing ${names.slice(positionals.length).join(' ')}`);
  }
  return { values: parsed.values, positionals: positionals as CommandArgs<O, P>['positionals'] };
}

function parseErrorMessage(
  code: string,
  err: Error,
  args: readonly string[],
  options: ParseArgsOptionsConfig,
): string {
  if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
    // Node's message is about writing a positional that starts with "-"; name the option plainly instead.
    const { tokens } = parseArgs({
      args: [...args],
      options,
      allowPositionals: true,
      strict: false,
      tokens: true,
    });
    for (const token of tokens) {
      if (token.kind === 'option' && !Object.hasOwn(options, token.name))
        return `unknown option ${token.rawName}`;
    }
  }
  // "Option '--speed <value>' argument missing", "Option '--live' does not take an argument", ...
  return err.message.replace(/\s*\n\s*/g, ' ');
}

/** `value` when it is one of `choices`, else a UsageError naming `what` (an option or argument) and the choices. */
export function oneOf<const C extends readonly string[]>(what: string, value: string, choices: C): C[number] {
  if (choices.includes(value)) return value as C[number];
  throw new UsageError(`${what}: expected one of ${choices.join(', ')}; got ${JSON.stringify(value)}`);
}

export interface CliOptions {
  /** Program name in messages. */
  name: string;
  /** Run when no command is given, or when the first argument is an option (`quotewatch --live`). */
  defaultCommand: string;
  /** Where the usage of `<command> --help` goes (default: stdout). */
  print?: (line: string) => void;
  /** Where error lines go (default: stderr). */
  error?: (line: string) => void;
}

/**
 * Runs the command `argv` names and returns the exit code: its own, 0 after `<command> --help` printed its usage,
 * 2 for an unknown command or a usage error, 1 for any other error (printed with its cause).
 */
export async function runCli(
  argv: readonly string[],
  commands: Readonly<Record<string, Command>>,
  {
    name: program,
    defaultCommand,
    print = (line) => console.log(line),
    error = (line) => console.error(line),
  }: CliOptions,
): Promise<number> {
  const help = (arg: string | undefined) => arg === '--help' || arg === '-h';
  const first = argv[0];
  const [name = defaultCommand, ...args] =
    first?.startsWith('-') && !help(first) ? [defaultCommand, ...argv] : argv;
  const commandName = help(name) ? 'help' : name;
  const command = Object.hasOwn(commands, commandName) ? commands[commandName] : undefined;
  if (!command) {
    error(`${program}: unknown command "${name}" (try: ${program} help)`);
    return 2;
  }
  const end = args.indexOf('--');
  if ((end < 0 ? args : args.slice(0, end)).some(help)) {
    print(`usage: ${program} ${command.usage}\n  ${command.summary}`);
    return 0;
  }
  try {
    return await command.run(args);
  } catch (err) {
    if (err instanceof UsageError) {
      error(`${program} ${commandName}: ${err.message} (usage: ${program} ${command.usage})`);
      return 2;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    error(`${program} ${commandName} failed: ${e.name}: ${e.message}`);
    if (e.cause instanceof Error) error(`  caused by ${e.cause.name}: ${e.cause.message}`);
    return 1;
  }
}
