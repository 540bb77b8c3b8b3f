#!/usr/bin/env node
/**
 * The `bkstream` command: `bkstream <command> [args]`; `bkstream help` lists the commands.
 * Run through npm (`npm run up`, `npx bkstream ...`) so the project's Node 24 is used.
 */
import { ConfigError } from '../common/errors.ts';
import { COMMANDS } from './commands.ts';
import { installWarningFilter } from '../common/process.ts';

installWarningFilter();

async function main(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    console.log('usage: bkstream <command> [args]\n\ncommands:');
    for (const [n, load] of Object.entries(COMMANDS)) {
      const c = await load();
      console.log(`  ${n.padEnd(10)} ${c.summary}\n  ${' '.repeat(10)} ${c.usage}`);
    }
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(`bkstream: unknown command ${JSON.stringify(name)} (try: bkstream help)`);
    return 2;
  }
  return (await load()).run(args, process.env);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(`bkstream: ${err.message}`);
      process.exit(2);
    }
    console.error(`bkstream: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
