import test from 'ava';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { convertBindIp, convertPorts, convertProtocol, filesDiffer, hostIdProcesses, proccustomFile, procsyncTaskId } from '../../../services/agent/host/process/configfiles.ts';
import { PidMapper, PidStore } from '../../../services/agent/host/process/mapping.ts';
import { ProcPerf } from '../../../services/agent/host/process/perf.ts';
import { perfMetrics, probeListeners, ProcCustomPatterns, tcpTouch } from '../../../services/agent/host/process/proccustom.ts';
import { bindDetails, collectPortStats, matchNames, type ProcessConfig, ProcessMatcher } from '../../../services/agent/host/process/processbeat.ts';
import { completeName, ProcReader, stateName } from '../../../services/agent/host/process/procs.ts';
import { xxhash64 } from '../../../services/agent/host/process/xxhash64.ts';
import { listeningSockets } from '../../../services/agent/host/sockets.ts';
import { FIXTURES, fixtureHost } from './helpers.ts';

test('process metadata from /proc: name, state, user from /etc/passwd, argv, exe and cwd links, start time in ms', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const r = new ProcReader({ procRoot: h.paths.procRoot, etcRoot: h.paths.etcRoot });
  t.deepEqual(r.meta(200), {
    pid: 200,
    ppid: 1,
    name: 'redis-server',
    status: 'running',
    username: 'redis',
    cmd: '/usr/bin/redis-server 127.0.0.1:6379',
    cmdSlice: ['/usr/bin/redis-server', '127.0.0.1:6379'],
    exe: '/usr/bin/redis-server',
    cwd: '/var/lib/redis',
    created: 1_700_000_000_000 + 10_000,
  });
  t.like(r.meta(400), { name: 'kworker/0:1-events_power_efficient', status: 'idle', username: 'root', cmd: '', exe: '', cmdSlice: [] });
  t.like(r.meta(500), { status: 'zombie', username: 'www-data', ppid: 300 });
  t.throws(() => r.meta(999));
  t.deepEqual(
    [...'SRDITtZXW'].map(stateName),
    ['sleeping', 'running', 'idle', 'idle', 'stopped', 'stopped', 'zombie', 'unknown', 'unknown'],
  );
  t.is(completeName('kube-controller', ['/usr/local/bin/kube-controller-manager', '--v=2']), 'kube-controller-manager');
  t.is(completeName('kube-controller', ['/bin/other']), 'kube-controller');
  h.write('etc/passwd', 'root:x:0:0::/root:/bin/sh\n');
  t.is(new ProcReader({ procRoot: h.paths.procRoot, etcRoot: h.paths.etcRoot }).meta(200).username, '999', 'unknown uid: the uid itself');
});

test('per-process performance: statm pages, CPU ms and rate from the second sample, I/O rates, fd limits', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const perf = new ProcPerf({ procRoot: h.paths.procRoot, bootTimeS: () => 1_700_000_000, cpus: 2 });
  const first = perf.stat(200, 1_000_000);
  t.deepEqual(first.mem, { size: 20000 * 4096, resident: 5000 * 4096, share: 800 * 4096, percent: (5000 * 4096) / (16_000_000 * 1024) });
  t.is(first.cpu, undefined);
  t.is(first.io, undefined);
  t.deepEqual(first.fd, { open: 3, softLimit: 10032, hardLimit: 10032 });
  h.write('proc/200/stat', readFileSync(join(h.paths.procRoot, '200/stat'), 'utf8').replace(' 3000 1000 ', ' 3100 1200 '));
  h.write('proc/200/io', 'read_bytes: 1024\nwrite_bytes: 2097152\n');
  const second = perf.stat(200, 1_004_000);
  t.deepEqual(second.cpu, { startTime: (10 + 1_700_000_000) * 1000, user: 31_000, sys: 12_000, total: 43_000, percent: 0.75, normalPercent: 0.375 });
  t.deepEqual(second.io, { readBytes: 1024, writeBytes: 2_097_152, readSpeed: 256, writeSpeed: 262_144 });
  t.deepEqual(perf.fd(300), { open: 3, softLimit: 0, hardLimit: 0 }, '"unlimited" reads as 0');
  // a reused pid (counters lower): no rate again
  h.write('proc/200/stat', readFileSync(join(h.paths.procRoot, '200/stat'), 'utf8').replace(' 3100 1200 ', ' 10 10 '));
  t.is(perf.cpu(200, 1_005_000), undefined);
  perf.prune(new Set([1]));
  t.is(perf.cpu(200, 1_006_000), undefined, 'pruned pids start over');
  t.deepEqual(perfMetrics(second), {
    memory_size: 20000 * 4096,
    memory_rss_bytes: 5000 * 4096,
    memory_rss_pct: (5000 * 4096) / (16_000_000 * 1024),
    memory_share: 800 * 4096,
    cpu_start_time: 1_700_000_010_000,
    cpu_user: 31_000,
    cpu_system: 12_000,
    cpu_total_ticks: 43_000,
    cpu_total_pct: 0.75,
    fd_open: 3,
    fd_limit_soft: 10032,
    fd_limit_hard: 10032,
    io_read_bytes: 1024,
    io_write_bytes: 2_097_152,
    io_read_speed: 256,
    io_write_speed: 262_144,
  });
});

test('fake pids keep their slot per name+params group while the process lives; new ones take the first free slot', (t) => {
  const m = new PidMapper();
  const p = (pid: number, name = 'worker', params = ''): { pid: number; name: string; params: string } => ({ pid, name, params });
  m.refresh([p(100), p(101), p(200, 'other')]);
  t.deepEqual([m.fakePid(p(100)), m.fakePid(p(101)), m.fakePid(p(200, 'other'))], [0, 1, 0]);
  m.refresh([p(101), p(102)]);
  t.deepEqual([m.fakePid(p(101)), m.fakePid(p(102))], [1, 0], '102 takes the slot 100 left');
  m.refresh([p(101), p(102), p(103), p(103)]);
  t.deepEqual([m.fakePid(p(101)), m.fakePid(p(102)), m.fakePid(p(103))], [1, 0, 2]);
  t.is(m.fakePid(p(999)), -1);
  const store = new PidStore();
  store.set(101, 1, 'worker --x');
  store.set(101, 1, 'worker --x');
  t.is(store.take(), '1 101/:worker --x\n');
  t.is(store.take(), '');
});

const cfg = (over: Partial<ProcessConfig>): ProcessConfig => ({ name: '', displayname: '', protocol: '', ports: [], paramregex: '', bindip: '', bind_info: [], ...over });

test('processbeat matching: name, exe, basename(exe), argv0 or basename(argv0), and the parameter regex on the command line', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const metas = new ProcReader({ procRoot: h.paths.procRoot, etcRoot: h.paths.etcRoot }).pids().map((pid) => new ProcReader({ procRoot: h.paths.procRoot, etcRoot: h.paths.etcRoot }).meta(pid));
  t.deepEqual([...matchNames(metas.find((m) => m.pid === 300)!)], ['java', '/usr/lib/jvm/bin/java']);
  const matcher = new ProcessMatcher([cfg({ name: 'java', paramregex: 'order-service' }), cfg({ name: 'java', paramregex: 'billing' }), cfg({ name: '/usr/bin/redis-server' }), cfg({ name: 'x', paramregex: '(' })]);
  t.deepEqual(
    matcher.match(metas).map((m) => `${m.meta.pid}:${m.config.name}:${m.config.paramregex}`),
    ['200:/usr/bin/redis-server:', '300:java:order-service'],
  );
  t.deepEqual(matcher.invalid, ['(']);
});

test('port health: listen on the configured address, non-listening ports, listening elsewhere, grouping of binds, the non-listening cap', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const reader = new ProcReader({ procRoot: h.paths.procRoot, etcRoot: h.paths.etcRoot });
  const metas = [100, 200, 300].map((pid) => reader.meta(pid));
  const configs = [
    cfg({ name: 'java', displayname: 'order', bind_info: [{ ip: '', ports: [80], protocol: 'tcp' }, { ip: '', ports: [8080, 80], protocol: 'tcp' }, { ip: '127.0.0.1', ports: [8080], protocol: 'tcp6' }] }),
    cfg({ name: 'sshd', bindip: '10.0.0.9', protocol: 'tcp', ports: [22] }),
    cfg({ name: 'redis-server', bindip: '127.0.0.1', protocol: 'tcp', ports: Array.from({ length: 102 }, (_, i) => 7000 + i) }),
  ];
  const matched = new ProcessMatcher(configs).match(metas);
  const sockets = listeningSockets(h.paths.procRoot, metas.map((m) => m.pid));
  const ports = collectPortStats(configs, matched, sockets, { maxNoListenPorts: 100, interfaceAddrs: () => ({ eth0: ['10.0.0.5/24'] }) });
  t.deepEqual(bindDetails(configs[0]!), [
    { ip: '', ports: [80, 8080], protocol: 'tcp' },
    { ip: '127.0.0.1', ports: [8080], protocol: 'tcp6' },
  ]);
  t.deepEqual(ports[0], { name: 'java', exists: 1, protocol: 'tcp', listen: [80, 8080], nonlisten: [], notaccuratelisten: [], bindip: '', paramregex: '', displayname: 'order', porthealth: 1 });
  t.deepEqual(ports[1], { name: 'java', exists: 1, protocol: 'tcp6', listen: [], nonlisten: [], notaccuratelisten: ['10.0.0.5:8080'], bindip: '127.0.0.1', paramregex: '', displayname: 'order', porthealth: 0 });
  t.deepEqual(ports[2], { name: 'sshd', exists: 1, protocol: 'tcp', listen: [], nonlisten: [], notaccuratelisten: ['0.0.0.0:22'], bindip: '10.0.0.9', paramregex: '', displayname: '', porthealth: 0 });
  t.deepEqual(ports[3]?.nonlisten, [0], 'more than 100 non-listening ports read as [0]');
});

test('proccustom patterns: match and exclude on the command line, process_name group or text or argv0, named extract groups', (t) => {
  const java = '/usr/lib/jvm/bin/java -Xmx2g -Dapp=order -jar /opt/order-service.jar --port=8080';
  const p = new ProcCustomPatterns({ matchPattern: 'java', excludePattern: 'grep', processName: '-Dapp=(\\w+)', extractPattern: '--port=(?P<port>\\d+)|-Xmx(?P<heap>\\w+)' });
  t.true(p.matches(java));
  t.false(p.matches('grep java'));
  t.is(p.processName(java), 'order');
  t.deepEqual(p.dimensions(java), { heap: '', port: '8080' }, 'the last match sets every named group');
  t.is(new ProcCustomPatterns({ matchPattern: '', excludePattern: '', processName: 'order-svc', extractPattern: '' }).processName(java), 'order-svc');
  t.is(new ProcCustomPatterns({ matchPattern: '', excludePattern: '', processName: '', extractPattern: '' }).processName(java), 'java');
  t.false(new ProcCustomPatterns({ matchPattern: '', excludePattern: '', processName: '', extractPattern: '' }).matches(java), 'no match pattern matches nothing');
  t.is(new ProcCustomPatterns({ matchPattern: '', excludePattern: '', processName: '(x)(y)?', extractPattern: '' }).processName('x'), '');
  t.deepEqual(new ProcCustomPatterns({ matchPattern: '(?i)JAVA', excludePattern: '', processName: '', extractPattern: '' }).matches(java), true, 'Go flag groups');
});

test('port probes: a real local listener is alive, a closed port is not, wildcards are probed on the first host address; no socket gives one empty entry', async (t) => {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  t.true(await tcpTouch('127.0.0.1', port, 3000));
  server.close();
  await new Promise((r) => setTimeout(r, 20));
  t.false(await tcpTouch('127.0.0.1', port, 3000));
  const seen: string[] = [];
  const probes = await probeListeners(
    [
      { status: 'LISTEN', inode: 1, pid: 1, family: 2, saddr: '0.0.0.0', sport: 80, daddr: '0.0.0.0', dport: 0, protocol: 'tcp' },
      { status: 'UNCONN', inode: 2, pid: 1, family: 2, saddr: '0.0.0.0', sport: 53, daddr: '0.0.0.0', dport: 0, protocol: 'udp' },
      { status: 'LISTEN', inode: 3, pid: 1, family: 10, saddr: '::', sport: 81, daddr: '::', dport: 0, protocol: 'tcp6' },
    ],
    { v4: ['10.0.0.5'], v6: [] },
    async (ip, p) => {
      seen.push(`${ip}:${p}`);
      return true;
    },
  );
  t.deepEqual(probes, [
    { address: '0.0.0.0', port: '80', alive: 1 },
    { address: '::', port: '81', alive: 0 },
  ]);
  t.deepEqual(seen, ['10.0.0.5:80'], 'no IPv6 address to probe :: on');
  t.deepEqual(await probeListeners([], { v4: [], v6: [] }, tcpTouch), [{ address: '', port: '', alive: 0 }]);
});

test('CMDB hostid → process configurations: protocol and bind-ip codes, port ranges, disabled binds and ports, duplicates', (t) => {
  const procs = hostIdProcesses(readFileSync(join(FIXTURES, 'hostid.json'), 'utf8'));
  t.deepEqual(procs, [
    { name: 'nginx', displayname: 'nginx-web', protocol: 'tcp', ports: [80, 8080, 8081, 8082], paramregex: '', bindip: '10.0.0.5', bind_info: [] },
    {
      name: 'redis-server',
      displayname: 'redis',
      protocol: '',
      ports: [],
      paramregex: '',
      bindip: '',
      bind_info: [
        { ip: '0.0.0.0', ports: [6379], protocol: 'tcp' },
        { ip: '::1', ports: [16379], protocol: 'tcp6' },
      ],
    },
    { name: 'java', displayname: 'order', protocol: 'udp', ports: [], paramregex: 'order-service', bindip: '203.0.113.9', bind_info: [] },
  ]);
  t.deepEqual(['1', '2', '3', '4', 'sctp'].map(convertProtocol), ['tcp', 'udp', 'tcp6', 'udp6', 'sctp']);
  t.deepEqual(['1', '2', '3', '4', '10.1.1.1'].map((c) => convertBindIp(c, '10.0.0.5,10.0.0.6', '1.2.3.4')), ['127.0.0.1', '0.0.0.0', '10.0.0.5', '1.2.3.4', '10.1.1.1']);
  t.deepEqual(convertPorts('8080,22,x,3-5,9-7,22,70000'), [22, 3, 4, 5, 4464, 8080].sort((a, b) => a - b));
  t.throws(() => hostIdProcesses('not json'));
});

test('procsync task ids: XXH64 of the file (known vectors) mod 2^31−1, lifted above 2^29; legacy files become proccustom YAML', (t) => {
  t.is(xxhash64(Buffer.from('')).toString(16), 'ef46db3751d8e999');
  t.is(xxhash64(Buffer.from('a')).toString(16), 'd24ec4f1a98c6e5b');
  t.is(xxhash64(Buffer.from('abc')).toString(16), '44bc2cf5ad770999');
  t.is(xxhash64(Buffer.from('Nobody inspects the spammish repetition')).toString(16), 'fbcea83c8a378bf1');
  const lift = (h: bigint): number => {
    const id = Number(h % 2147483647n);
    return id <= 2 ** 29 ? id + 2 ** 29 : id;
  };
  t.is(procsyncTaskId(Buffer.from('abc')), lift(0x44bc2cf5ad770999n));
  t.true(procsyncTaskId(Buffer.from('abc')) > 2 ** 29);
  const yaml = proccustomFile(readFileSync(join(FIXTURES, 'processbeat', 'monitor_process_java.yaml')));
  t.is(typeof yaml, 'string');
  t.true((yaml as string).includes('match_pattern: java.*order\nprocess_name: -Dapp=(\\w+)\nextract_pattern: --port=(?P<port>\\d+)\nexclude_pattern: grep\npid_path: ""\nproc_metric: []\nport_detect: true\n'));
  t.true((yaml as string).endsWith('labels:\n    - bk_target_cloud_id: "0"\n      bk_target_ip: 10.0.0.5\n      bk_biz_id: "2"\ntags:\n    team: pay\n'));
  t.deepEqual(proccustomFile(Buffer.from('period: 60\n')), { error: 'period: invalid duration "60" (expected e.g. 500ms, 10s, 1m, 1h30m)' });
  t.false(filesDiffer([{ name: 'a', content: 'x' }], [{ name: 'a', content: 'x' }]));
  t.true(filesDiffer([{ name: 'a', content: 'x' }], [{ name: 'a', content: 'y' }]));
});

test('real machine: a full process scan with performance reads sane values', async (t) => {
  const reader = new ProcReader({ procRoot: '/proc', etcRoot: '/etc' });
  const perf = new ProcPerf({ procRoot: '/proc', bootTimeS: () => reader.bootTimeS() });
  const all = await reader.all();
  t.true(all.length > 1);
  const self = all.find((m) => m.pid === process.pid);
  t.truthy(self);
  t.is(self?.exe, process.execPath);
  t.is(self?.username, 'root');
  t.true((self?.created ?? 0) > Date.now() - 3_600_000 && (self?.created ?? 0) <= Date.now());
  const now = Date.now();
  perf.stat(process.pid, now);
  let x = 0;
  for (let i = 0; i < 3e6; i++) x += i;
  t.true(x > 0);
  const s = perf.stat(process.pid, now + 1000);
  t.true((s.mem?.resident ?? 0) > 10 * 1024 * 1024);
  t.true((s.cpu?.percent ?? -1) >= 0);
  t.true((s.fd?.open ?? 0) > 3);
});
