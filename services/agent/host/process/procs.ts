/**
 * Process listing from /proc (the reference's procFSReader): per pid the parent, name, state, user,
 * command line, working directory, executable and start time, read straight from
 * /proc/<pid>/{stat,status,cmdline,exe,cwd} with the boot time and uid → name table cached.
 */
import { join } from 'node:path';
import { fieldsOf, listDir, readLink, readText, readUtf8 } from '../paths.ts';
import { CLOCK_TICKS } from '../cpu.ts';

/** One process's metadata (the reference's define.ProcStat without the performance parts). */
export interface ProcMeta {
  pid: number;
  ppid: number;
  name: string;
  /** sleeping, running, idle, stopped, zombie or unknown. */
  status: string;
  username: string;
  /** argv joined with spaces. */
  cmd: string;
  cmdSlice: string[];
  exe: string;
  cwd: string;
  /** Start time, ms since the epoch (boot time + start ticks, 10 ms resolution). */
  created: number;
}

/** The reference's procStateName. */
export function stateName(s: string): string {
  switch (s) {
    case 'S':
    case 'sleep':
    case 'sleeping':
      return 'sleeping';
    case 'R':
    case 'running':
      return 'running';
    case 'D':
    case 'I':
    case 'idle':
      return 'idle';
    case 'T':
    case 't':
    case 'stop':
    case 'stopped':
      return 'stopped';
    case 'Z':
    case 'zombie':
      return 'zombie';
    default:
      return 'unknown';
  }
}

/** The fields of /proc/<pid>/stat after the command name (`state` is field 3 of the file). */
export interface ProcStatFields {
  name: string;
  state: string;
  ppid: number;
  /** utime, stime in clock ticks. */
  utime: number;
  stime: number;
  /** starttime in clock ticks since boot. */
  startTicks: number;
}

export function parseProcStat(text: string): ProcStatFields | undefined {
  const line = text.trim();
  const left = line.indexOf('(');
  const right = line.lastIndexOf(')');
  if (left < 0 || right <= left) return undefined;
  const f = fieldsOf(line.slice(right + 1));
  if (f.length < 20) return undefined;
  const ppid = Number(f[1]);
  const startTicks = Number(f[19]);
  if (!Number.isInteger(ppid) || !Number.isFinite(startTicks)) return undefined;
  return { name: line.slice(left + 1, right), state: f[0] as string, ppid, utime: Number(f[11]) || 0, stime: Number(f[12]) || 0, startTicks };
}

const USER_CACHE_MS = 10 * 60_000;

export interface ProcReaderOptions {
  readonly procRoot: string;
  readonly etcRoot: string;
  /** ms since the epoch (username cache expiry). */
  readonly now?: () => number;
}

export class ProcReader {
  readonly #procRoot: string;
  readonly #etcRoot: string;
  readonly #now: () => number;
  #bootS: number | undefined;
  #users: { byUid: Map<string, string>; expires: number } | undefined;

  constructor(opts: ProcReaderOptions) {
    this.#procRoot = opts.procRoot;
    this.#etcRoot = opts.etcRoot;
    this.#now = opts.now ?? Date.now;
  }

  get procRoot(): string {
    return this.#procRoot;
  }

  /** The pids under /proc. */
  pids(): number[] {
    const out: number[] = [];
    for (const name of listDir(this.#procRoot) ?? []) if (/^\d+$/.test(name)) out.push(Number(name));
    return out.sort((a, b) => a - b);
  }

  /** `btime` of /proc/stat, s (cached). */
  bootTimeS(): number {
    if (this.#bootS !== undefined) return this.#bootS;
    for (const line of (readText(join(this.#procRoot, 'stat')) ?? '').split('\n')) {
      if (line.startsWith('btime ')) {
        const f = fieldsOf(line);
        if (f.length === 2) {
          this.#bootS = Number(f[1]);
          return this.#bootS;
        }
      }
    }
    throw new Error(`could not find btime in ${join(this.#procRoot, 'stat')}`);
  }

  /** A uid's user name from /etc/passwd (cached 10 minutes), the uid itself when unknown. */
  username(uid: string): string {
    if (uid === '') return '';
    const now = this.#now();
    if (!this.#users || now >= this.#users.expires) {
      const byUid = new Map<string, string>();
      for (const line of (readUtf8(join(this.#etcRoot, 'passwd')) ?? '').split('\n')) {
        const f = line.split(':');
        if (f.length >= 3 && !line.startsWith('#') && !byUid.has(f[2] as string)) byUid.set(f[2] as string, f[0] as string);
      }
      this.#users = { byUid, expires: now + USER_CACHE_MS };
    }
    const name = this.#users.byUid.get(uid);
    return name === undefined || name === '' ? uid : name;
  }

  /** The process's metadata; throws when it is gone or its stat cannot be parsed. */
  meta(pid: number): ProcMeta {
    const dir = join(this.#procRoot, String(pid));
    const statText = readText(join(dir, 'stat'));
    if (statText === undefined) throw new Error(`process ${pid} not found`);
    const stat = parseProcStat(statText);
    if (!stat) throw new Error(`invalid ${join(dir, 'stat')}`);
    const boot = this.bootTimeS();
    let statusName = '';
    let uid = '';
    for (const line of (readUtf8(join(dir, 'status')) ?? '').split('\n')) {
      if (line.startsWith('Name:')) statusName = line.slice(5).trim();
      else if (line.startsWith('Uid:')) uid = fieldsOf(line)[1] ?? '';
      if (statusName !== '' && uid !== '') break;
    }
    const raw = (readUtf8(join(dir, 'cmdline')) ?? '').replace(/\0+$/, '');
    const cmdSlice = raw === '' ? [] : raw.split('\0');
    const name = completeName(statusName !== '' ? statusName : stat.name, cmdSlice);
    return {
      pid,
      ppid: stat.ppid,
      name,
      status: stateName(stat.state),
      username: this.username(uid),
      cmd: cmdSlice.join(' '),
      cmdSlice,
      exe: readLink(join(dir, 'exe')) ?? '',
      cwd: readLink(join(dir, 'cwd')) ?? '',
      created: boot * 1000 + Math.floor((stat.startTicks * 1000) / CLOCK_TICKS),
    };
  }

  /** Every readable process (gone or unreadable ones are skipped), yielding to the event loop every `batch` pids. */
  async all(batch = 200): Promise<ProcMeta[]> {
    const out: ProcMeta[] = [];
    const pids = this.pids();
    for (let i = 0; i < pids.length; i++) {
      if (i > 0 && i % batch === 0) await new Promise<void>((r) => setImmediate(r));
      try {
        out.push(this.meta(pids[i] as number));
      } catch {
        // exited meanwhile
      }
    }
    return out;
  }
}

/** The kernel truncates `comm` to 15 characters: a name that long is completed from argv[0] when that extends it. */
export function completeName(name: string, cmdSlice: readonly string[]): string {
  if (name.length < 15 || cmdSlice.length === 0) return name;
  const argv0 = cmdSlice[0] as string;
  const base = argv0.slice(argv0.lastIndexOf('/') + 1);
  return base.startsWith(name) ? base : name;
}
