/** The streaming core's pure parts: node merge, partition window, dedupe, config, cmdb events. */
import test from 'ava';
import { ConfigError, ValidationError } from '../../services/common/errors.ts';
import { loadConfig } from '../../services/common/config.ts';
import { hostsFromEvent } from '../../services/discovery/cmdb.ts';
import { discoverySpec, validateDiscovery } from '../../services/discovery/config.ts';
import { DedupeSink, NodeKinds, SeenKeys } from '../../services/discovery/dedupe.ts';
import { Hasher } from '../../services/discovery/hash.ts';
import { BoundedIdMap, IdTable } from '../../services/discovery/id-table.ts';
import { rootCandidate, type RootCandidate } from '../../services/discovery/discoverers/root-endpoint.ts';
import { mergeIntoStored, mergeNode } from '../../services/discovery/node-merge.ts';
import type { EndpointRow, NodeRow } from '../../services/discovery/records.ts';
import { PartitionWindow, type ChildFacts, type DropReason, type Hold, type ParentFacts } from '../../services/discovery/window.ts';
import { sampleAgentEvent } from '../helpers/records.ts';
import { span, T0 } from './helpers.ts';

function permutations<T>(xs: T[]): T[][] {
  if (xs.length <= 1) return [xs];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
}

const contributions: NodeRow[] = [
  { topo_key: 's', extra: { category: 'other', kind: 'service', predicate_value: null, service_language: 'go' } },
  { topo_key: 's', extra: { category: 'http', kind: 'service', predicate_value: 'POST', service_language: '' }, system: [{ name: 'trpc', extra_data: { 'attributes.trpc.namespace': 'B' } }] },
  { topo_key: 's', extra: { category: 'http', kind: 'service', predicate_value: 'GET', service_language: 'go' }, platform: { name: 'node', extra_data: { 'resource.net.host.ip': '10.0.0.1' } } },
  { topo_key: 's', platform: { name: 'k8s', extra_data: { 'resource.k8s.pod.name': 'p-1' } }, system: [{ name: 'trpc', extra_data: { 'attributes.trpc.namespace': 'A' } }], sdk: [{ name: 'opentelemetry', extra_data: {} }] },
];

test('node merge is commutative and associative: every arrival order gives the same node', (t) => {
  const results = permutations(contributions).map((order) => JSON.stringify(order.reduce((a, b) => mergeNode(a, b))));
  t.is(new Set(results).size, 1);
  const merged = contributions.reduce((a, b) => mergeNode(a, b));
  t.deepEqual(merged.extra, { category: 'http', kind: 'service', predicate_value: 'GET', service_language: 'go' }, 'http beats other; the smaller predicate value; the non-empty language');
  t.is(merged.platform?.name, 'k8s', 'k8s before node');
  t.deepEqual(merged.system, [{ name: 'trpc', extra_data: { 'attributes.trpc.namespace': 'A' } }]);
});

test('merging into a stored node keeps other sources and never downgrades a category (reference test: non-other not downgraded)', (t) => {
  const stored = {
    extra_data: { category: 'rpc', kind: 'service', predicate_value: 'grpc', service_language: 'java', llm: { product: 'x' } },
    system: [],
    platform: { name: 'k8s', extra_data: {}, workloads: [{ name: 'demo' }] } as never,
    sdk: [],
    source: ['metric'],
  };
  const merged = mergeIntoStored(stored, { topo_key: 's', extra: { category: 'other', kind: 'service', predicate_value: null, service_language: 'java' }, platform: { name: 'k8s', extra_data: { 'resource.k8s.pod.name': 'p' } } });
  t.deepEqual(merged.extra_data, stored.extra_data);
  t.deepEqual(merged.source, ['metric', 'trace']);
  t.deepEqual(merged.platform, { name: 'k8s', extra_data: { 'resource.k8s.pod.name': 'p' }, workloads: [{ name: 'demo' }] });
});

class CountingHold implements Hold {
  holds = 0;
  releases = 0;
  hold(): void {
    this.holds++;
  }
  release(): void {
    this.releases++;
  }
}

const hasher = new Hasher();

/** An id as the window takes it: the hash lanes of its bytes (as SpanView.hashId hashes them). */
function id(s: string): [number, number] {
  const buf = Buffer.from(s, 'latin1');
  hasher.begin(0);
  hasher.bytes(buf, 0, buf.length);
  return [hasher.a, hasher.b];
}

test('id table: a table that grows and shrinks between sizes (reusing the arrays of its last rebuild) keeps every live entry', (t) => {
  const table = new IdTable<number>();
  const capacities = new Set<number>();
  let stamp = 1;
  let lost = 0;
  for (let round = 0; round < 40; round++) {
    // Each round's entries kill the previous round's; rebuilds shrink after small rounds and grow after big ones.
    const n = [3_000, 150, 150, 150, 2_000, 60][round % 6] as number;
    stamp++;
    for (let i = 0; i < n; i++) {
      table.set(...id(`r${round}-${i}`), i, stamp, stamp);
      capacities.add(table.capacity());
    }
    for (let i = 0; i < n; i++) if (table.get(...id(`r${round}-${i}`), stamp) !== i) lost++;
    t.is(table.get(...id(`r${round - 1}-0`), stamp), undefined, 'the previous round is dead');
  }
  t.is(lost, 0, 'every live entry is found');
  t.true(capacities.size >= 3, `the table grew and shrank: ${[...capacities].join(', ')}`);
});

test('bounded id map: at most its bound of entries, the least recently used dropped first (two generations); clear forgets all', (t) => {
  const map = new BoundedIdMap<number>(4);
  for (let i = 0; i < 2; i++) map.set(...id(`k${i}`), i);
  t.is(map.get(...id('k0')), 0);
  for (let i = 2; i < 4; i++) map.set(...id(`k${i}`), i); // k0, k1 become old when k2 arrives
  t.is(map.get(...id('k0')), 0, 'an old entry that is used moves to the young generation');
  map.set(...id('k4'), 4);
  t.is(map.get(...id('k1')), undefined, 'the unused old entry is gone once the young generation filled');
  t.is(map.get(...id('k0')), 0);
  map.set(...id('k0'), 10);
  t.is(map.get(...id('k0')), 10, 'set replaces');
  let live = 0;
  for (let i = 0; i < 5; i++) if (map.get(...id(`k${i}`)) !== undefined) live++;
  t.true(live <= 4);
  for (let i = 0; i < 10_000; i++) map.set(...id(`m${i}`), i);
  t.is(map.get(...id('m9999')), 9999);
  t.is(map.get(...id('m0')), undefined);
  map.clear();
  t.is(map.get(...id('m9999')), undefined);
  map.set(...id('m9999'), 1);
  t.is(map.get(...id('m9999')), 1);
});

test('id table: entries live while their stamp is live, are reused when dead, and survive rebuilds', (t) => {
  const table = new IdTable<number>();
  const n = 5_000;
  for (let i = 0; i < n; i++) table.set(...id(`s${i}`), i, i < n / 2 ? 1 : 2, 1);
  t.true(table.capacity() >= 2 * n, 'grown to keep half the slots free');
  t.is(table.get(...id('s10'), 1), 10);
  t.is(table.get(...id(`s${n - 1}`), 1), n - 1);
  t.is(table.get(...id('nope'), 1), undefined);
  // Stamp 1 is dropped: the first half is gone, the second half stays.
  t.is(table.get(...id('s10'), 2), undefined);
  t.is(table.get(...id(`s${n - 1}`), 2), n - 1);
  // An id set again comes back with its new value; a removed one is gone.
  table.set(...id('s10'), -10, 3, 2);
  t.is(table.get(...id('s10'), 2), -10);
  const slot = table.find(...id(`s${n - 2}`), 2);
  table.remove(slot);
  t.is(table.get(...id(`s${n - 2}`), 2), undefined);
  // Many more entries while stamp 2 is the oldest live one: dead entries make room, live ones stay.
  for (let i = 0; i < 4 * n; i++) table.set(...id(`u${i}`), i, 3, 2);
  t.is(table.get(...id(`s${n - 1}`), 2), n - 1);
  t.is(table.get(...id('s10'), 2), -10);
  t.is(table.get(...id('u0'), 2), 0);
  t.is(table.get(...id('s11'), 2), undefined);
  // drain visits exactly the entries of one stamp and removes them.
  const drained: number[] = [];
  table.drain(2, (v) => drained.push(v));
  t.is(drained.length, n / 2 - 1);
  t.is(table.get(...id(`s${n - 1}`), 2), undefined);
  t.is(table.get(...id('u5'), 2), 5);
});

function windowWith(ttlMs = 100, maxItems = 1_000) {
  const pairs: [ParentFacts, ChildFacts, number][] = [];
  const roots: RootCandidate[] = [];
  const dropped: Partial<Record<DropReason, number>> = {};
  const w = new PartitionWindow({ ttlMs, maxItems }, {
    pair: (p, c, time) => pairs.push([p, c, time]),
    root: (r) => roots.push(r),
    dropped: (reason, n) => {
      dropped[reason] = (dropped[reason] ?? 0) + n;
    },
  });
  return { w, pairs, roots, dropped };
}

const parentFacts: ParentFacts = { serial: 1, bk_biz_id: 2, app_name: 'shop', relParent: { from: 'a', kind: 'sync' }, remoteParent: undefined };
const childFacts: ChildFacts = { serial: 2, bk_biz_id: 2, app_name: 'shop', relChild: { service: 'b', key: 'b', topoKind: 'service', category: 'http' }, remoteChild: undefined };

test('window: a parent and a child meet whichever comes first; children that never meet theirs are counted after the TTL', (t) => {
  const { w, pairs, dropped } = windowWith();
  const hold = new CountingHold();
  w.addParent(...id('p1'), parentFacts, 10, hold, 0);
  w.addChild(...id('p1'), childFacts, 20, hold, 1);
  w.addChild(...id('p2'), childFacts, 30, hold, 2);
  w.addParent(...id('p2'), parentFacts, 25, hold, 3);
  w.addChild(...id('p3'), childFacts, 40, hold, 4);
  t.deepEqual(pairs.map(([, , time]) => time), [20, 30]);
  t.is(hold.holds, 1, 'one hold per batch and bucket');
  w.expire(1_000);
  t.deepEqual(dropped, { child_unpaired: 1 });
  t.is(hold.releases, 1, 'the hold is released when its bucket is dropped');
});

test('window: the root candidate of a trace is the earliest server span, emitted when the trace is quiet; eviction emits and counts', (t) => {
  const { w, roots, dropped } = windowWith(100, 2);
  const hold = new CountingHold();
  const row = { endpoint_name: 'e', service_name: 's', category_id: 'http' };
  const late = span({ trace_id: 't1', start_time: T0 + 5, span_name: 'late' });
  const early = span({ trace_id: 't1', start_time: T0, span_name: 'early' });
  w.addRootCandidate(...id('t1'), late, { ...row, endpoint_name: 'late' }, 1, hold, 0);
  w.addRootCandidate(...id('t1'), early, { ...row, endpoint_name: 'early' }, 2, hold, 10);
  t.is(roots.length, 0, 'nothing before the trace is quiet');
  w.expire(1_000);
  t.deepEqual(roots.map((r) => r.row.endpoint_name), ['early']);
  // Over the bound, the oldest bucket is evicted early.
  for (let i = 0; i < 3; i++) w.addRootCandidate(...id(`x${i}`), span({ trace_id: `x${i}` }), row, 3, hold, 2_000 + i * 60);
  w.expire(2_130);
  t.deepEqual(dropped, { trace_evicted: 1 });
  t.is(roots.length, 2, 'an evicted trace still emits its candidate');
  t.is(rootCandidate(early, row).start, T0);
});

test('window: clear forgets entries without settling them (the partition is read again)', (t) => {
  const { w, pairs, roots } = windowWith();
  const hold = new CountingHold();
  w.addChild(...id('p'), childFacts, 1, hold, 0);
  w.addRootCandidate(...id('t'), span({ trace_id: 't' }), { endpoint_name: 'e', service_name: 's', category_id: 'c' }, 1, hold, 0);
  w.clear();
  w.addParent(...id('p'), parentFacts, 2, hold, 1);
  w.expire(10_000);
  t.is(pairs.length, 0);
  t.is(roots.length, 0);
  t.is(w.size(), 0);
});

const endpoint: EndpointRow = { endpoint_name: 'GET /', service_name: 's', category_id: 'http', category_kind_key: 'http.method', category_kind_value: 'GET', span_kind: 2 };

test('dedupe keys: bounded (least recently used dropped first, two generations), forgotten after the TTL from their last write', (t) => {
  const keys = new SeenKeys(4, 10_000);
  const key = (s: string): [number, number] => {
    const [a, b] = id(s);
    return [a >> 1, b >> 1];
  };
  keys.set(...key('k0'), 100, 1);
  keys.set(...key('k1'), 101, 1);
  t.is(keys.get(...key('k0'), 2), 100);
  keys.set(...key('k2'), 102, 2); // k0, k1 become old
  keys.set(...key('k3'), 103, 2);
  t.is(keys.get(...key('k0'), 3), 100, 'a used old key moves to the young generation');
  keys.set(...key('k4'), 104, 3); // k1 went with the old generation when k0 moved
  t.is(keys.get(...key('k1'), 3), undefined);
  t.true(keys.size <= 4);
  t.is(keys.get(...key('k4'), 13), 104, 'within the TTL');
  t.is(keys.get(...key('k4'), 14), undefined, 'past the TTL (10 s after the last write)');
  keys.set(...key('k4'), 105, 14);
  t.is(keys.get(...key('k4'), 20), 105, 'a write starts the TTL again');
  const many = new SeenKeys(1_000, 60_000);
  for (let i = 0; i < 10_000; i++) many.set(...key(`m${i}`), i, 1);
  t.true(many.size <= 1_000);
  t.is(many.get(...key('m9999'), 1), 9999);
  t.is(many.get(...key('m0'), 1), undefined);
});

test('dedupe: a known key is queued again only when its event time moved past the touch interval; rows coalesce', (t) => {
  const sink = new DedupeSink({ maxKeys: 100, ttlMs: 60_000, touchIntervalMs: 60_000, nodeKinds: new NodeKinds(10) });
  sink.emit('endpoint', 2, 'shop', endpoint, T0);
  sink.emit('endpoint', 2, 'shop', endpoint, T0 + 30_000_000);
  sink.emit('endpoint', 2, 'shop', endpoint, T0 - 3_600_000_000);
  t.is(sink.pendingRows(), 1);
  sink.emit('endpoint', 2, 'shop', endpoint, T0 + 61_000_000);
  const snap = sink.take();
  t.is(snap.endpoint.length, 1);
  t.is(snap.endpoint[0]?.first, T0);
  t.is(snap.endpoint[0]?.last, T0 + 61_000_000);
  sink.emit('endpoint', 2, 'other-app', endpoint, T0);
  t.is(sink.pendingRows(), 1, 'the app is part of the key');
  sink.restore(snap);
  t.is(sink.pendingRows(), 2, 'a failed write puts its rows back');
  const counts = sink.counts();
  t.is(counts.hits.endpoint, 2);
  t.is(counts.misses.endpoint, 3);
});

test('config: defaults, and every problem reported with its key', (t) => {
  const c = loadConfig(discoverySpec, { env: {}, validate: validateDiscovery });
  t.is(c.httpPort, 8081);
  t.is(c.cacheMaxKeys, 1_000_000);
  t.is(c.touchIntervalMs, 60_000);
  t.is(c.defaultRetentionDays, 7);
  t.is(c.topoNodeRetentionDays, 180);
  t.is(c.maxRowsPerApp, 100_000);
  const err = t.throws(() => loadConfig(discoverySpec, { env: { DISCOVERY_HTTP_PORT: 'x', DISCOVERY_PAIRING_TTL_MS: '-1', DISCOVERY_CONSUME_REPLAY: 'maybe' } }), { instanceOf: ConfigError });
  t.deepEqual(err.problems.map((p) => p.key).sort(), ['DISCOVERY_CONSUME_REPLAY', 'DISCOVERY_HTTP_PORT', 'DISCOVERY_PAIRING_TTL_MS']);
  const same = t.throws(() => loadConfig(discoverySpec, { env: { DISCOVERY_REPLAY_GROUP_ID: 'bkstream-discovery' }, validate: validateDiscovery }), { instanceOf: ConfigError });
  t.is(same.problems[0]?.key, 'DISCOVERY_REPLAY_GROUP_ID');
});

test('config: a dedupe cache that would not fit in the V8 heap stops start-up', (t) => {
  const c = loadConfig(discoverySpec, { env: {} });
  const gb = 2 ** 30;
  t.deepEqual(validateDiscovery(c, 384 * 2 ** 20), [], '1 M keys fit a 384 MB heap');
  const big = loadConfig(discoverySpec, { env: { DISCOVERY_CACHE_MAX_KEYS: '10000000' } });
  const problems = validateDiscovery(big, gb);
  t.is(problems[0]?.key, 'DISCOVERY_CACHE_MAX_KEYS');
  t.regex(problems[0]?.message ?? '', /about 1154 MB of V8 heap .* limit of 1024 MB: lower it, or raise node's --max-old-space-size/);
  t.is(validateDiscovery(c, 256 * 2 ** 20).length, 1, 'a 256 MB heap is too small for 1 M keys');
  t.deepEqual(validateDiscovery(big, 4 * gb), []);
});

test('cmdb: a static event gives one host per usable address (prefix lengths cut, loopback dropped); other events none; bad bodies throw', (t) => {
  const event = { ...sampleAgentEvent(), body: JSON.stringify({ data: { net: { interface: [{ name: 'eth0', addrs: ['10.0.1.5/24', 'fe80::1/64', '2001:db8::5/64'] }, { name: 'lo', addrs: ['127.0.0.1/8', '::1/128'] }] } } }) };
  const hosts = hostsFromEvent(event);
  t.deepEqual(hosts.map((h) => h.ip), ['10.0.1.5', '2001:db8::5']);
  t.like(hosts[0], { bk_biz_id: 2, bk_cloud_id: 0, bk_host_id: 42, hostname: 'order-7d9f' });
  t.deepEqual(hostsFromEvent({ ...event, event_type: 'heartbeat' }), []);
  t.throws(() => hostsFromEvent({ ...event, body: '{not json' }), { instanceOf: ValidationError });
});
