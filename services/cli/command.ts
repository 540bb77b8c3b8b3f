/**
 * How every `bkstream` command reads its arguments and ends: one declaration per command (its name,
 * positional arguments and options, each with a line of help) gives its parser, its `--help` text and its
 * usage line; `runCommand` turns the outcome into the exit code.
 *
 * Exit codes, the same for every command: 0 ok, 1 failure (the operation failed, a service or the broker
 * is unreachable), 2 usage error (unknown command, subcommand or option, a missing or malformed argument,
 * an invalid configuration). `--help` / `-h` prints the usage and exits 0 without starting or connecting
 * anything.
 *
 * The parser is node:util parseArgs (strict), with three additions: an option value may start with `-`
 * (`--from -2h` as well as `--from=-2h`; parseArgs alone refuses the former as ambiguous), options may be
 * integers or limited to listed choices, and every problem is a {@link UsageError} naming the word at fault.
 */
import { parseArgs } from 'node:util';
import { BkError, ConfigError, errorMessage } from '../common/errors.ts';

/** Exit codes of every command (documented in `bkstream --help` and the README). */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;

/** Prints one line of a command's output (stdout unless a test collects it). */
export type Print = (line: string) => void;

/** One command (or subcommand) of `bkstream`. */
export interface Command {
  /** One line for the command lists. */
  readonly summary: string;
  /** The usage line(s), e.g. `bkstream traces <app> [--biz <n>] …`. */
  readonly usage: string;
  /** The full `--help` text. */
  help(): string;
  /** A command made of subcommands (defineGroup) lists them here. */
  readonly subcommands?: Readonly<Record<string, Command>>;
  /** Runs it with `args` (after the command's own name); returns the exit code or throws (see runCommand). */
  run(args: readonly string[], env: NodeJS.ProcessEnv, print?: Print): Promise<number>;
}

/** A mistake in the command line; exit code 2, printed as one line plus a pointer to `--help`. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  /** The command whose help explains it, e.g. `flows list`. */
  readonly command: string;

  constructor(command: string, message: string) {
    super(message);
    this.command = command;
  }
}

/** Thrown by the parser when `--help` or `-h` is given: runCommand prints `text` and exits 0. */
export class HelpRequest extends Error {
  override readonly name = 'HelpRequest';
  readonly text: string;

  constructor(text: string) {
    super('help requested');
    this.text = text;
  }
}

/** One option of a command. */
export interface OptionSpec {
  /** `string` (the default), `integer` (checked and turned into a number) or `boolean` (a flag, no value). */
  readonly type: 'string' | 'integer' | 'boolean';
  /** One line for `--help`. */
  readonly help: string;
  /** The value's placeholder in the usage, e.g. `time` for `--from <time>`; default the option's name. */
  readonly value?: string;
  /** A one-letter alias (`-n`). */
  readonly short?: string;
  /** The value when the option is not given (strings and integers). */
  readonly default?: string | number;
  /** The only values accepted (strings). */
  readonly choices?: readonly string[];
  /** May be given more than once; the values are collected in order (strings). */
  readonly multiple?: boolean;
  /** Must be given. */
  readonly required?: boolean;
}

/** What one command takes. */
export interface CommandSpec<O extends Readonly<Record<string, OptionSpec>> = Readonly<Record<string, OptionSpec>>> {
  /** The words after `bkstream`, e.g. `flows list`. */
  readonly name: string;
  /** One line: what it does. */
  readonly summary: string;
  /** Positional arguments in order: `<name>` required, `[name]` optional, `<name>...` one or more. */
  readonly args?: readonly string[];
  readonly options: O;
  /** Further paragraphs of `--help` (environment, examples). */
  readonly notes?: string;
}

type ValueOf<S extends OptionSpec> = S extends { type: 'boolean' }
  ? boolean
  : S extends { type: 'integer' }
    ? S extends { default: number } | { required: true } ? number : number | undefined
    : S extends { multiple: true }
      ? string[]
      : S extends { choices: readonly (infer C extends string)[] }
        ? S extends { default: string } | { required: true } ? C : C | undefined
        : S extends { default: string } | { required: true } ? string : string | undefined;

/** The parsed options of a spec, typed from it. */
export type Values<O extends Readonly<Record<string, OptionSpec>>> = { -readonly [K in keyof O]: ValueOf<O[K]> };

export interface Parsed<O extends Readonly<Record<string, OptionSpec>>> {
  values: Values<O>;
  positionals: string[];
  /** Throws the command's UsageError with `message`. */
  usage: (message: string) => never;
}

const HELP_OPTION = '  -h, --help';

function placeholder(name: string, o: OptionSpec): string {
  if (o.type === 'boolean') return `--${name}`;
  if (o.choices && o.choices.length <= 3) return `--${name} ${o.choices.join('|')}`;
  return `--${name} <${o.value ?? name}>`;
}

function usageParts(spec: CommandSpec): string[] {
  const parts = [`bkstream ${spec.name}`, ...(spec.args ?? [])];
  for (const [name, o] of Object.entries(spec.options)) parts.push(o.required ? placeholder(name, o) : `[${placeholder(name, o)}]${o.multiple ? '…' : ''}`);
  return parts;
}

/** The usage line of a spec: `bkstream traces <app> [--biz <n>] … [--json]`. */
export function usageLine(spec: CommandSpec): string {
  return usageParts(spec).join(' ');
}

/** Width the usage of `--help` is wrapped at, characters. */
const USAGE_WIDTH = 110;

/** `usage: bkstream …` wrapped at USAGE_WIDTH, continuation lines under the first argument. */
function wrappedUsage(spec: CommandSpec): string {
  const [head, ...rest] = usageParts(spec);
  const lines = [`usage: ${head ?? ''}`];
  const indent = ' '.repeat(`usage: bkstream ${spec.name} `.length);
  let onLine = 0; // arguments on the current line: a line takes at least one, however long
  for (const part of rest) {
    const last = lines[lines.length - 1] as string;
    if (onLine > 0 && last.length + 1 + part.length > USAGE_WIDTH) {
      lines.push(`${indent}${part}`);
      onLine = 1;
    } else {
      lines[lines.length - 1] = `${last} ${part}`;
      onLine++;
    }
  }
  return lines.join('\n');
}

/** The `--help` text of a spec. */
export function helpText(spec: CommandSpec): string {
  const rows: [string, string][] = Object.entries(spec.options).map(([name, o]) => {
    const head = `  ${o.short ? `-${o.short}, ` : ''}${placeholder(name, o)}`;
    const extra = [
      o.choices && o.choices.length > 3 ? `one of ${o.choices.join(', ')}` : '',
      o.default !== undefined ? `default ${String(o.default)}` : '',
      o.multiple ? 'repeatable' : '',
    ].filter(Boolean);
    return [head, `${o.help}${extra.length > 0 ? ` (${extra.join('; ')})` : ''}`];
  });
  rows.push([HELP_OPTION, 'print this help and exit']);
  const width = Math.min(34, Math.max(...rows.map(([h]) => h.length)) + 2);
  const lines = rows.map(([h, text]) => (h.length + 2 > width ? `${h}\n${' '.repeat(width)}${text}` : `${h.padEnd(width)}${text}`));
  return [wrappedUsage(spec), '', spec.summary, '', 'options:', ...lines, ...(spec.notes ? ['', spec.notes] : [])].join('\n');
}

/** Whether `token` is an option word (not a value that happens to start with `-`, such as `-2h`). */
function isOptionWord(token: string, shorts: ReadonlyMap<string, string>): boolean {
  if (token === '--' || token === '-h' || /^--[A-Za-z]/.test(token)) return true;
  const short = /^-([A-Za-z])$/.exec(token)?.[1];
  return short !== undefined && shorts.has(short);
}

/**
 * Reads `args` against `spec`: `--help` / `-h` throws {@link HelpRequest}; an unknown option, a missing or
 * bad value, a missing or extra positional argument throws {@link UsageError} naming it.
 */
export function parseCommand<const O extends Readonly<Record<string, OptionSpec>>>(spec: CommandSpec<O>, args: readonly string[]): Parsed<O> {
  const fail = (message: string): never => {
    throw new UsageError(spec.name, message);
  };
  const shorts = new Map(Object.entries(spec.options).flatMap(([name, o]) => (o.short ? [[o.short, name] as const] : [])));
  // `--name value` → `--name=value` when the value starts with `-`, which parseArgs would refuse.
  const tokens: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') {
      tokens.push(...args.slice(i));
      break;
    }
    if (a === '--help' || a === '-h') throw new HelpRequest(helpText(spec));
    const long = /^--([^=]+)$/.exec(a)?.[1];
    const short = /^-([A-Za-z])$/.exec(a)?.[1];
    const name = long ?? (short !== undefined ? shorts.get(short) : undefined);
    const option = name !== undefined && Object.hasOwn(spec.options, name) ? spec.options[name] : undefined;
    const next = args[i + 1];
    if (option && option.type !== 'boolean' && next !== undefined && next.startsWith('-') && !isOptionWord(next, shorts)) {
      tokens.push(`--${name}=${next}`);
      i++;
      continue;
    }
    tokens.push(a);
  }
  let raw: { values: Record<string, string | boolean | (string | boolean)[] | undefined>; positionals: string[] };
  try {
    raw = parseArgs({
      args: tokens,
      strict: true,
      allowPositionals: true,
      options: Object.fromEntries(Object.entries(spec.options).map(([name, o]) => [
        name,
        { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) } as const,
      ])),
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = errorMessage(err);
    // "Unknown option '--x'", "Option '-n, --n <value>' argument missing": the long name when there is one.
    const quoted = /option '([^']+)'/i.exec(message)?.[1] ?? '';
    const option = /--[^\s,<]+/.exec(quoted)?.[0] ?? /-[^\s,<]+/.exec(quoted)?.[0];
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return fail(`unknown option ${option ?? message}`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      return fail(/does not take an argument/.test(message) ? `${option ?? 'a flag'} takes no value` : `${option ?? 'an option'} needs a value`);
    }
    return fail(message);
  }

  const values: Record<string, unknown> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const given = raw.values[name];
    if (o.type === 'boolean') {
      values[name] = given === true;
      continue;
    }
    if (given === undefined) {
      if (o.required) fail(`--${name} is required`);
      values[name] = o.multiple ? [] : o.default;
      continue;
    }
    const texts = (Array.isArray(given) ? given : [given]).map(String);
    for (const text of texts) {
      if (o.choices && !o.choices.includes(text)) fail(`--${name} must be one of ${o.choices.join(', ')} (got ${JSON.stringify(text)})`);
      if (o.type === 'integer' && !/^-?\d+$/.test(text.trim())) fail(`--${name} must be an integer (got ${JSON.stringify(text)})`);
    }
    const typed = o.type === 'integer' ? texts.map((t) => Number(t)) : texts;
    values[name] = o.multiple ? typed : typed[typed.length - 1];
  }

  const declared = spec.args ?? [];
  const required = declared.filter((a) => a.startsWith('<')).length;
  const variadic = declared.some((a) => a.endsWith('...'));
  const positionals = raw.positionals;
  if (positionals.length < required) fail(`missing ${declared[positionals.length] ?? 'argument'}`);
  if (!variadic && positionals.length > declared.length) fail(`unexpected argument ${JSON.stringify(positionals[declared.length])}`);
  return { values: values as Values<O>, positionals, usage: fail };
}

/** A command from its spec and what it does with the parsed arguments. */
export function defineCommand<const O extends Readonly<Record<string, OptionSpec>>>(
  spec: CommandSpec<O>,
  handler: (input: Parsed<O>, env: NodeJS.ProcessEnv, print: Print) => Promise<number>,
): Command {
  return {
    summary: spec.summary,
    usage: usageLine(spec),
    help: () => helpText(spec),
    run: (args, env, print = (line) => console.log(line)) => handler(parseCommand(spec, args), env, print),
  };
}

/** A command made of subcommands (`bkstream flows list|get|…`): `name` is the command's word. */
export function defineGroup(name: string, summary: string, subcommands: Readonly<Record<string, Command>>, notes?: string): Command {
  const usage = Object.values(subcommands).map((c) => c.usage).join('\n');
  const help = (): string => {
    const width = Math.max(...Object.keys(subcommands).map((s) => s.length)) + 2;
    return [
      `usage: bkstream ${name} <subcommand> [options]`,
      '',
      summary,
      '',
      'subcommands:',
      ...Object.entries(subcommands).map(([sub, c]) => `  ${sub.padEnd(width)}${c.summary}`),
      '',
      `\`bkstream ${name} <subcommand> --help\` shows a subcommand's options.`,
      ...(notes ? ['', notes] : []),
    ].join('\n');
  };
  return {
    summary,
    usage,
    help,
    subcommands,
    async run(args, env, print) {
      const [sub, ...rest] = args;
      if (sub === undefined) throw new UsageError(name, `missing subcommand (one of ${Object.keys(subcommands).join(', ')})`);
      if (sub === '--help' || sub === '-h') throw new HelpRequest(help());
      const command = Object.hasOwn(subcommands, sub) ? subcommands[sub] : undefined;
      if (!command && sub.startsWith('-')) throw new UsageError(name, `unknown option ${sub} (the subcommand comes first: one of ${Object.keys(subcommands).join(', ')})`);
      if (!command) throw new UsageError(name, `unknown subcommand ${JSON.stringify(sub)} (one of ${Object.keys(subcommands).join(', ')})`);
      return command.run(rest, env, print);
    },
  };
}

/** Where runCommand writes: the command's output (stdout) and its messages (stderr). */
export interface CommandIo {
  out: Print;
  err: Print;
}

const STD_IO: CommandIo = { out: (line) => console.log(line), err: (line) => console.error(line) };

/**
 * Runs `command` (named `name` on the command line) and maps how it ended to the exit code: its own code;
 * 0 after `--help`; 2 for a UsageError (one line and a pointer to `--help`) or an invalid configuration;
 * 1 for any other error, printed as one line (`bkstream <name>: <message>`), never as a stack or a log.
 */
export async function runCommand(name: string, command: Command, args: readonly string[], env: NodeJS.ProcessEnv, io: CommandIo = STD_IO): Promise<number> {
  try {
    return await command.run(args, env, io.out);
  } catch (err) {
    if (err instanceof HelpRequest) {
      io.out(err.text);
      return EXIT.ok;
    }
    if (err instanceof UsageError) {
      io.err(`bkstream ${err.command}: ${err.message}\nsee bkstream ${err.command} --help`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError) {
      io.err(`bkstream ${name}: ${err.message}`);
      return EXIT.usage;
    }
    io.err(`bkstream ${name}: ${err instanceof BkError || err instanceof Error ? err.message : String(err)}`);
    return EXIT.failure;
  }
}
