/**
 * Host identity for basereport's `system.info` (gopsutil host.Info plus the reference's `procsZombie` and
 * `systemtype`), `load` and static's `system`: hostname, uptime, boot time, process counts, platform,
 * kernel, virtualization and host id.
 */
import { hostname as osHostname, machine as osMachine, release as osRelease } from 'node:os';
import { join } from 'node:path';
import { existsWithContents, exists, fieldsOf, type HostPaths, listDir, onRootfs, readLines, readText } from './paths.ts';

/** The `uname(2)` fields the readers need; injectable for tests. */
export interface Uname {
  /** Kernel release (`uname -r`). */
  readonly release: string;
  /** Hardware name (`uname -m`, e.g. x86_64, aarch64). */
  readonly machine: string;
}

export const nodeUname = (): Uname => ({ release: osRelease(), machine: osMachine() });

/** basereport `system.info`: gopsutil host.InfoStat with `procsZombie`, plus `systemtype`. */
export interface SystemInfo {
  hostname: string;
  uptime: number;
  bootTime: number;
  procs: number;
  procsZombie: number;
  os: string;
  platform: string;
  platformFamily: string;
  platformVersion: string;
  kernelVersion: string;
  kernelArch: string;
  virtualizationSystem: string;
  virtualizationRole: string;
  hostId: string;
  systemtype: string;
}

/** The reference's GetSystemType from `uname -m`. */
export function systemType(machine: string): string {
  if (machine.includes('x86_64')) return '64-bit';
  if (machine.includes('aarch64')) return 'arm-64bit';
  if (machine.includes('aarch32')) return 'arm-32bit';
  return '32-bit';
}

/** The host name (the kernel's, which is the host's under host networking), else the process's. */
export function readHostname(procRoot: string): string {
  const h = readText(join(procRoot, 'sys/kernel/hostname'));
  return h !== undefined && h.trim() !== '' ? h.trim() : osHostname();
}

const containsLine = (lines: readonly string[], s: string): boolean => lines.some((l) => l.includes(s));

/** gopsutil common.Virtualization: `[system, role]`, e.g. `['kvm', 'guest']`, `['docker', 'guest']`, `['', '']`. */
export function readVirtualization(paths: HostPaths): [string, string] {
  let system = '';
  let role = '';
  const proc = paths.procRoot;
  if (exists(join(proc, 'xen'))) {
    system = 'xen';
    role = 'guest';
    if (containsLine(readLines(join(proc, 'xen/capabilities')) ?? [], 'control_d')) role = 'host';
  }
  const modules = readLines(join(proc, 'modules'));
  if (modules) {
    if (containsLine(modules, 'kvm')) [system, role] = ['kvm', 'host'];
    else if (containsLine(modules, 'hv_util')) [system, role] = ['hyperv', 'guest'];
    else if (containsLine(modules, 'vboxdrv')) [system, role] = ['vbox', 'host'];
    else if (containsLine(modules, 'vboxguest')) [system, role] = ['vbox', 'guest'];
    else if (containsLine(modules, 'vmware')) [system, role] = ['vmware', 'guest'];
  }
  const cpuinfo = readLines(join(proc, 'cpuinfo'));
  if (cpuinfo && ['QEMU Virtual CPU', 'Common KVM processor', 'Common 32-bit KVM processor'].some((s) => containsLine(cpuinfo, s))) {
    [system, role] = ['kvm', 'guest'];
  }
  if (containsLine(readLines(join(proc, 'bus/pci/devices')) ?? [], 'virtio-pci')) role = 'guest';
  if (exists(join(proc, 'bc/0'))) [system, role] = ['openvz', 'host'];
  else if (exists(join(proc, 'vz'))) [system, role] = ['openvz', 'guest'];
  const status = readLines(join(proc, 'self/status'));
  if (status && (containsLine(status, 's_context:') || containsLine(status, 'VxID:'))) system = 'linux-vserver';
  if ((readText(join(proc, '1/environ')) ?? '').includes('container=lxc')) [system, role] = ['lxc', 'guest'];
  const cgroup = readLines(join(proc, 'self/cgroup'));
  if (cgroup) {
    if (containsLine(cgroup, 'lxc')) [system, role] = ['lxc', 'guest'];
    else if (containsLine(cgroup, 'docker')) [system, role] = ['docker', 'guest'];
    else if (containsLine(cgroup, 'machine-rkt')) [system, role] = ['rkt', 'guest'];
    else if (exists(onRootfs(paths, '/usr/bin/lxc-version'))) [system, role] = ['lxc', 'host'];
  }
  if (osRelease_(paths.etcRoot)?.platform === 'coreos') [system, role] = ['rkt', 'host'];
  if (exists(onRootfs(paths, '/.dockerenv'))) [system, role] = ['docker', 'guest'];
  return [system, role];
}

function osRelease_(etcRoot: string): { platform: string; version: string } | undefined {
  const lines = readLines(join(etcRoot, 'os-release'));
  if (!lines) return undefined;
  let platform = '';
  let version = '';
  const unquote = (s: string): string => (s.length >= 2 && s.startsWith('"') && s.endsWith('"') ? s.slice(1, -1) : s);
  for (const line of lines) {
    const f = line.split('=');
    if (f.length < 2) continue;
    if (f[0] === 'ID') platform = unquote(f[1] as string);
    else if (f[0] === 'VERSION') version = unquote(f[1] as string);
  }
  return { platform: platform === 'amzn' ? 'amazon' : platform, version };
}

const redhatishVersion = (lines: readonly string[]): string => {
  const c = lines.join('').toLowerCase();
  if (c.includes('rawhide')) return 'rawhide';
  return /release (\w[\d.]*)/.exec(c)?.[1] ?? '';
};
const redhatishPlatform = (lines: readonly string[]): string => {
  const c = lines.join('').toLowerCase();
  return c.includes('red hat') ? 'redhat' : (c.split(' ')[0] as string);
};

/** gopsutil host.PlatformInformation: `[platform, family, version]` from the release files under /etc. */
export function readPlatform(paths: HostPaths): [string, string, string] {
  const etc = (f: string): string => join(paths.etcRoot, f);
  const lsb = { id: '', release: '' };
  const lsbLines = readLines(etc('lsb-release'));
  for (const line of lsbLines ?? []) {
    const f = line.split('=');
    if (f.length < 2) continue;
    if (f[0] === 'DISTRIB_ID') lsb.id = (f[1] as string).replaceAll('"', '');
    if (f[0] === 'DISTRIB_RELEASE') lsb.release = (f[1] as string).replaceAll('"', '');
  }
  let platform = '';
  let version = '';
  const lines = (f: string): string[] => readLines(etc(f)) ?? [];
  if (existsWithContents(etc('oracle-release'))) [platform, version] = ['oracle', redhatishVersion(lines('oracle-release'))];
  else if (existsWithContents(etc('enterprise-release'))) [platform, version] = ['oracle', redhatishVersion(lines('enterprise-release'))];
  else if (existsWithContents(etc('slackware-version'))) [platform, version] = ['slackware', lines('slackware-version').join('').toLowerCase().replace('slackware ', '')];
  else if (existsWithContents(etc('debian_version'))) {
    if (lsb.id === 'Ubuntu') [platform, version] = ['ubuntu', lsb.release];
    else if (lsb.id === 'LinuxMint') [platform, version] = ['linuxmint', lsb.release];
    else if (lsb.id === 'Kylin') [platform, version] = ['Kylin', lsb.release];
    else {
      platform = existsWithContents(onRootfs(paths, '/usr/bin/raspi-config')) ? 'raspbian' : 'debian';
      version = lines('debian_version')[0] ?? '';
    }
  } else if (exists(etc('neokylin-release'))) [platform, version] = [redhatishPlatform(lines('neokylin-release')), redhatishVersion(lines('neokylin-release'))];
  else if (exists(etc('redhat-release'))) [platform, version] = [redhatishPlatform(lines('redhat-release')), redhatishVersion(lines('redhat-release'))];
  else if (exists(etc('system-release'))) [platform, version] = [redhatishPlatform(lines('system-release')), redhatishVersion(lines('system-release'))];
  else if (exists(etc('gentoo-release'))) [platform, version] = ['gentoo', redhatishVersion(lines('gentoo-release'))];
  else if (exists(etc('SuSE-release'))) {
    const c = lines('SuSE-release');
    platform = c.join('').toLowerCase().includes('opensuse') ? 'opensuse' : 'suse';
    for (const line of c) {
      const v = /VERSION = ([\d.]+)/.exec(line);
      const p = /PATCHLEVEL = (\d+)/.exec(line);
      if (v) version = v[1] as string;
      else if (p) version = `${version}.${p[1]}`;
    }
  } else if (exists(etc('arch-release'))) [platform, version] = ['arch', lsb.release];
  else if (exists(etc('alpine-release'))) [platform, version] = ['alpine', lines('alpine-release')[0] ?? ''];
  else if (exists(etc('os-release'))) {
    const r = osRelease_(paths.etcRoot);
    [platform, version] = [r?.platform ?? '', r?.version ?? ''];
  } else if (lsb.id === 'RedHat') [platform, version] = ['redhat', lsb.release];
  else if (lsb.id === 'Amazon') [platform, version] = ['amazon', lsb.release];
  else if (lsb.id === 'ScientificSL') [platform, version] = ['scientific', lsb.release];
  else if (lsb.id === 'XenServer') [platform, version] = ['xenserver', lsb.release];
  else if (lsb.id !== '') [platform, version] = [lsb.id.toLowerCase(), lsb.release];
  platform = platform.replace(/^"+|"+$/g, '');
  const families: [string[], string][] = [
    [['debian', 'ubuntu', 'linuxmint', 'raspbian', 'Kylin', 'cumuluslinux'], 'debian'],
    [['fedora'], 'fedora'],
    [['oracle', 'centos', 'redhat', 'scientific', 'enterpriseenterprise', 'amazon', 'xenserver', 'cloudlinux', 'ibm_powerkvm', 'rocky', 'almalinux'], 'rhel'],
    [['suse', 'opensuse', 'opensuse-leap', 'opensuse-tumbleweed', 'opensuse-tumbleweed-kubic', 'sles', 'sled', 'caasp'], 'suse'],
    [['gentoo'], 'gentoo'],
    [['slackware'], 'slackware'],
    [['arch'], 'arch'],
    [['exherbo'], 'exherbo'],
    [['alpine'], 'alpine'],
    [['coreos'], 'coreos'],
    [['solus'], 'solus'],
    [['neokylin'], 'neokylin'],
  ];
  const family = families.find(([names]) => names.includes(platform))?.[1] ?? '';
  return [platform, family, version];
}

/** gopsutil host.HostID: DMI product UUID, else /etc/machine-id as a UUID, else the boot id. */
export function readHostId(paths: HostPaths): string {
  const uuid = readText(join(paths.sysRoot, 'class/dmi/id/product_uuid'));
  const first = (s: string | undefined): string => (s ?? '').split('\n')[0] as string;
  if (uuid !== undefined && first(uuid) !== '') return first(uuid).toLowerCase();
  const mid = first(readText(join(paths.etcRoot, 'machine-id')));
  if (mid.length === 32) return `${mid.slice(0, 8)}-${mid.slice(8, 12)}-${mid.slice(12, 16)}-${mid.slice(16, 20)}-${mid.slice(20)}`;
  return first(readText(join(paths.procRoot, 'sys/kernel/random/boot_id'))).toLowerCase();
}

/** Seconds since boot, whole (sysinfo(2) uptime). */
export function readUptime(procRoot: string): number {
  const t = readText(join(procRoot, 'uptime'));
  const v = Number(fieldsOf(t ?? '')[0]);
  if (!Number.isFinite(v)) throw new Error(`cannot read ${join(procRoot, 'uptime')}`);
  return Math.trunc(v);
}

/** Boot time in seconds since the epoch: `btime` of /proc/stat (now − uptime inside docker/lxc guests). */
export function readBootTime(paths: HostPaths, nowMs: number, virt: [string, string] = readVirtualization(paths)): number {
  const [system, role] = virt;
  if (role === 'guest' && (system === 'lxc' || system === 'docker')) {
    const t = Number(fieldsOf(readText(join(paths.procRoot, 'uptime')) ?? '')[0]);
    if (!Number.isFinite(t)) throw new Error('wrong uptime format');
    return Math.trunc(nowMs / 1000 - t);
  }
  for (const line of readLines(join(paths.procRoot, 'stat')) ?? []) {
    if (line.startsWith('btime')) {
      const f = fieldsOf(line);
      if (f.length !== 2) throw new Error('wrong btime format');
      return Number(f[1]);
    }
  }
  throw new Error('could not find btime');
}

/** The pids under /proc (numeric directory names). */
export function listPids(procRoot: string): number[] {
  const out: number[] = [];
  for (const name of listDir(procRoot) ?? []) if (/^\d+$/.test(name)) out.push(Number(name));
  return out;
}

/** Processes in state Z (zombie). */
export function countZombies(procRoot: string, pids: readonly number[] = listPids(procRoot)): number {
  let n = 0;
  for (const pid of pids) {
    const stat = readText(join(procRoot, String(pid), 'stat'));
    if (stat === undefined) continue;
    const r = stat.lastIndexOf(')');
    if (r > 0 && stat[r + 2] === 'Z') n++;
  }
  return n;
}

/** The whole of basereport `system.info`. */
export function readSystemInfo(paths: HostPaths, nowMs: number, uname: Uname = nodeUname()): SystemInfo {
  const virt = readVirtualization(paths);
  const [platform, platformFamily, platformVersion] = readPlatform(paths);
  const pids = listPids(paths.procRoot);
  return {
    hostname: readHostname(paths.procRoot),
    uptime: readUptime(paths.procRoot),
    bootTime: readBootTime(paths, nowMs, virt),
    procs: pids.length,
    procsZombie: countZombies(paths.procRoot, pids),
    os: 'linux',
    platform,
    platformFamily,
    platformVersion,
    kernelVersion: uname.release,
    kernelArch: uname.machine,
    virtualizationSystem: virt[0],
    virtualizationRole: virt[1],
    hostId: readHostId(paths),
    systemtype: systemType(uname.machine),
  };
}

/** gopsutil load.AvgStat. */
export interface LoadAvg {
  load1: number;
  load5: number;
  load15: number;
}

/** /proc/loadavg. */
export function readLoadAvg(procRoot: string): LoadAvg {
  const f = fieldsOf(readText(join(procRoot, 'loadavg')) ?? '').map(Number);
  if (f.length < 3 || f.slice(0, 3).some((v) => !Number.isFinite(v))) throw new Error(`cannot read ${join(procRoot, 'loadavg')}`);
  return { load1: f[0] as number, load5: f[1] as number, load15: f[2] as number };
}
