/**
 * The ping task with real ICMP echo: loopback over IPv4 and IPv6, names, and loss against a host of the
 * test's own — a network namespace behind a veth pair whose far end the test takes down (a blackhole route
 * for the pair's subnet keeps any echo from leaving the machine once the link is down).
 */
import test, { type ExecutionContext } from 'ava';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { probeResources } from '../../../services/agent/probe/budget.ts';
import { parsePingOutput, pingArgs } from '../../../services/agent/probe/pinger.ts';
import { setResolver } from '../../../services/agent/probe/targets.ts';
import { CUSTOM_REPORT_BATCH, pingMetrics, pingType } from '../../../services/agent/tasks/ping.ts';
import { bodyOf, configure, mustConfigure, runOnce, testHost } from './kit.ts';

const sh = promisify(execFile);
const meta = { dataid: 1100003, max_timeout: '100s', min_period: '1s' };
const run = async (t: ExecutionContext, entry: Record<string, unknown>) => runOnce(pingType, mustConfigure(t, pingType, entry, meta));

/** A namespace with a veth pair: this side .1, the namespace .2 of a random 169.254.N.0/30. */
async function namespaceHost(t: ExecutionContext): Promise<{ ip: string; down: () => Promise<void> }> {
  const id = `${process.pid % 10_000}${Math.floor(Math.random() * 1_000)}`;
  const ns = `bkpr${id}`;
  const here = `bkp${id}a`;
  const there = `bkp${id}b`;
  const net = 100 + Math.floor(Math.random() * 100);
  const subnet = `169.254.${net}.0/30`;
  const ip = `169.254.${net}.2`;
  t.teardown(async () => {
    await sh('ip', ['link', 'del', here]).catch(() => undefined);
    await sh('ip', ['netns', 'del', ns]).catch(() => undefined);
    await sh('ip', ['route', 'del', 'blackhole', subnet, 'metric', '4096']).catch(() => undefined);
  });
  await sh('ip', ['route', 'add', 'blackhole', subnet, 'metric', '4096']);
  await sh('ip', ['netns', 'add', ns]);
  await sh('ip', ['link', 'add', here, 'type', 'veth', 'peer', 'name', there]);
  await sh('ip', ['link', 'set', there, 'netns', ns]);
  await sh('ip', ['addr', 'add', `169.254.${net}.1/30`, 'dev', here]);
  await sh('ip', ['link', 'set', here, 'up']);
  await sh('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${ip}/30`, 'dev', there]);
  await sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', there, 'up']);
  return { ip, down: async () => void (await sh('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', there, 'down'])) };
}

test('127.0.0.1 and ::1: no loss, RTTs, the reference event shape (resolved_ip "" for ip targets, labels not overriding)', async (t) => {
  const r = await run(t, {
    task_id: 11,
    bk_biz_id: 2,
    timeout: '10s',
    labels: [{ group: 'g1' }],
    total_num: 3,
    max_rtt: '1s',
    targets: [
      { target: '127.0.0.1', target_type: 'ip', labels: { room: 'a', target: 'not-this', bk_host_id: 'not-this' } },
      { target: '::1', target_type: 'ip' },
    ],
  });
  t.is(r.events.length, 2);
  const [v4, v6] = r.events;
  for (const e of [v4!, v6!]) {
    t.is(e.eventType, 'ping');
    t.is(e.status, 0);
    t.true(e.notUptimeCheck);
    t.false(e.cmdbLevel);
    const b = bodyOf(e);
    t.deepEqual(Object.keys(b).sort(), ['bk_biz_id', 'dataid', 'dimensions', 'group_info', 'metrics', 'time']);
    t.like(b, { dataid: 1100003, bk_biz_id: 2 });
    t.deepEqual(b.group_info, [{ group: 'g1' }]);
    t.true(Number.isInteger(b.time));
    const m = b.metrics as Record<string, number>;
    t.deepEqual(Object.keys(m).sort(), ['available', 'avg_rtt', 'loss_percent', 'max_rtt', 'min_rtt', 'task_duration']);
    t.like(m, { available: 1, loss_percent: 0 });
    t.true(m.min_rtt! > 0 && m.min_rtt! <= m.avg_rtt! && m.avg_rtt! <= m.max_rtt! && m.max_rtt! < 1000);
    t.is(m.task_duration, m.avg_rtt);
  }
  t.deepEqual(bodyOf(v4).dimensions, { target: '127.0.0.1', target_type: 'ip', error_code: '0', bk_biz_id: '2', resolved_ip: '', room: 'a', bk_host_id: String(testHost.bkHostId), task_id: '11' });
  t.like(bodyOf(v6).dimensions, { target: '::1', resolved_ip: '' });
});

test.serial('domains: localhost through the system resolver, every address with dns_check_mode all, none for a name that does not resolve', async (t) => {
  const local = await run(t, { timeout: '10s', targets: [{ target: 'localhost', target_type: 'domain' }] });
  t.is(local.events.length, 1);
  t.like(bodyOf(local.events[0]).dimensions, { target: 'localhost', target_type: 'domain', resolved_ip: '127.0.0.1' });
  const prev = setResolver(async (name) => {
    if (name === 'dual.probe.test') return ['127.0.0.1', '::1'];
    throw new Error(`getaddrinfo ENOTFOUND ${name}`);
  });
  t.teardown(() => setResolver(prev));
  const all = await run(t, { timeout: '10s', dns_check_mode: 'all', targets: [{ target: 'dual.probe.test', target_type: 'domain' }, { target: 'none.probe.test', target_type: 'domain' }] });
  t.deepEqual(all.events.map((e) => (bodyOf(e).dimensions as Record<string, string>).resolved_ip), ['127.0.0.1', '::1']);
  const v6 = await run(t, { timeout: '10s', dns_check_mode: 'all', target_ip_type: 6, targets: [{ target: 'dual.probe.test', target_type: 'domain' }] });
  t.deepEqual(v6.events.map((e) => (bodyOf(e).dimensions as Record<string, string>).resolved_ip), ['::1']);
});

test('loss against a host of our own: a namespace answers, then its link goes down and every echo is lost', async (t) => {
  const host = await namespaceHost(t);
  const up = await run(t, { timeout: '10s', total_num: 2, max_rtt: '500ms', targets: [{ target: host.ip, target_type: 'ip' }] });
  t.like(bodyOf(up.events[0]).metrics, { available: 1, loss_percent: 0 });
  await host.down();
  const down = await run(t, { timeout: '10s', total_num: 3, max_rtt: '300ms', targets: [{ target: host.ip, target_type: 'ip' }] });
  t.like(bodyOf(down.events[0]).metrics, { available: 0, loss_percent: 1, min_rtt: 0, max_rtt: 0, avg_rtt: 0, task_duration: 0 });
  t.true(down.ms >= 800 && down.ms < 3_000, `three echoes of 300 ms: ${down.ms} ms`);
  const cut = await run(t, { timeout: '1s', total_num: 10, max_rtt: '1s', targets: [{ target: host.ip, target_type: 'ip' }, { target: '127.0.0.1', target_type: 'ip' }] });
  t.true(cut.ms < 2_000, `the run's timeout interrupts the pings: ${cut.ms} ms`);
  t.like(bodyOf(cut.events[0]).metrics, { loss_percent: 1 });
  t.like(bodyOf(cut.events[1]).metrics, { loss_percent: 0 });
});

test('custom_report: batches of 512, one MetricBatch per target of a batch, host fields and label groups', async (t) => {
  const targets = Array.from({ length: 600 }, (_, i) => ({ target: '127.0.0.1', target_type: 'ip', labels: { n: String(i) } }));
  const r = await run(t, { task_id: 4, bk_biz_id: 3, timeout: '10s', custom_report: true, labels: [{ g: '1' }, { g: '2' }], targets });
  t.is(r.events.length, 0);
  t.deepEqual(r.metrics.map((m) => m.records.length), [CUSTOM_REPORT_BATCH * 2, (600 - CUSTOM_REPORT_BATCH) * 2]);
  const m = r.metrics[0]!;
  t.is(m.target, '127.0.0.1');
  t.is(m.eventType, 'ping');
  const rec = m.records[0]!;
  t.like(rec.dimensions, { target: '127.0.0.1', target_type: 'ip', error_code: '0', bk_biz_id: '3', resolved_ip: '', n: '0', bk_host_id: String(testHost.bkHostId), task_id: '4', node_id: testHost.nodeId, ip: testHost.ip, bk_cloud_id: '0', bk_agent_id: testHost.bkAgentId, g: '1' });
  t.like(m.records[1]!.dimensions, { n: '0', g: '2' });
  t.is(rec.metrics.loss_percent, 0);
  t.is(rec.timestamp % 1_000, 0);
});

test('a ping that cannot be started: the reference failure status event (not_uptimecheck), no target events', async (t) => {
  const probes = probeResources({ maxSockets: 8, maxPingProcesses: 2, pingPath: '/nonexistent/ping' });
  const r = await runOnce(pingType, mustConfigure(t, pingType, { timeout: '5s', targets: [{ target: '127.0.0.1', target_type: 'ip' }] }, meta), {}, probes);
  t.is(r.events.length, 1);
  t.like(r.events[0], { eventType: 'status', status: 1, notUptimeCheck: true, dataId: 1100003 });
});

test('ping output parsing: per sequence, duplicates and replies slower than max_rtt are lost; arguments', (t) => {
  const out = [
    'PING 10.1.1.1 (10.1.1.1) 48(76) bytes of data.',
    '56 bytes from 10.1.1.1: icmp_seq=1 ttl=64 time=0.352 ms',
    '56 bytes from 10.1.1.1: icmp_seq=1 ttl=64 time=0.360 ms (DUP!)',
    '56 bytes from 10.1.1.1: icmp_seq=3 ttl=64 time=1200 ms',
    '56 bytes from 10.1.1.1: icmp_seq=4 ttl=64 time=12.5 ms',
    '56 bytes from 10.1.1.1: icmp_seq=9 ttl=64 time=1.0 ms',
    '',
    '--- 10.1.1.1 ping statistics ---',
  ].join('\n');
  t.deepEqual(parsePingOutput(out, 4, 1000), [0.352, undefined, undefined, 12.5]);
  t.deepEqual(pingMetrics([0.352, undefined, undefined, 12.5]), { available: 0.5, loss_percent: 0.5, max_rtt: 12.5, min_rtt: 0.352, avg_rtt: (0.352 + 12.5) / 2, task_duration: (0.352 + 12.5) / 2 });
  t.deepEqual(pingArgs({ ip: '::1', count: 2, maxRttMs: 1000, size: 56 }), ['-n', '-6', '-A', '-c', '2', '-i', '1.000', '-W', '1.000', '-s', '48', '-t', '64', '::1']);
  t.is(pingArgs({ ip: '127.0.0.1', count: 2, maxRttMs: 1000, size: 10 })[10], '16', 'payloads under 16 bytes carry no timestamp in iputils');
});

test('ping config: defaults, clamps and problems', (t) => {
  const c = mustConfigure(t, pingType, { targets: [{ target: '1.2.3.4', target_type: 'ip' }], ping_size: 4, total_num: 0 }, meta);
  t.like(c, { maxRttMs: 1_000, totalNum: 2, pingSize: 56, dnsCheckMode: 'single', ipType: 0, customReport: false });
  const keys = (entry: Record<string, unknown>) => configure(pingType, entry, meta).problems.map((p) => p.key);
  t.deepEqual(keys({ targets: [{ target: 'x', target_type: 'host' }] }), ['targets[0].target_type']);
  t.deepEqual(keys({ max_rtt: 'soon', targets: [] }), ['max_rtt']);
  t.deepEqual(keys({ send_interval: '-1s', targets: [] }), ['send_interval']);
  t.deepEqual(keys({ dns_check_mode: 'x', targets: [] }), ['dns_check_mode']);
});
