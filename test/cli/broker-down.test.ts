/**
 * A broker that is down is one line and exit 1 within seconds (`cannot reach the Kafka broker at …
 * (set KAFKA_BROKERS): …`), not kafkajs's retry budget of logged errors on the terminal: replay (with a
 * value starting with `-`, which node's parseArgs alone refuses) and up (its topics).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve(import.meta.dirname, '../../services/cli/bkstream.ts');

/** A loopback broker address nothing listens on. */
async function deadBroker(): Promise<string> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((done) => server.close(() => done()));
  return `127.0.0.1:${port}`;
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

test('replay --from -2h with the broker down: one line and exit 1 within seconds, no kafkajs logs', async (t) => {
  const env = { KAFKA_BROKERS: await deadBroker() };
  const r = await spawnCli(['replay', '--from', '-2h', '--to', 'now'], env);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, new RegExp(`^bkstream replay: cannot reach the Kafka broker at ${env.KAFKA_BROKERS} \\(set KAFKA_BROKERS\\): .*ECONNREFUSED.*\\n$`));
  t.true(r.ms < 10_000, `${r.ms} ms`);
});

test('up with the broker down: one line and exit 1, no kafkajs logs', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'bkstream-up-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const env = { KAFKA_BROKERS: await deadBroker() };
  const r = await spawnCli(['up'], { ...env, DATA_DIR: dataDir });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, new RegExp(`^bkstream up: cannot reach the Kafka broker at ${env.KAFKA_BROKERS} \\(set KAFKA_BROKERS\\): .*ECONNREFUSED.*\\n$`));
  t.true(r.ms < 30_000, `${r.ms} ms`);
});
