/**
 * The CLI's one argument parser (services/cli/command.ts): `--help` / `-h` anywhere, unknown options and
 * subcommands named, values starting with `-` in both spellings, typed options (integers, choices,
 * required, repeatable), positional counts, and how runCommand maps each ending to the exit code.
 */
import test from 'ava';
import { BkError, ConfigError, UnavailableError } from '../../services/common/errors.ts';
import { defineCommand, defineGroup, EXIT, HelpRequest, parseCommand, runCommand, usageLine, UsageError, type CommandSpec } from '../../services/cli/command.ts';

const SPEC = {
  name: 'thing do',
  summary: 'does a thing',
  args: ['<app>', '[extra]'],
  options: {
    from: { type: 'string', value: 'time', help: 'start' },
    to: { type: 'string', value: 'time', default: 'now', help: 'end' },
    n: { type: 'integer', short: 'n', default: 20, help: 'how many' },
    status: { type: 'string', choices: ['running', 'success', 'failed', 'stopped'], help: 'only this status' },
    match: { type: 'string', multiple: true, help: 'a matcher' },
    json: { type: 'boolean', help: 'JSON on stdout' },
  },
} as const satisfies CommandSpec;

const usageError = (fn: () => unknown): string => {
  const err = (() => {
    try {
      fn();
    } catch (e) {
      return e;
    }
    return undefined;
  })();
  if (!(err instanceof UsageError)) throw new Error(`expected a UsageError, got ${String(err)}`);
  return err.message;
};

test('typed values, defaults and positionals', (t) => {
  const { values, positionals } = parseCommand(SPEC, ['shop', '--from', '2026-11-21T10:00:00Z', '-n', '5', '--match', 'a=b', '--match=c!=d', '--json']);
  t.deepEqual(positionals, ['shop']);
  t.is(values.from, '2026-11-21T10:00:00Z');
  t.is(values.to, 'now');
  t.is(values.n, 5);
  t.deepEqual(values.match, ['a=b', 'c!=d']);
  t.true(values.json);
  t.is(values.status, undefined);
  const none = parseCommand(SPEC, ['shop', 'x']);
  t.is(none.values.n, 20);
  t.deepEqual(none.values.match, []);
  t.false(none.values.json);
  t.deepEqual(none.positionals, ['shop', 'x']);
});

test('values that start with - are taken in both spellings (node parseArgs alone calls --from -2h ambiguous)', (t) => {
  for (const args of [['a', '--from', '-2h', '--to', 'now'], ['a', '--from=-2h', '--to=now']]) {
    const { values } = parseCommand(SPEC, args);
    t.is(values.from, '-2h', args.join(' '));
    t.is(values.to, 'now');
  }
  t.is(parseCommand(SPEC, ['a', '-n', '-3']).values.n, -3);
  t.is(parseCommand(SPEC, ['a', '--n', '-3']).values.n, -3);
  // an option word after an option that needs a value is not swallowed as its value
  t.is(usageError(() => parseCommand(SPEC, ['a', '--from', '--json'])), '--from needs a value');
  t.is(usageError(() => parseCommand(SPEC, ['a', '--from'])), '--from needs a value');
  t.is(usageError(() => parseCommand(SPEC, ['a', '-n'])), '--n needs a value', 'the long name of a short option');
  // after --, everything is positional
  t.deepEqual(parseCommand(SPEC, ['a', '--', '--weird']).positionals, ['a', '--weird']);
});

test('--help and -h anywhere print the usage instead of running', (t) => {
  for (const args of [['--help'], ['-h'], ['shop', '--json', '-h'], ['--bogus', '--help'], ['--from', '-1h', '--help']]) {
    const err = t.throws(() => parseCommand(SPEC, args), { instanceOf: HelpRequest }, args.join(' '));
    const [usage = ''] = (err?.text ?? '').split('\n\n');
    t.is(usage.replace(/\n +/g, ' '), 'usage: bkstream thing do <app> [extra] [--from <time>] [--to <time>] [--n <n>] [--status <status>] [--match <match>]… [--json]');
    t.true(usage.split('\n').every((l) => l.length <= 110), 'wrapped');
    t.regex(usage, /\n {25}\S/, 'continued under the first argument');
    t.regex(err?.text ?? '', /--status <status> +only this status \(one of running, success, failed, stopped\)/);
    t.regex(err?.text ?? '', /-n, --n <n> +how many \(default 20\)/);
    t.regex(err?.text ?? '', /-h, --help +print this help and exit/);
  }
  t.is(usageLine({ name: 'x', summary: '', options: { kind: { type: 'string', choices: ['a', 'b'], required: true, help: '' } } }), 'bkstream x --kind a|b');
});

test('every usage problem is a UsageError naming the word at fault', (t) => {
  t.is(usageError(() => parseCommand(SPEC, ['a', '--verbose'])), 'unknown option --verbose');
  t.is(usageError(() => parseCommand(SPEC, ['a', '-v'])), 'unknown option -v');
  t.is(usageError(() => parseCommand(SPEC, ['a', '--json=yes'])), '--json takes no value');
  t.is(usageError(() => parseCommand(SPEC, ['a', '--n', 'ten'])), '--n must be an integer (got "ten")');
  t.is(usageError(() => parseCommand(SPEC, ['a', '--status', 'bogus'])), '--status must be one of running, success, failed, stopped (got "bogus")');
  t.is(usageError(() => parseCommand(SPEC, [])), 'missing <app>');
  t.is(usageError(() => parseCommand(SPEC, ['a', 'b', 'c'])), 'unexpected argument "c"');
  t.is(usageError(() => parseCommand({ name: 'r', summary: '', options: { id: { type: 'integer', required: true, help: '' } } }, [])), '--id is required');
  const err = t.throws(() => parseCommand(SPEC, ['a', '--verbose']), { instanceOf: UsageError });
  t.is(err?.command, 'thing do');
});

test('groups: subcommands dispatched, missing and unknown ones named, --help lists them', async (t) => {
  const ran: string[][] = [];
  const list = defineCommand({ name: 'g list', summary: 'lists', options: { json: { type: 'boolean', help: 'JSON' } } }, async ({ values }, _env, print) => {
    ran.push([String(values.json)]);
    print('listed');
    return 0;
  });
  const group = defineGroup('g', 'a group', { list });
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  t.is(await runCommand('g', group, ['list', '--json'], {}, io), EXIT.ok);
  t.deepEqual(ran, [['true']]);
  t.deepEqual(out.splice(0), ['listed']);

  t.is(await runCommand('g', group, [], {}, io), EXIT.usage);
  t.deepEqual(err.splice(0), ['bkstream g: missing subcommand (one of list)\nsee bkstream g --help']);
  t.is(await runCommand('g', group, ['frob'], {}, io), EXIT.usage);
  t.deepEqual(err.splice(0), ['bkstream g: unknown subcommand "frob" (one of list)\nsee bkstream g --help']);
  t.is(await runCommand('g', group, ['--json', 'list'], {}, io), EXIT.usage);
  t.deepEqual(err.splice(0), ['bkstream g: unknown option --json (the subcommand comes first: one of list)\nsee bkstream g --help']);
  t.is(await runCommand('g', group, ['list', '--all'], {}, io), EXIT.usage);
  t.deepEqual(err.splice(0), ['bkstream g list: unknown option --all\nsee bkstream g list --help']);

  t.is(await runCommand('g', group, ['--help'], {}, io), EXIT.ok);
  t.regex(out.pop() ?? '', /^usage: bkstream g <subcommand> \[options\]\n\na group\n\nsubcommands:\n {2}list {2}lists\n/);
  t.is(await runCommand('g', group, ['list', '-h'], {}, io), EXIT.ok);
  t.regex(out.pop() ?? '', /^usage: bkstream g list \[--json\]/);
  t.deepEqual(ran.length, 1, 'help runs nothing');
  t.deepEqual(err, []);
});

test('runCommand: 0 ok, 1 failure as one line, 2 usage or configuration error', async (t) => {
  const failing = (e: unknown) => defineCommand({ name: 'f', summary: '', options: {} }, () => Promise.reject(e instanceof Error ? e : new Error(String(e))));
  const err: string[] = [];
  const io = { out: () => undefined, err: (l: string) => err.push(l) };
  t.is(await runCommand('f', failing(new UnavailableError('cannot reach the orchestrator at http://127.0.0.1:1')), [], {}, io), EXIT.failure);
  t.is(await runCommand('f', failing(new BkError('conflict', 'already exists', false)), [], {}, io), EXIT.failure);
  t.is(await runCommand('f', failing(new TypeError('x is not a function')), [], {}, io), EXIT.failure);
  t.is(await runCommand('f', failing(new ConfigError([{ key: 'KAFKA_BROKERS', message: 'bad' }])), [], {}, io), EXIT.usage);
  t.is(await runCommand('f', defineCommand({ name: 'f', summary: '', options: {} }, ({ usage }) => usage('no')), [], {}, io), EXIT.usage);
  t.is(err[0], 'bkstream f: cannot reach the orchestrator at http://127.0.0.1:1');
  t.is(err[1], 'bkstream f: already exists');
  t.is(err[2], 'bkstream f: x is not a function');
  t.regex(err[3] ?? '', /^bkstream f: .*KAFKA_BROKERS/s);
  t.is(err[4], 'bkstream f: no\nsee bkstream f --help');
});
