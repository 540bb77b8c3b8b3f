/**
 * `bkstream up --discovery N --storage N` (issue 18, item 4): N instances of each in one consumer group
 * per topic; instance 1 on the configured port, the others on free ports, and the summary names every
 * instance with the port it bound. Pure (nothing started) but for the usage checks, which start nothing
 * either. The rebalancing itself is proven against the broker in test/discovery/rebalance.test.ts.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { checkUpConfig, describeUp, instanceName, scaleInstances, withBoundPorts } from '../../services/cli/commands/up.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CONTEXT = { brokers: '127.0.0.1:9092', store: 'postgresql' };

test('--discovery 3 --storage 2: numbered instances sharing one config (so one group), the first on the configured port, the others on port 0', async (t) => {
  const planned = scaleInstances(await checkUpConfig({}), { discovery: 3, storage: 2 });
  const discovery = planned.filter((p) => p.module.name === 'discovery');
  const storage = planned.filter((p) => p.module.name === 'storage');
  t.deepEqual(discovery.map(instanceName), ['discovery 1', 'discovery 2', 'discovery 3']);
  t.deepEqual(storage.map(instanceName), ['storage 1', 'storage 2']);
  t.deepEqual(discovery.map((p) => (p.config as { httpPort: number }).httpPort), [8081, 0, 0]);
  t.deepEqual(storage.map((p) => (p.config as { httpPort: number }).httpPort), [8083, 0]);
  const groups = new Set(discovery.map((p) => (p.config as { groupId: string }).groupId));
  t.is(groups.size, 1, 'one consumer group');
  t.is(planned.filter((p) => p.module.name === 'collector').length, 1, 'other services run once');
  t.is(instanceName(planned.find((p) => p.module.name === 'collector')!), 'collector', 'a single instance is not numbered');
  t.deepEqual(scaleInstances(planned.slice(0, 1), {}), planned.slice(0, 1), 'no options: as before');
});

test('the summary prints every instance with the port it bound', async (t) => {
  const planned = scaleInstances(await checkUpConfig({}), { discovery: 2, storage: 2 });
  const running = new Map<string, unknown>([
    ['discovery 1', { http: { port: () => 8081 } }],
    ['discovery 2', { http: { port: () => 41001 } }],
    ['storage 1', { http: { port: () => 8083 } }],
    ['storage 2', { http: { port: () => 41002 } }],
  ]);
  const text = describeUp(withBoundPorts(planned, running), CONTEXT).join('\n');
  t.regex(text, /\n {2}discovery 1 +http:\/\/127\.0\.0\.1:8081 +topology API/);
  t.regex(text, /\n {2}discovery 2 +http:\/\/127\.0\.0\.1:41001 +topology API/);
  t.regex(text, /\n {2}storage 1 +http:\/\/127\.0\.0\.1:8083 +traces/);
  t.regex(text, /\n {2}storage 2 +http:\/\/127\.0\.0\.1:41002 +traces/);
  t.notRegex(text, /a free port/);
});

const bkstream = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'services/cli/bkstream.ts'), 'up', ...args], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:1' }, timeout: 60_000 });

test('up --help documents --discovery and --storage and starts nothing', (t) => {
  const r = bkstream('--help');
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /--discovery <n> +run n discovery instances in one consumer group/);
  t.regex(r.stdout, /--storage <n> +run n storage instances/);
  t.regex(r.stdout, /bkstream up --discovery 3 --storage 2/);
  t.notRegex(r.stdout, /^started |what runs where/m);
});

test('up --discovery 0 / 13 / x are usage errors (exit 2) naming the option, before anything starts', (t) => {
  for (const [value, pattern] of [['0', /--discovery must be between 1 and 12, not 0/], ['13', /--discovery must be between 1 and 12, not 13/], ['x', /--discovery/]] as const) {
    const r = bkstream('--discovery', value);
    t.is(r.status, 2, `${value}: ${r.stderr}`);
    t.regex(r.stderr, pattern);
    t.notRegex(r.stdout, /^started |what runs where/m);
  }
  const s = bkstream('--storage', '0');
  t.is(s.status, 2, s.stderr);
  t.regex(s.stderr, /--storage must be between 1 and 12/);
});
