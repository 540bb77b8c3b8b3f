/**
 * The front end's pure modules, in Node: the service map's figures per edge, the waterfall's bars and
 * folding, the host charts from derived series or basereport documents, the trace search's BaseQuery
 * filters, the agents from their heartbeats.
 */
import test from 'ava';
import { agentsFromHeartbeats } from '../../services/console/web/agents.ts';
import { duration, percent } from '../../services/console/web/format.ts';
import { emptyCharts, linesFromBasereport, linesFromMetrics, HOST_METRICS, toCharts } from '../../services/console/web/host-series.ts';
import { buildServiceMap, byService, byServiceCategory, byServicePeer, combine, layeredLayout, subtract, type TopoRelation } from '../../services/console/web/map-model.ts';
import { traceFilters } from '../../services/console/web/trace-query.ts';
import type { AgentEventItem } from '../../services/console/web/types.ts';
import { ticks, visibleBars, waterfall, type SpanRow } from '../../services/console/web/waterfall.ts';

const rel = (from: string, to: string, toKind: string, category: string, kind = 'sync'): TopoRelation => ({ from_topo_key: from, to_topo_key: to, kind, to_topo_key_kind: toKind, to_topo_key_category: category });
const row = (svc: string, count: number, errorRate: number, extra: Record<string, unknown> = {}) => ({ 'resource.service.name': svc, count, error_rate: errorRate, p99: 1000, ...extra });

test('service map: each edge takes the figures that describe it, and says when they are shared', (t) => {
  const nodes = [
    { topo_key: 'gateway', extra_data: { kind: 'service', category: 'http' } },
    { topo_key: 'orders', extra_data: { kind: 'service', category: 'http' } },
    { topo_key: 'users', extra_data: { kind: 'service', category: 'http' } },
    { topo_key: 'orders-mysql', extra_data: { kind: 'component', category: 'db' } },
    { topo_key: 'orders-redis', extra_data: { kind: 'component', category: 'db' } },
  ];
  const relations = [
    rel('gateway', 'orders', 'service', 'http'),
    rel('gateway', 'users', 'service', 'http'),
    rel('orders', 'users', 'service', 'http'),
    rel('orders', 'orders-mysql', 'component', 'db'),
    rel('orders', 'orders-redis', 'component', 'db'),
    rel('gateway', 'http:pay', 'remote_service', 'http'),
    rel('gateway', 'orders', 'service', 'rpc'),
  ];
  const server = byService([row('orders', 100, 0.1), row('users', 300, 0)]);
  const client = byServiceCategory([row('gateway', 250, 0.02, { category: 'http' }), row('orders', 50, 0, { category: 'http' }), row('orders', 80, 0.25, { category: 'db' })]);
  const peers = byServicePeer([row('gateway', 50, 0.1, { 'attributes.peer.service': 'pay' })]);
  const map = buildServiceMap(nodes, relations, server, client, peers);
  const edge = (id: string) => map.edges.find((e) => e.id === id);
  t.is(map.edges.length, 6, 'one edge per (from, to)');
  t.like(edge('gateway->orders'), { red: { count: 100, errorRate: 0.1 }, approx: false }, 'a single caller: the callee\'s server spans');
  t.like(edge('gateway->http:pay'), { red: { count: 50, errorRate: 0.1 }, approx: false }, 'a remote service: client spans naming it as peer.service');
  const users = edge('gateway->users')?.red;
  t.is(users?.count, 200, 'several callers: the caller\'s http/rpc client spans less its remote calls');
  t.is(Number(users?.errorRate.toFixed(4)), Number(((250 * 0.02 - 50 * 0.1) / 200).toFixed(4)));
  t.like(edge('orders->orders-mysql'), { red: { count: 80, errorRate: 0.25 }, approx: true }, 'two db components of one caller share its db spans');
  t.true(edge('gateway->users')?.approx, 'gateway calls two services over http');
  t.like(edge('orders->users'), { red: { count: 50 }, approx: false });
  t.is(map.nodes.find((n) => n.id === 'http:pay')?.kind, 'remote_service', 'a node only a relation names is added');
  t.like(map.nodes.find((n) => n.id === 'orders-mysql')?.red, { count: 80 }, 'a component\'s figures are its inbound edges\'');
  t.like(map.nodes.find((n) => n.id === 'orders')?.red, { count: 100, errorRate: 0.1 });
  const empty = buildServiceMap(nodes, relations, new Map(), new Map());
  t.true(empty.edges.every((e) => e.red === undefined && !e.approx), 'no figures: topology only');
});

test('figures: combine weighs error rates by requests; subtract takes requests and errors away', (t) => {
  t.deepEqual(combine([{ count: 10, errorRate: 0.5, p99: 5 }, undefined, { count: 30, errorRate: 0, p99: 9 }]), { count: 40, errorRate: 0.125, p99: 9 });
  t.is(combine([undefined, { count: 0, errorRate: 0 }]), undefined);
  t.deepEqual(subtract({ count: 10, errorRate: 0.5 }, { count: 4, errorRate: 0.5 }), { count: 6, errorRate: 0.5 });
  t.is(subtract({ count: 4, errorRate: 0 }, { count: 4, errorRate: 0 }), undefined);
  t.is(percent(0.125), '13 %');
  t.is(percent(0.025), '2.5 %');
  t.is(duration(1_500), '1.50 ms');
  t.is(duration(2_500_000), '2.50 s');
});

function sp(id: string, parent: string, depth: number, start: number, elapsed: number): SpanRow {
  return { trace_id: 't', span_id: id, parent_span_id: parent, span_name: id, kind: 2, start_time: start, end_time: start + elapsed, elapsed_time: elapsed, status: { code: 0, message: '' }, resource: { 'service.name': 'svc' }, depth };
}

test('waterfall: bars on the trace\'s time axis; folding hides a subtree; round ticks', (t) => {
  const spans = [sp('a', '', 0, 1_000, 100), sp('b', 'a', 1, 1_010, 50), sp('c', 'b', 2, 1_020, 10), sp('d', 'a', 1, 1_070, 0)];
  const w = waterfall(spans);
  t.is(w.start, 1_000);
  t.is(w.total, 100);
  t.deepEqual(w.bars.map((b) => [b.left, b.width, b.hasChildren]), [[0, 100, true], [10, 50, true], [20, 10, false], [70, 0.2, false]]);
  t.deepEqual(visibleBars(w.bars, new Set(['b'])).map((b) => b.span.span_id), ['a', 'b', 'd']);
  t.deepEqual(visibleBars(w.bars, new Set(['a'])).map((b) => b.span.span_id), ['a']);
  t.deepEqual(ticks(100), [0, 20, 40, 60, 80, 100]);
  t.deepEqual(ticks(35_000, 4), [0, 10_000, 20_000, 30_000]);
  t.deepEqual(waterfall([]).bars, []);
});

test('host charts: derived series where storage has them, the basereport documents for the rest', (t) => {
  const doc = (ts: number, cpu: number) => ({ timestamp: ts, body: { data: { cpu: { total_usage: cpu }, mem: { meminfo: { usedPercent: 40 } }, disk: { usage: [{ path: '/', usedPercent: 50 }] }, net: { dev: [{ name: 'lo', speedRecv: 1, speedSent: 1 }, { name: 'eth0', speedRecv: 100, speedSent: 50 }] }, load: { load_avg: { load1: 1, load5: 2, load15: 3 } } } } });
  const docs = linesFromBasereport([doc(120_000, 30), doc(60_000, 20)]);
  t.deepEqual(docs.find((l) => l.chart === 'cpu')?.points, [[60_000, 20], [120_000, 30]], 'sorted by time');
  t.deepEqual(docs.filter((l) => l.chart === 'net').map((l) => l.label), ['eth0 in', 'eth0 out'], 'loopback left out');
  const cpuQuery = HOST_METRICS.find((q) => q.name === 'system.cpu_summary.usage');
  if (!cpuQuery) throw new Error('no cpu query');
  const derived = linesFromMetrics([{ query: cpuQuery, series: [{ labels: { bk_target_ip: '10.0.0.1' }, points: [[60_000, 21], [180_000, 22]] }] }]);
  t.deepEqual(emptyCharts(derived), ['mem', 'disk', 'net', 'load']);
  const charts = toCharts(derived, docs);
  t.deepEqual(charts.map((c) => [c.key, c.source]), [['cpu', 'series'], ['mem', 'documents'], ['disk', 'documents'], ['net', 'documents'], ['load', 'documents']]);
  const cpu = charts[0];
  t.deepEqual(cpu?.xs, [60, 180]);
  t.deepEqual(cpu?.series, [{ label: 'cpu', values: [21, 22] }]);
  t.deepEqual(toCharts([], []).map((c) => c.source), ['none', 'none', 'none', 'none', 'none']);
});

test('trace search: the form as BaseQuery filters', (t) => {
  t.deepEqual(traceFilters({}), []);
  t.deepEqual(traceFilters({ service: 'gateway', endpoint: 'GET /', minDurationMs: 1.5, status: 'error', attribute: 'http.method = GET' }), [
    { key: 'resource.service.name', operator: 'equal', value: ['gateway'] },
    { key: 'span_name', operator: 'equal', value: ['GET /'] },
    { key: 'trace_duration', operator: 'gte', value: [1_500] },
    { key: 'error', operator: 'equal', value: [true] },
    { key: 'attributes.http.method', operator: 'equal', value: ['GET'] },
  ]);
  t.deepEqual(traceFilters({ status: 'ok', attribute: 'resource.k8s.pod.name' }), [
    { key: 'error', operator: 'equal', value: [false] },
    { key: 'resource.k8s.pod.name', operator: 'exists', value: [] },
  ]);
});

test('agents: the newest heartbeat of each host', (t) => {
  const hb = (ip: string, ts: number, tasks: number): AgentEventItem => ({ event_id: ts, timestamp: ts, event_type: 'heartbeat', data_id: 1, bk_biz_id: 2, task_id: 0, status: 0, ip, bk_cloud_id: 0, bk_host_id: 7, hostname: `h-${ip}`, dimensions: {}, metrics: {}, body: { dimensions: { version: '3.6.0' }, metrics: { tasks, uptime: 60, published: 5, errors: 0, error_tasks: 1 } } });
  const agents = agentsFromHeartbeats([hb('10.0.0.2', 100, 3), hb('10.0.0.1', 200, 4), hb('10.0.0.2', 300, 5)]);
  t.deepEqual(agents.map((a) => [a.ip, a.lastSeen, a.tasks, a.version, a.errorTasks]), [['10.0.0.1', 200, 4, '3.6.0', 1], ['10.0.0.2', 300, 5, '3.6.0', 1]]);
});

test('service map layout: callers left of callees, cycles after the rest, no two nodes on one spot', (t) => {
  const node = (id: string) => ({ id, label: id, kind: 'service', category: 'http', red: undefined });
  const edge = (source: string, target: string) => ({ id: `${source}->${target}`, source, target, kind: 'sync', red: undefined, approx: false });
  const map = { nodes: ['gw', 'a', 'b', 'db', 'x', 'y'].map(node), edges: [edge('gw', 'a'), edge('gw', 'b'), edge('a', 'db'), edge('b', 'db'), edge('x', 'y'), edge('y', 'x')] };
  const pos = layeredLayout(map, 100, 10);
  t.deepEqual(['gw', 'a', 'b', 'db'].map((id) => pos.get(id)?.x), [0, 100, 100, 200]);
  t.deepEqual([pos.get('x')?.x, pos.get('y')?.x], [0, 100], 'a cycle no root reaches is broken at one node');
  t.is(new Set([...pos.values()].map((p) => `${p.x},${p.y}`)).size, 6);
  const big = { nodes: Array.from({ length: 400 }, (_, i) => node(`n${i}`)), edges: Array.from({ length: 399 }, (_, i) => edge(`n${i % 200}`, `n${i + 1}`)) };
  const started = performance.now();
  t.is(layeredLayout(big).size, 400);
  t.true(performance.now() - started < 200, 'linear: 400 nodes at once');
  const ring = { nodes: Array.from({ length: 100 }, (_, i) => node(`r${i}`)), edges: Array.from({ length: 100 }, (_, i) => edge(`r${i}`, `r${(i + 1) % 100}`)) };
  const xs = new Set([...layeredLayout(ring, 1, 1).values()].map((p) => p.x));
  t.is(xs.size, 20, 'a 100-deep chain folds into 2·√100 layers');
});
