/**
 * `bkstream status`, the operator's summary: the broker, the topics with their partitions, the lag of the
 * services' consumer groups (the real broker), the store (real PostgreSQL), and from the APIs (small
 * stand-ins on loopback answering as discovery, the orchestrator and storage do) the discovered counts per
 * application, flows by status, breakers and agents by heartbeat age; each part that does not answer is
 * one line saying `unreachable`, and `--json` is the same as one document.
 */
import test from 'ava';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rawDecoder } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { LISTINGS } from '../../services/discovery/api.ts';
import { runCommand } from '../../services/cli/command.ts';
import { renderStatus, statusCommand, statusReport, type StatusReport } from '../../services/cli/commands/status.ts';
import { ADMIN_ENV, TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';
import { brokerKit, brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';

type Handler = (url: URL, req: IncomingMessage) => unknown;

/** A JSON API stand-in on loopback: `routes` by path; records the Authorization header of every request. */
async function api(t: { teardown(fn: () => unknown): void }, routes: Record<string, Handler>): Promise<{ url: string; auth: (string | undefined)[] }> {
  const auth: (string | undefined)[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    auth.push(req.headers.authorization);
    const route = routes[url.pathname];
    const body = route ? route(url, req) : { error: `no route ${url.pathname}` };
    res.writeHead(route ? 200 : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, auth };
}

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test('every part down: one unreachable line each, exit 1, in a few seconds', async (t) => {
  const port = await closedPort();
  const env = {
    KAFKA_BROKERS: `127.0.0.1:${port}`,
    DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/postgres`,
    DISCOVERY_URL: `http://127.0.0.1:${port}`,
    ORCHESTRATOR_URL: `http://127.0.0.1:${port}`,
    STORAGE_URL: `http://127.0.0.1:${port}`,
  };
  const started = Date.now();
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCommand('status', statusCommand(), [], env, { out: (l) => out.push(l), err: (l) => err.push(l) });
  t.true(Date.now() - started < 10_000, `${Date.now() - started} ms`);
  t.is(code, 1);
  t.deepEqual(err, []);
  t.deepEqual(out.map((l) => l.split(/\s+/)[0]), ['kafka', 'store', 'discovery', 'flows', 'agents']);
  for (const line of out) t.regex(line, /unreachable/, line);
  t.regex(out[0] ?? '', new RegExp(`^kafka +unreachable at 127.0.0.1:${port}: .*ECONNREFUSED`));
  t.regex(out[2] ?? '', new RegExp(`^discovery +unreachable at http://127.0.0.1:${port}: connect ECONNREFUSED`));

  const json: string[] = [];
  t.is(await runCommand('status', statusCommand(), ['--json'], env, { out: (l) => json.push(l), err: (l) => json.push(l) }), 1);
  const report = JSON.parse(json.join('\n')) as StatusReport;
  t.false(report.ok);
  for (const part of [report.kafka, report.store, report.discovery, report.flows, report.agents]) t.false(part.reachable);
});

test('every part up: topics and partitions, group lag, store, discovered counts, flows by status, breakers, agents by heartbeat age', async (t) => {
  t.timeout(120_000);
  const kit = await brokerKit(t);
  const prefix = uniqueName('status');
  const plan = topicPlan(prefix).map((p) => ({ ...p, numPartitions: p.topic.endsWith('.spans') ? 2 : 1 }));
  await kit.admin.ensureTopics(plan);
  t.teardown(() => kit.admin.deleteTopics(plan.map((p) => p.topic)));
  const spans = `${prefix}.spans`;

  // discovery's group on spans read 3 records; 2 more arrived since
  const group = uniqueName('status-discovery');
  await kit.produce(spans, [0, 1, 2].map((i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: 0 })));
  let seen = 0;
  const consumer = kit.bus.consumer({ groupId: group, topics: [spans], codec: rawDecoder, dlqTopic: `${prefix}.dlq`, maxWaitTimeMs: 100, handler: async (b) => {
    seen += b.records.length;
  } });
  await consumer.start();
  await waitFor('3 records consumed', () => seen === 3);
  await consumer.stop(0);
  t.teardown(() => kit.admin.deleteGroup(group));
  await kit.produce(spans, [3, 4].map((i) => ({ key: `k${i}`, value: Buffer.from(`v${i}`), partition: 1 })));
  await waitFor('the group\'s lag of 2', async () => (await kit.admin.groupLag(group, spans)) === 2);

  const databaseUrl = await freshDatabase(t);
  const store = createStore({ databaseUrl, logger: silentLogger, poolSize: 1 });
  await store.start();
  await store.migrate();
  await store.stop();

  const now = Date.parse('2026-12-02T10:00:00Z');
  const discovery = await api(t, {
    '/livez': () => ({ status: 'ok' }),
    ...Object.fromEntries(Object.keys(LISTINGS).map((listing, i) => [`/api/v1/apps/2/shop/${listing}`, (url: URL) => ({ total: url.searchParams.get('page_size') === '1' ? i + 1 : -1, items: [] })])),
  });
  const orchestrator = await api(t, {
    '/api/v1/flows': (url) => ({ flows: url.searchParams.get('offset') === '0' ? [{ status: 'success' }, { status: 'success' }, { status: 'auth_failed' }] : [] }),
    '/api/v1/breakers': () => ({ access: 'closed', dataflow: 'open' }),
  });
  const heartbeats = [
    { timestamp: now - 20_000, ip: '10.0.0.7', hostname: 'web-1', bk_host_id: 7 },
    { timestamp: now - 600_000, ip: '10.0.0.8', hostname: 'web-2', bk_host_id: 8 },
    { timestamp: now - 80_000, ip: '10.0.0.7', hostname: 'web-1', bk_host_id: 7 },
  ];
  const storage = await api(t, {
    '/api/v1/apps': () => ({ items: [{ bk_biz_id: 2, app_name: 'shop', trace_retention_days: 7 }] }),
    '/api/v1/events': (url) => {
      t.is(url.searchParams.get('event_type'), 'heartbeat');
      t.is(Number(url.searchParams.get('start')), now / 1000 - 3600);
      return { items: heartbeats };
    },
  });
  const env = {
    KAFKA_BROKERS: brokers().join(','),
    TOPIC_PREFIX: prefix,
    DISCOVERY_GROUP_ID: group,
    DATABASE_URL: databaseUrl,
    DISCOVERY_URL: discovery.url,
    ORCHESTRATOR_URL: orchestrator.url,
    STORAGE_URL: storage.url,
    ...ADMIN_ENV,
  };

  const report = await statusReport(env, now);
  t.true(report.ok, JSON.stringify(report));
  if (!report.kafka.reachable || !report.store.reachable || !report.discovery.reachable || !report.flows.reachable || !report.agents.reachable) throw new Error('a part is unreachable');
  t.deepEqual(report.kafka.topics.map((x) => [x.topic, x.partitions]), plan.map((p) => [p.topic, p.numPartitions]));
  t.deepEqual(report.kafka.groups, [{ group, service: 'discovery', topic: spans, lag: 2 }]);
  t.true(report.kafka.absent_groups.includes('bkstream-storage-spans'));
  t.deepEqual(report.store, { reachable: true, driver: 'pg', pending_migrations: 0 });
  t.deepEqual(report.discovery.applications, [{ bk_biz_id: 2, app_name: 'shop', counts: Object.fromEntries(Object.keys(LISTINGS).map((l, i) => [l, i + 1])) }]);
  t.deepEqual(report.flows.by_status, { success: 2, auth_failed: 1 });
  t.is(report.flows.total, 3);
  t.deepEqual(report.flows.breakers, { access: 'closed', dataflow: 'open' });
  t.deepEqual(report.agents.agents.map((a) => [a.ip, a.age_s]), [['10.0.0.7', 20], ['10.0.0.8', 600]], 'the newest heartbeat of each agent, youngest first');
  for (const seen of [...discovery.auth, ...orchestrator.auth, ...storage.auth]) t.is(seen, `Bearer ${TEST_ADMIN_TOKEN}`);

  const lines = renderStatus(report);
  t.is(lines[0], `kafka      up at ${env.KAFKA_BROKERS}`);
  t.true(lines.some((l) => new RegExp(`^topic +${prefix.replace(/[.-]/g, '\\$&')}\\.spans +2 partitions$`).test(l)));
  t.true(lines.some((l) => new RegExp(`^group +${group} +${spans} +lag 2$`).test(l)));
  t.true(lines.includes('store      pg migrated'));
  t.true(lines.includes(`discovery  2/shop: ${Object.keys(LISTINGS).map((l, i) => `${i + 1} ${l}`).join(', ')}`));
  t.true(lines.includes('flows      3: 2 success, 1 auth_failed'));
  t.true(lines.includes('breakers   access closed, dataflow open'));
  t.true(lines.includes('agents     2 with a heartbeat in the last 60 min:'));
  t.true(lines.includes('agent      10.0.0.8 web-2 (host 8)  last heartbeat 10 min ago'));

  const json: string[] = [];
  t.is(await runCommand('status', statusCommand(() => now), ['--json'], env, { out: (l) => json.push(l), err: (l) => json.push(l) }), 0);
  t.deepEqual(JSON.parse(json.join('\n')), JSON.parse(JSON.stringify(report)));

  // one part down: that section is one line, the rest as before, exit 1
  const partial: string[] = [];
  const port = await closedPort();
  t.is(await runCommand('status', statusCommand(() => now), [], { ...env, ORCHESTRATOR_URL: `http://127.0.0.1:${port}` }, { out: (l) => partial.push(l), err: (l) => partial.push(l) }), 1);
  t.deepEqual(partial.filter((l) => /unreachable/.test(l)), [`flows      unreachable at http://127.0.0.1:${port}: connect ECONNREFUSED 127.0.0.1:${port}`]);
  t.false(partial.some((l) => l.startsWith('breakers')));
  t.true(partial.includes('store      pg migrated'));
});

test('status takes --json and nothing else', async (t) => {
  const err: string[] = [];
  t.is(await runCommand('status', statusCommand(), ['--verbose'], {}, { out: () => undefined, err: (l) => err.push(l) }), 2);
  t.deepEqual(err, ['bkstream status: unknown option --verbose\nsee bkstream status --help']);
});
