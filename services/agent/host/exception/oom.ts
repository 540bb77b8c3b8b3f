/**
 * Out-of-memory alarms (type 9) from the kernel log (/dev/kmsg): an `invoked oom-killer:` line opens a
 * block, which ends at the `oom-kill:constraint=…` summary (kernels ≥ 5.0) or the `Killed process N (name)`
 * line; kills are counted per process name and sent every `oom_report_gap`.
 */
import { closeSync, constants, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { exists, fieldsOf, type HostPaths, onRootfs, readText } from '../paths.ts';
import { type AlarmHost, EXCEPTION_TYPE, type Extra, extraOf } from './event.ts';

/** One /dev/kmsg record: `priority,sequence,timestamp_us,flags;message` (continuation lines dropped). */
export interface KmsgRecord {
  priority: number;
  sequence: number;
  /** µs since boot. */
  timestampUs: number;
  message: string;
}

export function parseKmsgRecord(text: string): KmsgRecord | undefined {
  const semi = text.indexOf(';');
  if (semi < 0) return undefined;
  const head = text.slice(0, semi).split(',');
  if (head.length < 4) return undefined;
  const [priority, sequence, ts] = head.map(Number);
  if (![priority, sequence, ts].every((n) => Number.isFinite(n))) return undefined;
  const nl = text.indexOf('\n', semi);
  return { priority: priority as number, sequence: sequence as number, timestampUs: ts as number, message: text.slice(semi + 1, nl < 0 ? undefined : nl) };
}

/** One OOM kill (the reference's OomInstance). */
export interface OomKill {
  pid: number;
  processName: string;
  /** ms since the epoch. */
  timeOfDeathMs: number;
  /** The memory cgroup that ran out (`oom_memcg`), `/` for the whole machine. */
  containerName: string;
  /** The victim's cgroup (`task_memcg`). */
  victimContainerName: string;
  /** CONSTRAINT_NONE, CONSTRAINT_MEMCG, … ('' on kernels before 5.0). */
  constraint: string;
}

const FIRST = /invoked oom-killer:/;
const SUMMARY = /oom-kill:constraint=(.*),nodemask=(.*),cpuset=(.*),mems_allowed=(.*),oom_memcg=(.*),task_memcg=(.*),task=(.*),pid=(.*),uid=(.*)/;
const LEGACY = /Task in (.*) killed as a result of limit of (.*)/;
const KILLED = /Killed process ([0-9]+) \((.+)\)/;

const cleanPath = (p: string): string => {
  const parts: string[] = [];
  for (const s of `/${p}`.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') parts.pop();
    else parts.push(s);
  }
  return `/${parts.join('/')}`;
};

/** Turns kernel log messages into OOM kills (the reference's StreamOoms state machine, cadvisor's oomparser). */
export class OomParser {
  #current: OomKill | undefined;

  /** Feeds one message logged at `timeMs`; returns a kill when this message completes one. */
  feed(message: string, timeMs: number): OomKill | undefined {
    if (!this.#current) {
      if (FIRST.test(message)) this.#current = { pid: 0, processName: '', timeOfDeathMs: timeMs, containerName: '/', victimContainerName: '/', constraint: '' };
      return undefined;
    }
    const cur = this.#current;
    let finished = false;
    const s = SUMMARY.exec(message);
    if (s) {
      cur.containerName = s[5] as string;
      cur.victimContainerName = s[6] as string;
      cur.constraint = s[1] as string;
      cur.pid = Number(s[8]);
      cur.processName = s[7] as string;
      finished = true;
    } else {
      const legacy = LEGACY.exec(message);
      if (legacy) {
        cur.victimContainerName = cleanPath(legacy[1] as string);
        cur.containerName = cleanPath(legacy[2] as string);
      }
      const k = KILLED.exec(message);
      if (k) {
        cur.pid = Number(k[1]);
        cur.processName = k[2] as string;
        finished = true;
      }
    }
    if (!finished) return undefined;
    cur.timeOfDeathMs = timeMs;
    this.#current = undefined;
    return cur;
  }
}

/** Kills counted per process name between reports. */
export class OomAggregator {
  readonly #startupS: number;
  readonly #events = new Map<string, Extra>();

  /** Kills before `startupMs` (older kernel log lines) are ignored. */
  constructor(startupMs: number) {
    this.#startupS = Math.floor(startupMs / 1000);
  }

  add(host: AlarmHost, kill: OomKill): void {
    if (Math.floor(kill.timeOfDeathMs / 1000) < this.#startupS) return;
    const seen = this.#events.get(kill.processName);
    if (seen) {
      seen['total'] = (seen['total'] as number) + 1;
      return;
    }
    this.#events.set(
      kill.processName,
      extraOf(host, EXCEPTION_TYPE.outOfMemory, {
        total: 1,
        process: kill.processName,
        oom_memcg: kill.containerName,
        task_memcg: kill.victimContainerName,
        task: kill.processName,
        constraint: kill.constraint,
        message: '系统发生OOM异常事件',
      }),
    );
  }

  /** The counted alarms, emptied. */
  flush(): Extra[] {
    const out = [...this.#events.values()];
    this.#events.clear();
    return out;
  }
}

/**
 * Whether OOM collection is off for this host as the reference decides it: the IEG docker marker
 * `/etc/ieg-docker.conf`, or running in docker (`/.dockerenv` with a read-only cgroup mount or a pid 1
 * that is not the host's init).
 */
export function oomDisabledReason(paths: HostPaths): string | undefined {
  if (exists(join(paths.etcRoot, 'ieg-docker.conf'))) return 'IEG docker marker /etc/ieg-docker.conf exists';
  if (!exists(onRootfs(paths, '/.dockerenv'))) return undefined;
  const mounts = readText(join(paths.procRoot, 'self/mounts')) ?? '';
  const cgroupRo = mounts.split('\n').some((line) => {
    const p = line.split(' ');
    return p.length >= 5 && p[0] === 'cgroup' && (p[3] as string).split(',').includes('ro');
  });
  if (cgroupRo) return 'running in docker (read-only cgroup mount)';
  const sched = (readText(join(paths.procRoot, '1/sched')) ?? '').split('\n')[0] ?? '';
  const rest = sched.split(' ').slice(1).join(' ');
  const l = rest.indexOf('(');
  const r = rest.indexOf(',');
  if (l + 1 < r && /^\d+$/.test(rest.slice(l + 1, r)) && Number(rest.slice(l + 1, r)) !== 1) return 'running in docker (pid 1 is not init)';
  return undefined;
}

/**
 * Non-blocking reader of /dev/kmsg: each `read(2)` returns one record; `drain` reads until the buffer is
 * empty. Record times are boot time + the record's µs (boot time from /proc/uptime at open).
 */
export class KmsgReader {
  readonly #fd: number;
  readonly #bootMs: number;
  readonly #buf = Buffer.alloc(16 * 1024);

  /** Opens the device; throws the open error (EPERM/EACCES without CAP_SYSLOG, ENOENT in some containers). */
  constructor(paths: HostPaths, nowMs: number) {
    this.#fd = openSync(join(paths.devRoot, 'kmsg'), constants.O_RDONLY | constants.O_NONBLOCK);
    const uptime = Number(fieldsOf(readText(join(paths.procRoot, 'uptime')) ?? '')[0]);
    this.#bootMs = nowMs - (Number.isFinite(uptime) ? uptime * 1000 : 0);
  }

  /** Every record available now (stops at EAGAIN; records overwritten before reading (EPIPE) are skipped). */
  drain(max = 100_000): { record: KmsgRecord; timeMs: number }[] {
    const out: { record: KmsgRecord; timeMs: number }[] = [];
    while (out.length < max) {
      let n: number;
      try {
        n = readSync(this.#fd, this.#buf, 0, this.#buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') break;
        throw err;
      }
      if (n <= 0) break;
      const record = parseKmsgRecord(this.#buf.toString('utf8', 0, n));
      if (record) out.push({ record, timeMs: this.#bootMs + record.timestampUs / 1000 });
    }
    return out;
  }

  close(): void {
    try {
      closeSync(this.#fd);
    } catch {
      // already closed
    }
  }
}
