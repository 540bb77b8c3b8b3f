/**
 * Configuration problems are listed together, before anything connects (issue 16, item 5): `bkstream up`
 * checks the shared keys, the topics' and every service's own first — one error naming every bad key,
 * no broker started — and a service's main does the same for its shared and own keys.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { checkUpConfig } from '../../services/cli/commands/up.ts';
import { ConfigError } from '../../services/common/errors.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function run(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr, ms: Date.now() - started }));
  });
}

const BAD = {
  LOG_LEVEL: 'loud', // shared
  BKSTREAM_ADMIN_TOKEN: 'short', // shared, secret: its value is never shown
  TOPIC_SPANS_PARTITIONS: '0', // topics
  COLLECTOR_OTLP_HTTP_PORT: 'x', // collector
  ORCH_HTTP_PORT: '-1', // orchestrator
  DISCOVERY_FLUSH_INTERVAL_MS: 'soon', // discovery
};

test('bkstream up lists every problem of every key, shared and per service, in one error', async (t) => {
  const err = await t.throwsAsync(checkUpConfig({ ...BAD }), { instanceOf: ConfigError });
  const keys = new Set((err).problems.map((p) => p.key));
  for (const key of Object.keys(BAD)) t.true(keys.has(key), `${key} is named`);
  t.false((err).message.includes('"short"'), 'a secret is not echoed');
});

test('bkstream up exits 2 with that list before it starts a broker or opens a store', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'bkstream-up-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const out = await run([join(ROOT, 'services/cli/bkstream.ts'), 'up'], { ...BAD, KAFKA_BROKERS: '', DATA_DIR: dataDir, KAFKA_PORT: '1' });
  t.is(out.code, 2, out.stderr);
  for (const key of Object.keys(BAD)) t.regex(out.stderr, new RegExp(`- ${key}`), key);
  t.notRegex(out.stdout, /local Kafka broker/, 'no broker was started');
  t.true(out.ms < 30_000, `refused in ${out.ms} ms`);
});

test('a service refuses to start with its shared and own problems listed together, before connecting', async (t) => {
  const out = await run([join(ROOT, 'services/collector/main.ts')], { LOG_LEVEL: 'loud', COLLECTOR_ADMIN_PORT: 'x', KAFKA_BROKERS: '127.0.0.1:1', DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
  t.is(out.code, 2, out.stderr);
  t.regex(out.stderr, /- LOG_LEVEL: must be one of/);
  t.regex(out.stderr, /- COLLECTOR_ADMIN_PORT: must be an integer/);
});
