/**
 * basereport's `env` section: open-file limits, kernel version string, logged-in terminals, scheduler
 * counters from /proc/stat, and — when enabled — crontabs, /etc/hosts and the routing table.
 */
import { endianness } from 'node:os';
import { join } from 'node:path';
import { fieldsOf, type HostPaths, listDir, onRootfs, readLines, readText, readUtf8 } from './paths.ts';

/** basereport `env` (the reference's EnvReport). */
export interface EnvReport {
  /** `null` when crontab reporting is on but the spool directory cannot be listed (the reference's nil slice). */
  crontab: { user: string; content: string }[] | null;
  host: string;
  route: string;
  maxfiles: number;
  allocated_files: number;
  uname: string;
  login_user: number;
  proc_running_current: number;
  procs_blocked_current: number;
  procs_processes_total: number;
  procs_ctxt_total: number;
}

export interface EnvOptions {
  readonly reportCrontab: boolean;
  readonly reportHosts: boolean;
  readonly reportRoute: boolean;
}

/** Crontabs of /var/spool/cron/ (one entry per file: user = file name). */
export function listCrontab(paths: HostPaths): { user: string; content: string }[] | undefined {
  const dir = onRootfs(paths, '/var/spool/cron/');
  const names = listDir(dir);
  if (!names) return undefined;
  const out: { user: string; content: string }[] = [];
  for (const name of names) {
    const content = readUtf8(join(dir, name));
    if (content !== undefined) out.push({ user: name, content });
  }
  return out;
}

const LITTLE = endianness() === 'LE';
function hexIpv4(hex: string): string {
  const n = parseInt(hex, 16) >>> 0;
  const b = [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
  return (LITTLE ? b.reverse() : b).join('.');
}

/**
 * The IPv4 routing table as `route -n` prints it (net-tools' layout), built from /proc/net/route — the
 * reference runs the command; reading the table needs no external binary.
 */
export function renderRouteTable(procRoot: string): string | undefined {
  const lines = readLines(join(procRoot, 'net/route'));
  if (!lines) return undefined;
  const pad = (s: string | number, n: number): string => String(s).padEnd(n);
  let out = 'Kernel IP routing table\nDestination     Gateway         Genmask         Flags Metric Ref    Use Iface\n';
  for (const line of lines.slice(1)) {
    const f = fieldsOf(line);
    if (f.length < 8) continue;
    const flagsN = parseInt(f[3] as string, 16);
    let flags = '';
    if (flagsN & 0x1) flags += 'U';
    if (flagsN & 0x2) flags += 'G';
    if (flagsN & 0x200) flags = `!${flags}`;
    if (flagsN & 0x4) flags += 'H';
    if (flagsN & 0x8) flags += 'R';
    if (flagsN & 0x10) flags += 'D';
    if (flagsN & 0x20) flags += 'M';
    out +=
      `${pad(hexIpv4(f[1] as string), 15)} ${pad(hexIpv4(f[2] as string), 15)} ${pad(hexIpv4(f[7] as string), 15)} ` +
      `${pad(flags, 5)} ${pad(Number(f[6]), 6)} ${pad(Number(f[4]), 2)} ${String(Number(f[5])).padStart(7)} ${f[0]}\n`;
  }
  return out;
}

/** The value after `name` in /proc/stat (the reference's `name\s+[0-9]+` search), 0 when absent. */
function statValue(stat: string, name: string): number {
  const m = new RegExp(`${name}\\s+([0-9]+)`).exec(stat);
  return m ? Number(m[1]) : 0;
}

/** Collects `env`; problems (unreadable files) are returned beside a report holding what could be read. */
export function readEnv(paths: HostPaths, opts: EnvOptions): { report: EnvReport; errors: string[] } {
  const errors: string[] = [];
  const report: EnvReport = {
    crontab: [],
    host: '',
    route: '',
    maxfiles: 0,
    allocated_files: 0,
    uname: '',
    login_user: 0,
    proc_running_current: 0,
    procs_blocked_current: 0,
    procs_processes_total: 0,
    procs_ctxt_total: 0,
  };
  if (opts.reportCrontab) {
    report.crontab = listCrontab(paths) ?? null;
    if (report.crontab === null) errors.push('cannot list /var/spool/cron/');
  }
  if (opts.reportHosts) {
    const hosts = readUtf8(join(paths.etcRoot, 'hosts'));
    if (hosts === undefined) errors.push('cannot read /etc/hosts');
    report.host = hosts ?? '';
  }
  if (opts.reportRoute) {
    const route = renderRouteTable(paths.procRoot);
    if (route === undefined) errors.push('cannot read /proc/net/route');
    report.route = route ?? '';
  }
  const fileMax = readText(join(paths.procRoot, 'sys/fs/file-max'));
  const max = Number((fileMax ?? '').split('\n')[0]);
  if (fileMax === undefined || !Number.isFinite(max)) errors.push('cannot read /proc/sys/fs/file-max');
  else report.maxfiles = max;
  const fileNr = (readText(join(paths.procRoot, 'sys/fs/file-nr')) ?? '').trim().split('\t');
  if (fileNr.length < 3 || !/^\d+$/.test(fileNr[0] as string)) errors.push('cannot read /proc/sys/fs/file-nr');
  else report.allocated_files = Number(fileNr[0]);
  report.uname = readText(join(paths.procRoot, 'version')) ?? '';
  const pts = listDir(join(paths.devRoot, 'pts'));
  if (!pts) errors.push('cannot list /dev/pts');
  else report.login_user = pts.filter((n) => /^[-+]?\d+$/.test(n)).length;
  const stat = readText(join(paths.procRoot, 'stat'));
  if (stat === undefined) errors.push('cannot read /proc/stat');
  else {
    report.proc_running_current = statValue(stat, 'procs_running');
    report.procs_blocked_current = statValue(stat, 'procs_blocked');
    report.procs_processes_total = statValue(stat, 'processes');
    report.procs_ctxt_total = statValue(stat, 'ctxt');
  }
  return { report, errors };
}
