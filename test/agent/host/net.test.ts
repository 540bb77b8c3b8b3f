import test from 'ava';
import {
  defaultIps,
  devStats,
  isGlobalUnicast,
  keepInterface,
  keepPeak,
  type NetDevStat,
  type NetFilter,
  NetSpeedTracker,
  ProtocolStatTracker,
  readCarrierCollisions,
  readInterfaces,
  readIoCounters,
  readProtoCounters,
  virtualInterfaces,
} from '../../../services/agent/host/net.ts';
import { hostPaths } from '../../../services/agent/host/paths.ts';
import { countTcpStates, listeningSockets, parseSocketTable, readSocketTable, socketsFor } from '../../../services/agent/host/sockets.ts';
import { fixtureHost } from './helpers.ts';

const addrs = (): Record<string, string[]> => ({ lo: ['127.0.0.1/8', '::1/128'], eth0: ['10.0.0.5/24', 'fe80::5054:ff:fe12:3456/64', '2001:db8::5/64'] });

test('/proc/net/dev counters per interface; carrier/collisions keep the reference column swap; sums of errors, drops, fifo', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const counters = readIoCounters(h.paths.procRoot);
  t.deepEqual(
    counters.map((c) => c.name),
    ['lo', 'eth0', 'docker0', 'bond0'],
  );
  const [eth0] = devStats(counters.filter((c) => c.name === 'eth0'), readCarrierCollisions(h.paths.procRoot));
  t.deepEqual(eth0, {
    name: 'eth0',
    bytesRecv: 50_000_000,
    packetsRecv: 40_000,
    errin: 1,
    dropin: 2,
    fifoin: 3,
    bytesSent: 20_000_000,
    packetsSent: 30_000,
    errout: 4,
    dropout: 5,
    fifoout: 6,
    errors: 5,
    dropped: 7,
    overruns: 9,
    carrier: 7,
    collisions: 8,
    speedSent: 0,
    speedRecv: 0,
    speedPacketsSent: 0,
    speedPacketsRecv: 0,
  });
});

const lists = (o: Partial<NetFilter>): NetFilter => ({ skipVirtualInterface: false, whiteList: [], blackList: [], forceReportList: [], ...o });

test('interface filters: force list first, a white list decides alone, else the black list; virtual ones dropped unless white-listed', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const virtual = virtualInterfaces(h.paths.sysRoot) ?? new Set();
  t.deepEqual([...virtual].sort(), ['bond0', 'docker0', 'lo', 'veth1a2b']);
  const names = ['lo', 'eth0', 'docker0', 'bond0', 'veth1a2b'];
  const keep = (f: NetFilter): string[] => names.filter((n) => keepInterface(n, f, virtual));
  t.deepEqual(keep(lists({})), names);
  t.deepEqual(keep(lists({ blackList: [/veth/, /docker/] })), ['lo', 'eth0', 'bond0']);
  t.deepEqual(keep(lists({ blackList: [/veth/, /docker/], skipVirtualInterface: true, forceReportList: [/bond/] })), ['eth0', 'bond0']);
  t.deepEqual(keep(lists({ whiteList: [/^eth/], blackList: [/^eth/] })), ['eth0'], 'the white list wins over the black list');
  t.deepEqual(keep(lists({ whiteList: [/^lo/, /^eth/], skipVirtualInterface: true })), ['lo', 'eth0'], 'a white-listed virtual interface stays');
});

function round(name: string, bytes: number): NetDevStat {
  return { name, bytesRecv: bytes, bytesSent: bytes * 2, packetsRecv: bytes / 10, packetsSent: bytes / 5, errin: 0, errout: 0, dropin: 0, dropout: 0, fifoin: 0, fifoout: 0, errors: 0, dropped: 0, overruns: 0, carrier: 0, collisions: 0, speedSent: 0, speedRecv: 0, speedPacketsSent: 0, speedPacketsRecv: 0 };
}

test('speeds are deltas per whole second; a counter reversal zeroes the round and keeps the old baseline; the first round after recovery is zeroed too', (t) => {
  const tracker = new NetSpeedTracker();
  const at = (s: number, bytes: number): NetDevStat => {
    const r = round('eth0', bytes);
    tracker.update([r], s * 1000);
    return r;
  };
  t.is(at(0, 1000).speedRecv, 0, 'no previous reading');
  const r1 = at(15, 16000);
  t.deepEqual([r1.speedRecv, r1.speedSent, r1.speedPacketsRecv, r1.speedPacketsSent], [1000, 2000, 100, 200]);
  const r2 = at(30, 500);
  t.is(r2.speedRecv, 0);
  t.is(tracker.reversals, 1);
  const r3 = at(45, 17500);
  t.is(r3.speedRecv, 0, 'above the kept baseline again: accepted, but this round is zeroed');
  t.is(tracker.reversals, 0);
  t.is(at(60, 19000).speedRecv, 100);
  t.is(at(60.9, 19090).speedRecv, 90, 'an interval under a second counts as one second');
});

test('after a counter reset, five strictly increasing rounds make the new counters the baseline', (t) => {
  const tracker = new NetSpeedTracker();
  const at = (s: number, bytes: number): NetDevStat => {
    const r = round('eth0', bytes);
    tracker.update([r], s * 1000);
    return r;
  };
  at(0, 100_000);
  at(15, 160_000);
  for (const [i, b] of [500, 600, 700, 800].entries()) {
    t.is(at(30 + 15 * i, b).speedRecv, 0);
    t.is(tracker.reversals, i + 1);
  }
  t.is(at(90, 900).speedRecv, 0, 'accepted as the new baseline, zeroed');
  t.is(tracker.reversals, 0);
  t.is(at(105, 2400).speedRecv, 100);
});

test('an idle interface (equal counters) keeps the reversal protection from accepting a new baseline', (t) => {
  const tracker = new NetSpeedTracker();
  const step = (s: number, bytes: number): NetDevStat[] => {
    const rs = [round('eth0', bytes), round('lo', 50)];
    tracker.update(rs, s * 1000);
    return rs;
  };
  step(0, 100_000);
  for (let i = 1; i <= 6; i++) step(15 * i, 100 * i);
  t.is(tracker.reversals, 6);
});

test('the peak round per interface is kept (highest of receive and send speed)', (t) => {
  const peaks = new Map<string, NetDevStat>();
  const mk = (recv: number, sent: number): NetDevStat => ({ ...round('eth0', 10), speedRecv: recv, speedSent: sent });
  keepPeak(peaks, [mk(10, 50)]);
  keepPeak(peaks, [mk(60, 0)]);
  keepPeak(peaks, [mk(30, 40)]);
  keepPeak(peaks, [mk(60, 1)]);
  t.deepEqual([peaks.get('eth0')?.speedRecv, peaks.get('eth0')?.speedSent], [60, 0], 'first of equal peaks stays');
});

test('protocolstat: /proc/net/snmp tcp/udp counters as lower-camel keys, reported as changes (0 on the first call)', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const tracker = new ProtocolStatTracker();
  const first = tracker.update(readProtoCounters(h.paths.procRoot, ['udp', 'tcp']));
  t.deepEqual(Object.keys(first), ['tcp', 'udp']);
  t.deepEqual(Object.keys(first['udp'] ?? {}), ['ignoredMulti', 'inCsumErrors', 'inDatagrams', 'inErrors', 'memErrors', 'noPorts', 'outDatagrams', 'rcvbufErrors', 'sndbufErrors']);
  t.true(Object.values(first['tcp'] ?? {}).every((v) => v === 0));
  h.write(
    'proc/net/snmp',
    'Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens AttemptFails EstabResets CurrEstab InSegs OutSegs RetransSegs InErrs OutRsts InCsumErrors\n' +
      'Tcp: 1 200 120000 -1 130 50 2 3 2 10500 9400 9 0 11 0\n' +
      'Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n' +
      'Udp: 560 6 1 430 0 0 0 0 0\n',
  );
  const second = tracker.update(readProtoCounters(h.paths.procRoot, ['udp', 'tcp']));
  t.like(second['tcp'], { activeOpens: 30, currEstab: -2, inSegs: 500, outSegs: 400, retransSegs: 2, maxConn: 0 });
  t.like(second['udp'], { inDatagrams: 60, outDatagrams: 30, noPorts: 0 });
});

test('interfaces from /sys/class/net: index order, MTU, flags, lower-case MAC (empty when all zero), addresses with prefix', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const list = readInterfaces(h.paths.sysRoot, addrs);
  t.deepEqual(
    list.map((i) => i.name),
    ['lo', 'eth0', 'docker0', 'bond0', 'veth1a2b'],
  );
  t.deepEqual(list[0], { index: 1, mtu: 65536, name: 'lo', hardwareaddr: '', flags: ['up', 'loopback'], addrs: [{ addr: '127.0.0.1/8' }, { addr: '::1/128' }] });
  t.deepEqual(list[1], {
    index: 2,
    mtu: 1500,
    name: 'eth0',
    hardwareaddr: '52:54:00:12:34:56',
    flags: ['up', 'broadcast', 'multicast'],
    addrs: [{ addr: '10.0.0.5/24' }, { addr: 'fe80::5054:ff:fe12:3456/64' }, { addr: '2001:db8::5/64' }],
  });
  t.is(list[2]?.hardwareaddr, '02:42:ac:11:00:01');
  t.deepEqual(list[4]?.addrs, []);
});

test('/proc/net socket tables: addresses in host byte order, IPv4-mapped IPv6 printed dotted, link-local compressed', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const tcp = readSocketTable(h.paths.procRoot, 'tcp');
  t.deepEqual(
    tcp.map((s) => [s.saddr, s.sport, s.daddr, s.dport, s.state, s.inode]),
    [
      ['0.0.0.0', 22, '0.0.0.0', 0, 10, 1001],
      ['127.0.0.1', 6379, '0.0.0.0', 0, 10, 1002],
      ['10.0.0.5', 22, '10.0.0.6', 54321, 1, 1003],
      ['10.0.0.5', 22, '10.0.0.7', 54322, 6, 0],
    ],
  );
  const tcp6 = readSocketTable(h.paths.procRoot, 'tcp6');
  t.deepEqual(
    tcp6.map((s) => [s.saddr, s.sport]),
    [
      ['::', 80],
      ['10.0.0.5', 8080],
      ['fe80::5254:ff:fe00:12', 80],
    ],
  );
  t.deepEqual(parseSocketTable('header\n', 'udp'), []);
});

test('netstat counts TCP states of IPv4 sockets (and IPv6 when asked)', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.deepEqual(countTcpStates(h.paths.procRoot), { established: 1, syncSent: 0, synRecv: 0, finWait1: 0, finWait2: 0, timeWait: 1, close: 0, closeWait: 0, lastAck: 0, listen: 2, closing: 0 });
  t.like(countTcpStates(h.paths.procRoot, ['tcp', 'tcp6']), { established: 2, listen: 4, timeWait: 1 });
});

test('listening sockets map to pids through /proc/<pid>/fd inodes; :: listens on both wildcards; protocol tcp covers tcp6', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const ps = listeningSockets(h.paths.procRoot, [100, 200, 300, 1]);
  t.deepEqual(ps.tcp.get(100)?.map((s) => `${s.status} ${s.saddr}:${s.sport}`), ['LISTEN 0.0.0.0:22']);
  t.deepEqual(ps.udp.get(100)?.map((s) => `${s.status} ${s.saddr}:${s.sport} ${s.protocol} ${s.family}`), ['UNCONN 0.0.0.0:514 udp 2']);
  t.deepEqual(ps.tcp.get(200)?.map((s) => `${s.saddr}:${s.sport}`), ['127.0.0.1:6379']);
  t.deepEqual(ps.tcp6.get(300)?.map((s) => `${s.saddr}:${s.sport} ${s.protocol} ${s.family}`), ['0.0.0.0:80 tcp6 10', ':::80 tcp6 10', '10.0.0.5:8080 tcp6 10']);
  t.is(ps.tcp.get(1), undefined);
  t.is(socketsFor(ps, 300, 'tcp').length, 3);
  t.is(socketsFor(ps, 300, 'tcp6').length, 3);
  t.is(socketsFor(ps, 100, 'udp').length, 1);
  t.deepEqual(socketsFor(ps, 100, 'sctp'), []);
});

test('default IPs are the global unicast addresses (no loopback, link-local or multicast)', (t) => {
  t.deepEqual(defaultIps(addrs), { v4: ['10.0.0.5'], v6: ['2001:db8::5'] });
  for (const ip of ['127.0.0.1', '169.254.1.1', '224.0.0.1', '0.0.0.0', '255.255.255.255', '::1', '::', 'fe80::1', 'ff02::1']) t.false(isGlobalUnicast(ip), ip);
  for (const ip of ['10.1.2.3', '192.168.0.1', '8.8.8.8', 'fd00::1', '2001:db8::1']) t.true(isGlobalUnicast(ip), ip);
});

test('real machine: net/dev, interfaces, socket tables and TCP states read', (t) => {
  const paths = hostPaths();
  const counters = readIoCounters(paths.procRoot);
  t.true(counters.some((c) => c.name === 'lo'));
  t.true(counters.every((c) => Number.isInteger(c.bytesRecv) && c.bytesRecv >= 0));
  const list = readInterfaces(paths.sysRoot);
  t.true(list.some((i) => i.name === 'lo' && (i.addrs ?? []).some((a) => a.addr === '127.0.0.1/8')));
  const states = countTcpStates(paths.procRoot, ['tcp', 'tcp6']);
  t.true(Object.values(states).every((n) => Number.isInteger(n) && n >= 0));
  const proto = readProtoCounters(paths.procRoot, ['tcp', 'udp']);
  t.true((proto.get('tcp')?.get('activeOpens') ?? -1) >= 0);
});
