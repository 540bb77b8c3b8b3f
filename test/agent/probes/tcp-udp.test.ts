/** The tcp and udp uptime checks against local echo, silent and closed ports: codes, times, event shape. */
import test from 'ava';
import { setResolver } from '../../../services/agent/probe/targets.ts';
import { tcpType } from '../../../services/agent/tasks/tcp.ts';
import { udpType } from '../../../services/agent/tasks/udp.ts';
import { bodyOf, closedPort, configure, mustConfigure, runOnce, tcpServer, testHost, udpServer } from './kit.ts';

const meta = { dataid: 1009, max_timeout: '30s', min_period: '1s' };
const tcp = async (t: Parameters<typeof mustConfigure>[0], entry: Record<string, unknown>, limits = {}) => runOnce(tcpType, mustConfigure(t, tcpType, entry, meta), limits);
const udp = async (t: Parameters<typeof mustConfigure>[0], entry: Record<string, unknown>, m: Record<string, unknown> = {}) => runOnce(udpType, mustConfigure(t, udpType, entry, { ...meta, dataid: 1010, ...m }));

test('tcp connect only: success with the reference fields and types', async (t) => {
  const port = await tcpServer(t, 'silent');
  const r = await tcp(t, { task_id: 5, bk_biz_id: 2, target_host: '127.0.0.1', target_port: port, labels: [{ k: 'v' }] });
  t.is(r.events.length, 1);
  const e = r.events[0]!;
  t.is(e.eventType, 'tcp');
  t.is(e.dataId, 1009);
  const b = bodyOf(e);
  t.deepEqual(Object.keys(b).sort(), ['available', 'bk_biz_id', 'dataid', 'error_code', 'group_info', 'resolved_ip', 'status', 'target_host', 'target_port', 'task_duration', 'task_id', 'task_type', 'timestamp'].sort());
  t.like(b, { dataid: 1009, bk_biz_id: 2, task_id: 5, task_type: 'tcp', status: 0, error_code: 0, available: 1, target_host: '127.0.0.1', target_port: port, resolved_ip: '127.0.0.1' });
  t.deepEqual(b.group_info, [{ k: 'v' }]);
  t.true(Number.isInteger(b.task_duration) && Number.isInteger(b.timestamp));
});

test('tcp request/response: echo matches (raw and hex), mismatch 1202, silent 1101, refused 1000, closed-at-once reads an empty body', async (t) => {
  const echo = await tcpServer(t, 'echo');
  const silent = await tcpServer(t, 'silent');
  const closing = await tcpServer(t, 'close');
  const banner = await tcpServer(t, 'banner');
  const dead = await closedPort();
  const cases: [string, Record<string, unknown>, number][] = [
    ['echo eq', { target_port: echo, request: 'ping', response: 'ping', response_format: 'eq' }, 0],
    ['echo hex', { target_port: echo, request: '70696e67', request_format: 'hex', response: '70696e67', response_format: 'hex' }, 0],
    ['echo mismatch', { target_port: echo, request: 'ping', response: 'pong' }, 1202],
    ['silent', { target_port: silent, request: 'ping', response: 'x', timeout: '400ms' }, 1101],
    ['refused', { target_port: dead }, 1000],
    ['closed at once', { target_port: closing, response: 'x', response_format: 'nin' }, 0],
    ['banner without request', { target_port: banner, response: 'SSH-', response_format: 'startswith' }, 0],
  ];
  for (const [name, entry, code] of cases) {
    const r = await tcp(t, { target_host: '127.0.0.1', ...entry });
    t.is(r.events.length, 1, name);
    t.like(bodyOf(r.events[0]), { error_code: code, status: code === 0 ? 0 : 1, available: code === 0 ? 1 : 0 }, name);
  }
});

test.serial('tcp: available_duration overrun → 3; hosts list, DNS failure 1004 with an empty resolved_ip, both families of a name', async (t) => {
  const port = await tcpServer(t, 'echo', '::');
  const prev = setResolver(async (name) => {
    if (name === 'both.probe.test') return ['127.0.0.1', '::1'];
    throw new Error(`getaddrinfo ENOTFOUND ${name}`);
  });
  t.teardown(() => setResolver(prev));
  const r = await tcp(t, { target_host_list: ['both.probe.test', 'none.probe.test', '::1'], target_port: port, dns_check_mode: 'all' });
  const rows = r.events.map(bodyOf).map((b) => [b.target_host, b.resolved_ip, b.error_code]).map((row) => JSON.stringify(row)).sort();
  t.deepEqual(rows, [['::1', '::1', 0], ['both.probe.test', '127.0.0.1', 0], ['both.probe.test', '::1', 0], ['none.probe.test', '', 1004]].map((row) => JSON.stringify(row)).sort());
  const slow = await tcp(t, { target_host: '127.0.0.1', target_port: await tcpServer(t, 'slowbanner'), response: 'SSH', timeout: '2s', available_duration: '150ms' });
  t.like(bodyOf(slow.events[0]), { error_code: 3, status: 1, available: 0 }, 'answered and matched, but later than available_duration');
  t.true((bodyOf(slow.events[0]).task_duration as number) >= 350);
});

test('tcp custom_report and the per-IP concurrency limit (1 unit each)', async (t) => {
  const port = await tcpServer(t, 'silent');
  const r = await tcp(t, { task_id: 3, bk_biz_id: 4, custom_report: true, target_host: '127.0.0.1', target_port: port, labels: [{ a: '1' }] });
  t.is(r.metrics.length, 1);
  const m = r.metrics[0]!;
  t.is(m.target, `127.0.0.1:${port}`);
  t.deepEqual(m.records[0]!.dimensions, { bk_biz_id: '4', target_host: '127.0.0.1', target_port: String(port), task_id: '3', task_type: 'tcp', status: '0', resolved_ip: '127.0.0.1', error_code: '0', node_id: testHost.nodeId, ip: testHost.ip, bk_cloud_id: '0', bk_agent_id: testHost.bkAgentId, a: '1' });
  const blocked = await tcp(t, { target_host: '127.0.0.1', target_port: port, timeout: '500ms' }, { tcp: { perInstance: 10, perTask: 0 } });
  t.is(blocked.events.length, 0, 'errata 3: per_task 0 publishes nothing');
});

test('udp echo: success on the first try (times 0, max_times 0), default request X, response match and mismatch', async (t) => {
  const echo = await udpServer(t, 'echo');
  const r = await udp(t, { task_id: 8, target_host: '127.0.0.1', target_port: echo.port, response: 'X', response_format: 'eq' });
  const b = bodyOf(r.events[0]);
  t.deepEqual(Object.keys(b).sort(), ['available', 'bk_biz_id', 'dataid', 'error_code', 'group_info', 'max_times', 'resolved_ip', 'status', 'target_host', 'target_port', 'task_duration', 'task_id', 'task_type', 'times', 'timestamp'].sort());
  t.like(b, { dataid: 1010, task_type: 'udp', status: 0, error_code: 0, available: 1, times: 0, max_times: 0, resolved_ip: '127.0.0.1', target_port: echo.port });
  t.deepEqual(echo.received.map((m) => m.toString()), ['X']);
  const hex = await udp(t, { target_host: '127.0.0.1', target_port: echo.port, request_format: 'hex', response: '58', response_format: 'hex' });
  t.like(bodyOf(hex.events[0]), { error_code: 0 });
  const bad = await udp(t, { target_host: '127.0.0.1', target_port: echo.port, request: 'hello', response: 'bye' });
  t.like(bodyOf(bad.events[0]), { error_code: 1202, status: 1, times: 0 });
});

test('udp refused → 2501 and stop (errata 17); silent port: success without an expected response, 1101 after every try with one', async (t) => {
  const dead = await closedPort('udp4');
  const refused = await udp(t, { target_host: '127.0.0.1', target_port: dead, response: 'x', times: 3 });
  t.like(bodyOf(refused.events[0]), { error_code: 2501, status: 1, times: 0, available: 0 });
  const silent = await udpServer(t, 'silent');
  const quiet = await udp(t, { target_host: '127.0.0.1', target_port: silent.port, timeout: '2s', available_duration: '200ms' });
  t.like(bodyOf(quiet.events[0]), { error_code: 0, status: 0, times: 0, task_duration: 0 });
  const waiting = await udp(t, { target_host: '127.0.0.1', target_port: silent.port, timeout: '3s', available_duration: '200ms', times: 3, response: 'x' });
  t.like(bodyOf(waiting.events[0]), { error_code: 1101, status: 1, times: 3 }, 'times = the configured count when every attempt failed');
  t.is(silent.received.length, 4);
  const empty = await udp(t, { target_host: '127.0.0.1', target_port: silent.port, timeout: '3s', available_duration: '150ms', times: 2, wait_empty_response: true });
  t.like(bodyOf(empty.events[0]), { error_code: 1101, times: 2 });
});

test.serial('udp: times capped by the meta max_times; the deadline ends the attempts; 1004 for a name that does not resolve', async (t) => {
  const silent = await udpServer(t, 'silent');
  const capped = mustConfigure(t, udpType, { target_host: '127.0.0.1', target_port: silent.port, times: 8 }, { ...meta, max_times: 2 });
  t.is(capped.times, 2);
  t.is(mustConfigure(t, udpType, { target_host: 'x', target_port: 1 }, meta).times, 3);
  const cut = await udp(t, { target_host: '127.0.0.1', target_port: silent.port, timeout: '500ms', available_duration: '400ms', times: 5, response: 'x' });
  t.like(bodyOf(cut.events[0]), { error_code: 1101, times: 2 }, 'two attempts started before the 500 ms deadline');
  t.true(cut.ms < 1500);
  const prev = setResolver(async (name) => {
    throw new Error(`getaddrinfo ENOTFOUND ${name}`);
  });
  t.teardown(() => setResolver(prev));
  const dns = await udp(t, { target_host: 'none.probe.test', target_port: 53 });
  t.like(bodyOf(dns.events[0]), { error_code: 1004, resolved_ip: '', times: 0, max_times: 0, target_host: 'none.probe.test' });
});

test('udp over IPv6 loopback', async (t) => {
  const echo = await udpServer(t, 'echo', { host: '::1', reply: Buffer.from('pong') });
  const r = await udp(t, { target_host: '::1', target_port: echo.port, request: 'ping', response: 'pong', response_format: 'eq' });
  t.like(bodyOf(r.events[0]), { error_code: 0, resolved_ip: '::1' });
});

test('tcp/udp config problems', (t) => {
  const keys = (type: typeof tcpType | typeof udpType, entry: Record<string, unknown>, m: Record<string, unknown> = {}) => configure(type as typeof tcpType, entry, { ...meta, ...m }).problems.map((p) => p.key);
  t.deepEqual(keys(tcpType, { target_host: 'x' }), ['target_port']);
  t.deepEqual(keys(tcpType, { target_host: 'x', target_port: 70000 }), ['target_port']);
  t.deepEqual(keys(tcpType, { target_host: 'x', target_port: 1, request_format: 'hex', request: 'xyz' }), ['request']);
  t.deepEqual(keys(udpType, { target_host: 'x', target_port: 1, times: 0 }), ['times']);
  t.deepEqual(keys(udpType, { target_host: 'x', target_port: 1 }, { max_times: 0 }), ['max_times']);
  t.deepEqual(keys(tcpType, { target_host: 'x', target_port: 1, buffer_size: 0 }), ['buffer_size']);
});
