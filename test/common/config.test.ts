import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bool, commonSpec, configTable, int, list, loadConfig, oneOf, hostPort, url } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { topicsSpec } from '../../services/common/topics.ts';

const spec = {
  ...commonSpec,
  ...topicsSpec,
  flushIntervalMs: int({ env: 'FLUSH_INTERVAL_MS', default: 1000, min: 1, doc: 'flush interval' }),
  dryRun: bool({ env: 'DRY_RUN', default: false, doc: 'dry run' }),
  mode: oneOf({ env: 'MODE', default: 'daemon', values: ['daemon', 'check', 'cron'], doc: 'mode' }),
  apiUrl: url({ env: 'API_URL', default: 'http://127.0.0.1:8090/', protocols: ['http', 'https'], doc: 'api' }),
};

function problems(env: Record<string, string>, file?: string): string[] {
  try {
    loadConfig(spec, { env, ...(file ? { file } : {}) });
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map((p) => `${p.key}: ${p.message}`);
  }
}

test('defaults validate and are typed', (t) => {
  const c = loadConfig(spec, { env: {} });
  t.deepEqual(c.kafkaBrokers, []);
  t.is(c.topicPrefix, 'bkstream');
  t.is(c.databaseUrl, undefined);
  t.is(c.flushIntervalMs, 1000);
  t.is(c.dryRun, false);
  t.is(c.mode, 'daemon');
  t.true(Object.isFrozen(c));
});

test('a valid environment is parsed', (t) => {
  const c = loadConfig(spec, {
    env: { KAFKA_BROKERS: '127.0.0.1:9092, 127.0.0.1:9094', DATABASE_URL: 'postgres://u@127.0.0.1:5432/db', FLUSH_INTERVAL_MS: '250', DRY_RUN: 'yes', MODE: 'cron', TOPIC_SPANS_PARTITIONS: '24' },
  });
  t.deepEqual(c.kafkaBrokers, ['127.0.0.1:9092', '127.0.0.1:9094']);
  t.is(c.databaseUrl, 'postgres://u@127.0.0.1:5432/db');
  t.is(c.flushIntervalMs, 250);
  t.true(c.dryRun);
  t.is(c.mode, 'cron');
  t.is(c.spansPartitions, 24);
});

const invalid: [string, Record<string, string>, RegExp][] = [
  ['KAFKA_BROKERS', { KAFKA_BROKERS: 'localhost' }, /KAFKA_BROKERS: item "localhost": must be host:port/],
  ['KAFKA_BROKERS port', { KAFKA_BROKERS: '127.0.0.1:99999' }, /KAFKA_BROKERS: .*host:port/],
  ['TOPIC_PREFIX', { TOPIC_PREFIX: 'bad prefix!' }, /TOPIC_PREFIX: must match/],
  ['DATABASE_URL', { DATABASE_URL: 'mysql://x' }, /DATABASE_URL: must use postgres or postgresql/],
  ['DATABASE_URL not a url', { DATABASE_URL: 'nope' }, /DATABASE_URL: must be a URL/],
  ['LOG_LEVEL', { LOG_LEVEL: 'loud' }, /LOG_LEVEL: must be one of error, warn, info, debug, silent/],
  ['FLUSH_INTERVAL_MS not int', { FLUSH_INTERVAL_MS: '1.5' }, /FLUSH_INTERVAL_MS: must be an integer/],
  ['FLUSH_INTERVAL_MS min', { FLUSH_INTERVAL_MS: '0' }, /FLUSH_INTERVAL_MS: must be >= 1/],
  ['DRY_RUN', { DRY_RUN: 'maybe' }, /DRY_RUN: must be true or false/],
  ['MODE', { MODE: 'x' }, /MODE: must be one of daemon, check, cron/],
  ['API_URL', { API_URL: 'ftp://x' }, /API_URL: must use http or https/],
  ['TOPIC_SPANS_PARTITIONS', { TOPIC_SPANS_PARTITIONS: '0' }, /TOPIC_SPANS_PARTITIONS: must be >= 1/],
];
for (const [name, env, expected] of invalid) {
  test(`invalid ${name} names the key`, (t) => {
    const found = problems(env);
    t.is(found.length, 1, found.join('\n'));
    t.regex(found[0] ?? '', expected);
  });
}

test('every problem is reported at once', (t) => {
  const found = problems({ KAFKA_BROKERS: 'x', LOG_LEVEL: 'loud', FLUSH_INTERVAL_MS: '-3', MODE: '?' });
  t.deepEqual(found.map((p) => p.split(':')[0]), ['KAFKA_BROKERS', 'LOG_LEVEL', 'FLUSH_INTERVAL_MS', 'MODE']);
  const err = t.throws(() => loadConfig(spec, { env: { KAFKA_BROKERS: 'x', MODE: '?' } }), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /invalid configuration \(2 problems\):\n {2}- KAFKA_BROKERS: .*\n {2}- MODE: /);
});

test('required keys are reported when missing', (t) => {
  const s = { token: int({ env: 'REQUIRED_N', doc: 'a required number' }) };
  const err = t.throws(() => loadConfig(s, { env: {} }), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /REQUIRED_N: is required/);
});

test('a config file supplies values; the environment wins; unknown and bad file keys are named', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bkcfg-'));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'FLUSH_INTERVAL_MS: 500\nMODE: check\nKAFKA_BROKERS: [127.0.0.1:9092, 127.0.0.1:9093]\n');
  const c = loadConfig(spec, { env: { MODE: 'cron' }, file });
  t.is(c.flushIntervalMs, 500);
  t.is(c.mode, 'cron');
  t.deepEqual(c.kafkaBrokers, ['127.0.0.1:9092', '127.0.0.1:9093']);

  writeFileSync(file, 'FLUSH_INTERVAL_MS: zero\nNOPE: 1\n');
  t.deepEqual(problems({}, file), [`${file}:NOPE: unknown key`, `${file}:FLUSH_INTERVAL_MS: must be an integer, got "zero"`]);
  writeFileSync(file, '- a list\n');
  t.regex(problems({}, file)[0] ?? '', /BKSTREAM_CONFIG: cannot parse .*mapping/);
  t.regex(problems({}, join(dir, 'missing.yaml'))[0] ?? '', /BKSTREAM_CONFIG: cannot read/);
});

test('list items are validated and blanks dropped', (t) => {
  const s = { l: list({ env: 'L', default: [], item: hostPort, doc: 'l' }) };
  t.deepEqual(loadConfig(s, { env: { L: ' a:1 ,, b:2 ' } }).l, ['a:1', 'b:2']);
});

test('configTable documents every key with its default', (t) => {
  const table = configTable(commonSpec);
  t.regex(table, /\| `KAFKA_BROKERS` \| \(empty\) \|/);
  t.regex(table, /\| `DATABASE_URL` \| \(unset\) \|/);
  t.regex(table, /\| `TOPIC_PREFIX` \| bkstream \|/);
});

test('PGLITE_SHARED_BUFFERS takes a PostgreSQL memory size and names itself otherwise', (t) => {
  t.is(loadConfig(commonSpec, { env: {} }).pgliteSharedBuffers, '32MB');
  t.is(loadConfig(commonSpec, { env: { PGLITE_SHARED_BUFFERS: '64MB' } }).pgliteSharedBuffers, '64MB');
  for (const bad of ['32', '0MB', '32 MB', 'lots']) t.throws(() => loadConfig(commonSpec, { env: { PGLITE_SHARED_BUFFERS: bad } }), { message: /PGLITE_SHARED_BUFFERS/ });
});

test('PGLITE_HEAP_LIMIT_MB defaults to 0 (V8 decides) and refuses what is not a whole number of MB', (t) => {
  t.is(loadConfig(commonSpec, { env: {} }).pgliteHeapLimitMb, 0);
  t.is(loadConfig(commonSpec, { env: { PGLITE_HEAP_LIMIT_MB: '256' } }).pgliteHeapLimitMb, 256);
  for (const bad of ['-1', '1.5', 'lots']) t.throws(() => loadConfig(commonSpec, { env: { PGLITE_HEAP_LIMIT_MB: bad } }), { message: /PGLITE_HEAP_LIMIT_MB/ });
});
