#!/usr/bin/env node
/**
 * The `bkstream` command: `bkstream <command> [args]`; `bkstream --help` lists the commands,
 * `bkstream <command> --help` shows one. Exit codes (command.ts): 0 ok, 1 failure, 2 usage error.
 * Run through npm (`npm run up`, `npx bkstream ...`) so the project's Node 24 is used.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { COMMANDS } from './commands.ts';
import { EXIT, runCommand, type CommandIo } from './command.ts';
import { installWarningFilter } from '../common/process.ts';

installWarningFilter();

const IO: CommandIo = { out: (line) => console.log(line), err: (line) => console.error(line) };

/** The project's version (package.json), printed by `bkstream --version`. */
export function version(): string {
  return (JSON.parse(readFileSync(resolve(import.meta.dirname, '../../package.json'), 'utf8')) as { version: string }).version;
}

/** The text of `bkstream --help`. */
export async function topHelp(): Promise<string> {
  const rows: string[] = [];
  for (const [name, load] of Object.entries(COMMANDS)) rows.push(`  ${name.padEnd(9)} ${(await load()).summary}`);
  return [
    'usage: bkstream <command> [args]',
    '',
    'commands:',
    ...rows,
    '',
    '`bkstream <command> --help` (or -h) prints a command\'s usage and options, starting or connecting nothing.',
    '`bkstream --version` prints the version.',
    'Listings take --json: one JSON document on stdout, messages on stderr.',
    '',
    'exit codes:',
    '  0  ok',
    '  1  failure: the operation failed, or the broker, the store or a service could not be reached',
    '  2  usage error: unknown command, subcommand or option, a missing or malformed argument, invalid configuration',
  ].join('\n');
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv, io: CommandIo = IO): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined) {
    io.err(await topHelp());
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h') {
    io.out(await topHelp());
    return EXIT.ok;
  }
  if (name === '--version' || name === '-V') {
    if (args.length > 0) {
      io.err(`bkstream: unexpected argument ${JSON.stringify(args[0])} after ${name}\nsee bkstream --help`);
      return EXIT.usage;
    }
    io.out(`bkstream ${version()}`);
    return EXIT.ok;
  }
  if (name === 'help') {
    const [topic, ...extra] = args;
    if (topic === undefined) {
      io.out(await topHelp());
      return EXIT.ok;
    }
    const load = Object.hasOwn(COMMANDS, topic) ? COMMANDS[topic] : undefined;
    if (!load || extra.length > 0) {
      io.err(`bkstream help: ${load ? `unexpected argument ${JSON.stringify(extra[0])}` : `unknown command ${JSON.stringify(topic)}`}\nsee bkstream --help`);
      return EXIT.usage;
    }
    io.out((await load()).help());
    return EXIT.ok;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    io.err(`bkstream: unknown ${name.startsWith('-') ? 'option' : 'command'} ${JSON.stringify(name)}\nsee bkstream --help`);
    return EXIT.usage;
  }
  return runCommand(name, await load(), args, env, io);
}

if (import.meta.main) {
  main(process.argv.slice(2), process.env).then(
    (code) => {
      // A failed command may leave a client's reconnect timer behind: end now rather than wait for it.
      if (code !== EXIT.ok) process.exit(code);
      process.exitCode = code;
    },
    (err: unknown) => {
      console.error(`bkstream: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(EXIT.failure);
    },
  );
}
