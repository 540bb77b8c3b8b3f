import test from 'ava';
import { rmSync } from 'node:fs';
import { deriveDiskRates, type DiskFilter, diskNameOf, filterDiskStats, filterPartitions, readDiskStats, readPartitions, readUsage } from '../../../services/agent/host/disk.ts';
import { readEnv, renderRouteTable } from '../../../services/agent/host/env.ts';
import { hostPaths } from '../../../services/agent/host/paths.ts';
import {
  countZombies,
  listPids,
  readBootTime,
  readHostId,
  readLoadAvg,
  readPlatform,
  readSystemInfo,
  readUptime,
  readVirtualization,
  systemType,
} from '../../../services/agent/host/system.ts';
import { fixtureHost, statfsOf } from './helpers.ts';

const noLists: DiskFilter = {
  diskWhiteList: [],
  diskBlackList: [],
  partitionWhiteList: [],
  partitionBlackList: [],
  mountpointWhiteList: [],
  mountpointBlackList: [],
  fsTypeWhiteList: [],
  fsTypeBlackList: [],
  ioSkipPartition: false,
  dropDuplicateDevice: false,
};

test('/proc/diskstats: counters, bytes from 512-byte sectors, all-zero devices left out, device-mapper label', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const stats = readDiskStats(h.paths);
  t.deepEqual([...stats.keys()], ['sda', 'sda1', 'dm-0']);
  t.deepEqual(stats.get('sda'), {
    readCount: 1000,
    mergedReadCount: 100,
    writeCount: 2000,
    mergedWriteCount: 200,
    readBytes: 80000 * 512,
    writeBytes: 160000 * 512,
    readTime: 5000,
    writeTime: 8000,
    iopsInProgress: 0,
    ioTime: 6000,
    weightedIO: 13000,
    name: 'sda',
    serialNumber: '',
    label: '',
    major: 8,
    minor: 0,
    readSectors: 80000,
    writeSectors: 160000,
    speedIORead: 0,
    speedByteRead: 0,
    speedIOWrite: 0,
    speedByteWrite: 0,
    util: 0,
    avgrq_sz: 0,
    avgqu_sz: 0,
    await: 0,
    svctm: 0,
  });
  t.is(stats.get('dm-0')?.label, 'vg-data');
});

test('disk rates over an interval: IOPS, bytes/s, util as a 0–1 fraction, await/svctm in ms per I/O, request size in sectors', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const before = readDiskStats(h.paths);
  h.write('proc/diskstats', '   8       0 sda 1100 100 88000 5500 2300 200 184000 9500 0 8000 19000 0 0 0 0\n');
  const after = readDiskStats(h.paths);
  deriveDiskRates(before, after, 10);
  t.like(after.get('sda'), { speedIORead: 10, speedByteRead: 409600, speedIOWrite: 30, speedByteWrite: 1228800, svctm: 5, await: 5, avgrq_sz: 80, avgqu_sz: 0.6, util: 0.2 });
  // more busy time than wall time (clock trouble): util 0
  h.write('proc/diskstats', '   8       0 sda 1200 100 96000 6000 2400 200 192000 10000 0 30000 25000 0 0 0 0\n');
  const later = readDiskStats(h.paths);
  deriveDiskRates(after, later, 10);
  t.is(later.get('sda')?.util, 0);
  // counters that went back give 0, not a negative rate; no I/O gives 0 per-I/O figures
  deriveDiskRates(later, after, 0.5);
  t.like(after.get('sda'), { speedIORead: 0, speedByteWrite: 0, svctm: 0, await: 0, avgrq_sz: 0 });
});

test('mount table from /proc/1/mountinfo: /dev/root and /dev/mapper resolved, bind mounts marked, octal escapes decoded, physical filter', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const all = readPartitions(h.paths, true);
  t.deepEqual(all[0], { device: '/dev/sda1', mountpoint: '/', fstype: 'ext4', opts: ['rw', 'relatime', '8:1'] });
  t.deepEqual(all[2], { device: '/dev/dm-0', mountpoint: '/data', fstype: 'xfs', opts: ['rw', 'noatime', '253:0'] });
  t.deepEqual(all[3], { device: '/dev/dm-0', mountpoint: '/mnt/bind', fstype: 'xfs', opts: ['ro', 'noatime', 'bind', '253:0'] });
  t.is(all[6]?.mountpoint, '/mnt/my disk');
  t.is(all.length, 7);
  t.deepEqual(
    readPartitions(h.paths, false).map((p) => p.mountpoint),
    ['/', '/data', '/mnt/bind', '/var/lib/docker/overlay2', '/mnt/my disk'],
  );
  // without /proc/1 the reader falls back to /proc/self; with neither it fails
  h.write('proc/self/mounts', '/dev/vdb /srv ext4 rw,relatime 0 0\nnone /x tmpfs rw 0 0\n');
  rmSync(`${h.paths.procRoot}/1/mountinfo`);
  t.deepEqual(readPartitions(h.paths, false), [{ device: '/dev/vdb', mountpoint: '/srv', fstype: 'ext4', opts: ['rw,relatime'] }]);
});

test('partition lists: disk, partition, mount point and fs type; duplicates of a device dropped when asked', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const parts = readPartitions(h.paths, false);
  const template = { ...noLists, mountpointBlackList: [/docker/], fsTypeWhiteList: [/ext/, /xfs/] };
  t.deepEqual(
    filterPartitions(parts, template).map((p) => p.mountpoint),
    ['/', '/data', '/mnt/bind', '/mnt/my disk'],
  );
  t.deepEqual(
    filterPartitions(parts, { ...template, dropDuplicateDevice: true }).map((p) => p.mountpoint),
    ['/', '/data'],
  );
  t.deepEqual(
    filterPartitions(parts, { ...noLists, diskBlackList: [/^sda$/] }).map((p) => p.device),
    ['/dev/dm-0', '/dev/dm-0'],
  );
  t.deepEqual(
    filterPartitions(parts, { ...noLists, partitionWhiteList: [/^dm-/] }).map((p) => p.mountpoint),
    ['/data', '/mnt/bind'],
  );
  t.is(diskNameOf('/dev/sda1'), 'sda');
  t.is(diskNameOf('nvme0n1p1'), 'p');
  t.is(diskNameOf('dm-0'), '');
});

test('disk io lists: partitions skipped or filtered by their disk, their own list and their mount fs type', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const stats = readDiskStats(h.paths);
  const mounts = readPartitions(h.paths, true);
  const names = (f: DiskFilter): string[] => [...filterDiskStats(h.paths, stats, f, mounts).keys()];
  t.deepEqual(names(noLists), ['sda', 'sda1', 'dm-0']);
  t.deepEqual(names({ ...noLists, ioSkipPartition: true }), ['sda', 'dm-0']);
  t.deepEqual(names({ ...noLists, diskBlackList: [/^sda$/] }), ['dm-0']);
  t.deepEqual(names({ ...noLists, fsTypeWhiteList: [/xfs/] }), ['sda', 'dm-0']);
  t.deepEqual(names({ ...noLists, partitionBlackList: [/sda1/] }), ['sda', 'dm-0']);
});

test('usage from statfs: bytes, used % over used+available, inodes, fs type from the magic number', async (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  h.statfs.set('/', statfsOf(0xef53, 1_000_000, 400_000, 350_000, 1000, 250));
  h.statfs.set('/data', statfsOf(0x58465342, 10, 10, 10, 0, 0));
  h.statfs.set('/weird', statfsOf(0x794c7630, 0, 0, 0));
  const u = await readUsage(h.paths, '/');
  t.deepEqual(u, {
    path: '/',
    fstype: 'ext2/ext3',
    total: 4_096_000_000,
    free: 1_433_600_000,
    used: 2_457_600_000,
    usedPercent: (2_457_600_000 / (2_457_600_000 + 1_433_600_000)) * 100,
    inodesTotal: 1000,
    inodesUsed: 750,
    inodesFree: 250,
    inodesUsedPercent: 75,
  });
  t.like(await readUsage(h.paths, '/data'), { fstype: 'xfs', used: 0, usedPercent: 0, inodesUsedPercent: 0 });
  t.like(await readUsage(h.paths, '/weird'), { fstype: '', usedPercent: 0 });
  await t.throwsAsync(() => readUsage(h.paths, '/missing'));
});

test('platform, family and version from the release files', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.deepEqual(readPlatform(h.paths), ['ubuntu', 'debian', '22.04']);
  rmSync(`${h.paths.etcRoot}/debian_version`);
  t.deepEqual(readPlatform(h.paths), ['ubuntu', 'debian', '22.04.3 LTS (Jammy Jellyfish)'], 'os-release');
  h.write('etc/redhat-release', 'CentOS Linux release 7.9.2009 (Core)\n');
  t.deepEqual(readPlatform(h.paths), ['centos', 'rhel', '7.9.2009']);
  h.write('etc/redhat-release', 'Red Hat Enterprise Linux Server release 7.6 (Maipo)\n');
  t.deepEqual(readPlatform(h.paths), ['redhat', 'rhel', '7.6']);
  h.write('etc/oracle-release', 'Oracle Linux Server release 8.4\n');
  t.deepEqual(readPlatform(h.paths), ['oracle', 'rhel', '8.4']);
});

test('virtualization, host id, boot time, uptime, process and zombie counts, system type', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  t.deepEqual(readVirtualization(h.paths), ['', '']);
  t.is(readHostId(h.paths), '01234567-89ab-cdef-0123-456789abcdef');
  h.write('etc/machine-id', 'short\n');
  t.is(readHostId(h.paths), '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', 'falls back to the boot id, lower-cased');
  h.write('sys/class/dmi/id/product_uuid', 'ABCDEF01-2345-6789-ABCD-EF0123456789\n');
  t.is(readHostId(h.paths), 'abcdef01-2345-6789-abcd-ef0123456789');
  t.is(readUptime(h.paths.procRoot), 86400);
  t.is(readBootTime(h.paths, Date.UTC(2024, 0, 1)), 1_700_000_000);
  t.deepEqual(listPids(h.paths.procRoot).sort((a, b) => a - b), [1, 100, 200, 300, 400, 500]);
  t.is(countZombies(h.paths.procRoot), 1);
  t.deepEqual(readLoadAvg(h.paths.procRoot), { load1: 1.5, load5: 0.8, load15: 0.4 });
  t.deepEqual(['x86_64', 'aarch64', 'aarch32', 'armv7l', 'i686'].map(systemType), ['64-bit', 'arm-64bit', 'arm-32bit', '32-bit', '32-bit']);
  h.write('proc/cpuinfo', 'processor : 0\nmodel name : QEMU Virtual CPU version 2.5+\n');
  t.deepEqual(readVirtualization(h.paths), ['kvm', 'guest']);
  h.write('.dockerenv', '');
  t.deepEqual(readVirtualization(h.paths), ['docker', 'guest']);
  const now = Date.UTC(2024, 0, 1, 0, 0, 0);
  t.is(readBootTime(h.paths, now), Math.trunc(now / 1000 - 86400.55), 'inside docker the boot time is now − uptime');
  const info = readSystemInfo(h.paths, now, { release: '5.15.0-91-generic', machine: 'x86_64' });
  t.deepEqual(info, {
    hostname: 'fixture-host',
    uptime: 86400,
    bootTime: Math.trunc(now / 1000 - 86400.55),
    procs: 6,
    procsZombie: 1,
    os: 'linux',
    platform: 'ubuntu',
    platformFamily: 'debian',
    platformVersion: '22.04',
    kernelVersion: '5.15.0-91-generic',
    kernelArch: 'x86_64',
    virtualizationSystem: 'docker',
    virtualizationRole: 'guest',
    hostId: 'abcdef01-2345-6789-abcd-ef0123456789',
    systemtype: '64-bit',
  });
});

test('env: file limits, kernel string, pts logins, /proc/stat counters; crontab, hosts and route only when enabled', (t) => {
  const h = fixtureHost();
  t.teardown(h.cleanup);
  const off = readEnv(h.paths, { reportCrontab: false, reportHosts: false, reportRoute: false });
  t.deepEqual(off.errors, []);
  t.deepEqual(off.report, {
    crontab: [],
    host: '',
    route: '',
    // 2^63−1 does not fit a double: it travels as 9223372036854775808 (README "Differences from the reference")
    maxfiles: Number('9223372036854775807'),
    allocated_files: 3264,
    uname: 'Linux version 5.15.0-91-generic (buildd@lcy02) (gcc 11.4.0) #101-Ubuntu SMP\n',
    login_user: 2,
    proc_running_current: 3,
    procs_blocked_current: 1,
    procs_processes_total: 4321,
    procs_ctxt_total: 987654,
  });
  const on = readEnv(h.paths, { reportCrontab: true, reportHosts: true, reportRoute: true });
  t.deepEqual(on.report.crontab, [{ user: 'root', content: '*/5 * * * * /usr/local/bin/backup.sh\n' }]);
  t.is(on.report.host, '127.0.0.1 localhost\n10.0.0.5 fixture-host\n');
  t.is(
    on.report.route,
    'Kernel IP routing table\n' +
      'Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n' +
      '0.0.0.0         10.0.0.1        0.0.0.0         UG    100    0        0 eth0\n' +
      '10.0.0.0        0.0.0.0         255.255.255.0   U     100    0        0 eth0\n',
  );
  rmSync(`${h.root}/var/spool/cron`, { recursive: true });
  const missing = readEnv(h.paths, { reportCrontab: true, reportHosts: false, reportRoute: false });
  t.is(missing.report.crontab, null, 'an unreadable spool gives null, as the reference marshals its nil list');
  t.deepEqual(missing.errors, ['cannot list /var/spool/cron/']);
});

test('real machine: partitions, usage, system info and env read with sane values', async (t) => {
  const paths = hostPaths();
  const parts = readPartitions(paths, true);
  t.true(parts.some((p) => p.mountpoint === '/'));
  const u = await readUsage(paths, '/');
  t.true(u.total > 0 && u.usedPercent >= 0 && u.usedPercent <= 100);
  const info = readSystemInfo(paths, Date.now());
  t.true(info.procs > 0 && info.uptime > 0);
  t.true(info.bootTime > 1_000_000_000 && info.bootTime < Date.now() / 1000);
  t.is(info.os, 'linux');
  t.not(info.hostname, '');
  t.true(typeof renderRouteTable(paths.procRoot) === 'string');
  const env = readEnv(paths, { reportCrontab: false, reportHosts: true, reportRoute: true });
  t.true(env.report.maxfiles > 0 && env.report.procs_processes_total > 0);
});
