/**
 * `bkstream up --discovery 2 --storage 2` as a user runs it (issue 18, item 4): the real command in a child
 * process of its own process group, on a temporary DATA_DIR (embedded PGlite), a unique TOPIC_PREFIX and
 * unique consumer groups on the shared broker, every configured listener on a free port chosen here. The
 * summary lists `discovery 1`, `discovery 2`, `storage 1`, `storage 2`, instance 1 on the port chosen here and
 * instance 2 on the port it bound; each instance answers on its own port with its own metrics (labelled
 * with its instance) and its consumers joined; Ctrl-C stops it all with exit code 0. (Rebalancing between
 * instances is proven in test/discovery/rebalance.test.ts.)
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { testBus, uniqueName, waitFor } from '../helpers/kafka.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const PORT_KEYS = [
  'COLLECTOR_OTLP_GRPC_PORT', 'COLLECTOR_OTLP_HTTP_PORT', 'COLLECTOR_ADMIN_PORT', 'DISCOVERY_HTTP_PORT', 'ORCH_HTTP_PORT', 'ORCH_GRPC_PORT',
  'STORAGE_HTTP_PORT', 'SAMPLER_HTTP_PORT', 'BKDATA_SIM_PORT', 'CONSOLE_PORT', 'AGENT_ADMIN_PORT',
] as const;
const GROUP_KEYS = [
  'DISCOVERY_GROUP_ID', 'DISCOVERY_REPLAY_GROUP_ID', 'DISCOVERY_EVENTS_GROUP_ID', 'ORCH_CONSUMER_GROUP', 'SAMPLER_GROUP_ID',
  'STORAGE_SPANS_GROUP_ID', 'STORAGE_REPLAY_GROUP_ID', 'STORAGE_METRICS_GROUP_ID', 'STORAGE_EVENTS_GROUP_ID',
] as const;

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => done(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  return ports;
}

test('bkstream up --discovery 2 --storage 2: two of each, each on its own port with its own metrics, in one group; Ctrl-C stops all', async (t) => {
  t.timeout(240_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'bkstream-up-scale-'));
  const prefix = uniqueName('up-scale');
  const ports = Object.fromEntries((await freePorts(PORT_KEYS.length)).map((port, i) => [PORT_KEYS[i], String(port)])) as Record<(typeof PORT_KEYS)[number], string>;
  const groups = Object.fromEntries(GROUP_KEYS.map((key) => [key, `${prefix}-${key.toLowerCase().replaceAll('_', '-')}`]));
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, TOPIC_PREFIX: prefix, KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092', ...ports, ...groups };
  for (const key of ['DATABASE_URL', 'BKDATA_API_URL', 'BKSTREAM_CONFIG', 'BKSTREAM_ADMIN_TOKEN', 'BKSTREAM_ADMIN_TOKEN_FILE', 'NODE_ENV', 'AGENT_CONFIG', 'AGENT_STATE_DIR']) delete env[key];
  for (const key of Object.keys(env)) if (key.startsWith('CONSOLE_') && key.endsWith('_URL')) delete env[key];

  const child = spawn(process.execPath, [join(ROOT, 'services/cli/bkstream.ts'), 'up', '--discovery', '2', '--storage', '2'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  child.stderr.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4_000)));
  let exit: number | null | undefined;
  const exited = new Promise<void>((done) => child.once('exit', (code, signal) => {
    exit = code ?? (signal ? -1 : null);
    done();
  }));
  t.teardown(async () => {
    if (exit === undefined) {
      try {
        process.kill(-(child.pid as number), 'SIGKILL');
      } catch { /* gone */ }
      await exited;
    }
    const admin = testBus().admin();
    await admin.start();
    for (const group of Object.values(groups)) await admin.deleteGroup(group);
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(`${prefix}.`));
    if (topics.length > 0) await admin.deleteTopics(topics).catch(() => undefined);
    await admin.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  await waitFor('bkstream is up', () => {
    if (exit !== undefined) throw new Error(`up ended (${exit}):\n${stdout}\n${stderr}`);
    return /^bkstream is up /m.test(stdout);
  }, 180_000, 200).catch((err: unknown) => {
    t.log(stdout, stderr);
    throw err;
  });
  for (const name of ['discovery 1', 'discovery 2', 'storage 1', 'storage 2']) t.regex(stdout, new RegExp(`^started ${name}$`, 'm'));
  const urls = new Map<string, string>();
  for (const m of stdout.matchAll(/^ {2}((?:discovery|storage) \d) +(http:\/\/127\.0\.0\.1:\d+) /gm)) urls.set(m[1]!, m[2]!);
  t.deepEqual([...urls.keys()].sort(), ['discovery 1', 'discovery 2', 'storage 1', 'storage 2'], stdout);
  t.is(urls.get('discovery 1'), `http://127.0.0.1:${ports.DISCOVERY_HTTP_PORT}`, 'instance 1 on the configured port');
  t.is(urls.get('storage 1'), `http://127.0.0.1:${ports.STORAGE_HTTP_PORT}`);
  t.is(new Set(urls.values()).size, 4, 'four distinct ports');
  t.notRegex(stdout, /a free port/, 'every port as bound');

  for (const [name, url] of urls) {
    const instance = name.split(' ')[1]!;
    const metrics = await (await fetch(`${url}/metrics`)).text();
    t.regex(metrics, new RegExp(`instance="${instance}"`), `${name}: its own metrics`);
    t.notRegex(metrics, new RegExp(`instance="${instance === '1' ? '2' : '1'}"`), `${name}: not the other instance's`);
    const health = await waitFor(`${name}: consumers joined`, async () => {
      const body = (await (await fetch(`${url}/healthz`)).json()) as { checks?: { consumers?: Record<string, string> } };
      const consumers = Object.values(body.checks?.consumers ?? {});
      return consumers.length > 0 && consumers.every((c) => c === 'joined') ? body : undefined;
    }, 90_000, 250);
    t.truthy(health);
  }
  const admin = testBus().admin();
  await admin.start();
  t.teardown(() => admin.stop());
  t.is(await admin.describeGroup(groups.DISCOVERY_GROUP_ID!), 'Stable', 'the two discovery instances in one group');

  process.kill(-(child.pid as number), 'SIGINT');
  await exited;
  t.is(exit, 0, stderr);
});
