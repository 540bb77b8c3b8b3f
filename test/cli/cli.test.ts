/**
 * The `bkstream` command line as a whole (issue 18, item 3): every command and subcommand answers
 * `--help` / `-h` with its usage and exit 0 without running; unknown commands and options are usage
 * errors (exit 2) naming the word; every listing takes `--json`; a service that is down is one line and
 * exit 1 (a broker that is down: broker-down.test.ts).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { main } from '../../services/cli/bkstream.ts';
import { COMMANDS } from '../../services/cli/commands.ts';

const CLI = resolve(import.meta.dirname, '../../services/cli/bkstream.ts');

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return port;
}

/** An environment in which anything that did try to connect would fail at once. */
async function deadEnv(): Promise<NodeJS.ProcessEnv> {
  const port = await closedPort();
  return {
    KAFKA_BROKERS: `127.0.0.1:${port}`,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
    ORCHESTRATOR_URL: `http://127.0.0.1:${port}`,
    STORAGE_URL: `http://127.0.0.1:${port}`,
    DISCOVERY_URL: `http://127.0.0.1:${port}`,
    COLLECTOR_ADMIN_URL: `http://127.0.0.1:${port}`,
  };
}

async function cli(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, env, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function spawnCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, BKSTREAM_ADMIN_TOKEN: '', BKSTREAM_ADMIN_TOKEN_FILE: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr, ms: Date.now() - started }));
  });
}

/** Every command path: `up`, `flows list`, …; each group's subcommands after it. */
async function everyCommand(): Promise<string[][]> {
  const paths: string[][] = [];
  for (const [name, load] of Object.entries(COMMANDS)) {
    const command = await load();
    paths.push([name]);
    for (const sub of Object.keys(command.subcommands ?? {})) paths.push([name, sub]);
  }
  return paths;
}

test('bkstream --help lists every command and the exit codes; --version; a bare bkstream is a usage error', async (t) => {
  for (const argv of [['--help'], ['-h'], ['help']]) {
    const r = await cli(argv);
    t.is(r.code, 0, argv.join(' '));
    t.is(r.err, '');
    for (const name of Object.keys(COMMANDS)) t.regex(r.out, new RegExp(`^ {2}${name} +\\S`, 'm'), name);
    t.regex(r.out, /exit codes:\n {2}0 {2}ok\n {2}1 {2}failure.*\n {2}2 {2}usage error/);
    t.regex(r.out, /--json/);
  }
  const bare = await cli([]);
  t.is(bare.code, 2);
  t.regex(bare.err, /^usage: bkstream <command>/);
  t.is((await cli(['help', 'flows'])).out.split('\n')[0], 'usage: bkstream flows <subcommand> [options]');
  const v = await cli(['--version']);
  t.is(v.code, 0);
  t.regex(v.out, /^bkstream \d+\.\d+\.\d+$/);
});

test('unknown commands, options and subcommands are usage errors naming the word', async (t) => {
  const env = await deadEnv();
  const cases: [string[], string | RegExp][] = [
    [['frobnicate'], 'bkstream: unknown command "frobnicate"\nsee bkstream --help'],
    [['--verbose'], 'bkstream: unknown option "--verbose"\nsee bkstream --help'],
    [['help', 'nope'], 'bkstream help: unknown command "nope"\nsee bkstream --help'],
    [['status', '--verbose'], 'bkstream status: unknown option --verbose\nsee bkstream status --help'],
    [['flows', 'frob'], 'bkstream flows: unknown subcommand "frob" (one of list, get, submit, retry, breakers)\nsee bkstream flows --help'],
    [['flows'], 'bkstream flows: missing subcommand (one of list, get, submit, retry, breakers)\nsee bkstream flows --help'],
    [['flows', 'list', '--status', 'bogus'], 'bkstream flows list: --status must be one of pending, running, waiting_dependency, success, stopped, deleted, config_deploy_failed, config_cleans_failed, config_cleans_start_failed, auth_failed, config_flow_failed, stop_failed, delete_failed (got "bogus")\nsee bkstream flows list --help'],
    [['traces', 'shop', '--limit', 'ten'], 'bkstream traces: --limit must be an integer (got "ten")\nsee bkstream traces --help'],
    [['traces', 'shop', '--since', 'yesterday'], 'bkstream traces: --since: expected a duration such as 250ms, 30m, 2h or 7d (got "yesterday")\nsee bkstream traces --help'],
    [['metrics'], 'bkstream metrics: missing <name>\nsee bkstream metrics --help'],
    [['metrics', 'cpu', '--agg', 'median'], 'bkstream metrics: --agg must be one of avg, min, max, sum, count, last (got "median")\nsee bkstream metrics --help'],
    [['trace', 'a', 'b'], 'bkstream trace: unexpected argument "b"\nsee bkstream trace --help'],
    [['replay', '--from', '-2h'], 'bkstream replay: --to is required\nsee bkstream replay --help'],
    [['replay', '--from', 'now', '--to', '-1h'], /^bkstream replay: --from \(.*\) must be before --to \(.*\)\nsee bkstream replay --help$/],
    [['admin', 'revoke'], 'bkstream admin revoke: --id is required\nsee bkstream admin revoke --help'],
    [['admin', 'tokens', '--all'], 'bkstream admin tokens: unknown option --all\nsee bkstream admin tokens --help'],
    [['agent', 'check'], 'bkstream agent check: missing <main file>\nsee bkstream agent check --help'],
    [['report', '--kind', 'alarm'], 'bkstream report: --kind must be one of event, timeseries (got "alarm")\nsee bkstream report --help'],
    [['up', '--dmeo'], 'bkstream up: unknown option --dmeo\nsee bkstream up --help'],
    [['apps', 'delete'], 'bkstream apps delete: --biz is required\nsee bkstream apps delete --help'],
    [['apps', 'list', '--verbose'], 'bkstream apps list: unknown option --verbose\nsee bkstream apps list --help'],
    [['apps', 'update', '--biz', '-1', '--app', 'x', '--qps', 'fast'], 'bkstream apps update: --qps must be an integer or default (got "fast")\nsee bkstream apps update --help'],
    [['apps', 'update', '--biz', '3', '--app', 'x', '--tail-sampling', 'maybe'], 'bkstream apps update: --tail-sampling must be on or off (got "maybe")\nsee bkstream apps update --help'],
  ];
  for (const [argv, message] of cases) {
    const r = await cli(argv, env);
    t.is(r.code, 2, argv.join(' '));
    t.is(r.out, '', argv.join(' '));
    if (typeof message === 'string') t.is(r.err, message);
    else t.regex(r.err, message);
  }
});

test('every command and subcommand prints its usage for --help and -h, exit 0, running nothing', async (t) => {
  const env = await deadEnv();
  const paths = await everyCommand();
  t.true(paths.length >= 20, `${paths.length} command paths`);
  for (const path of paths) {
    for (const flag of ['--help', '-h']) {
      const r = await cli([...path, flag], env);
      t.is(r.code, 0, `${path.join(' ')} ${flag}: ${r.err}`);
      t.is(r.err, '', path.join(' '));
      t.true(r.out.startsWith(`usage: bkstream ${path.join(' ')}`), `${path.join(' ')}: ${r.out.split('\n')[0] ?? ''}`);
      t.regex(r.out, /-h, --help|--help/);
    }
  }
  // after other arguments too
  t.is((await cli(['traces', 'shop', '--since', '2h', '--help'], env)).code, 0);
  t.is((await cli(['replay', '--from', '-2h', '-h'], env)).code, 0);
});

test('every listing takes --json', async (t) => {
  const listings = [['status'], ['flows', 'list'], ['flows', 'breakers'], ['apps', 'list'], ['admin', 'tokens'], ['traces'], ['trace'], ['metrics'], ['agent', 'check']];
  for (const path of listings) {
    const r = await cli([...path, '--help']);
    t.regex(r.out, /^ {2}--json +\S/m, path.join(' '));
  }
});

test('bkstream up --help starts and opens nothing', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'bkstream-help-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const r = await spawnCli(['up', '--help'], { KAFKA_BROKERS: '', KAFKA_PORT: '1', DATA_DIR: dataDir, BKSTREAM_HOME: dataDir });
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /^usage: bkstream up \[--demo\] \[--discovery <n>\] \[--storage <n>\]\n/);
  t.is(r.stderr, '');
  t.deepEqual(readdirSync(dataDir), [], 'no broker, no store');
});

test('services that are down are one line and exit 1', async (t) => {
  const env = await deadEnv();
  for (const [argv, what] of [[['flows', 'list'], 'the orchestrator'], [['traces', 'shop', '--biz', '2'], 'the storage service'], [['trace', 'abc'], 'the storage service'], [['metrics', 'cpu'], 'the storage service']] as const) {
    const r = await cli([...argv], env);
    t.is(r.code, 1, argv.join(' '));
    t.is(r.out, '');
    t.regex(r.err, new RegExp(`^bkstream ${argv[0]}: cannot reach ${what} at http://127\\.0\\.0\\.1:\\d+ \\(set [A-Z_]+\\): connect ECONNREFUSED [\\d.:]+$`), argv.join(' '));
  }
});
