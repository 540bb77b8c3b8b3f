/**
 * Core dump alarms (type 7): the directory of `kernel.core_pattern` (or the configured
 * `corefile_pattern`) is watched; a new file is parsed against the pattern into dimensions (`%e`
 * executable, `%E` executable path with `!` for `/`, `%s` signal name, `%t` time) and reported — the first
 * of each executable/signal at once with `count` 1, later ones counted and sent once the 1-minute gap has
 * passed.
 */
import { type FSWatcher, lstatSync, watch } from 'node:fs';
import { join } from 'node:path';
import { goBase } from '../goformat.ts';
import { readText } from '../paths.ts';
import { type AlarmHost, EXCEPTION_TYPE, type Extra, extraOf } from './event.ts';

/** Linux signal numbers → names (x/sys/unix SignalName). */
const SIGNALS = [
  '', 'SIGHUP', 'SIGINT', 'SIGQUIT', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGKILL', 'SIGUSR1', 'SIGSEGV',
  'SIGUSR2', 'SIGPIPE', 'SIGALRM', 'SIGTERM', 'SIGSTKFLT', 'SIGCHLD', 'SIGCONT', 'SIGSTOP', 'SIGTSTP', 'SIGTTIN', 'SIGTTOU',
  'SIGURG', 'SIGXCPU', 'SIGXFSZ', 'SIGVTALRM', 'SIGPROF', 'SIGWINCH', 'SIGIO', 'SIGPWR', 'SIGSYS',
];

/** Specifiers whose value is a number. */
const NUMERIC = new Set(['%c', '%g', '%i', '%I', '%p', '%P', '%s', '%t', '%u']);
/** Specifiers that become dimensions. */
const DIMENSION: Record<string, string> = { '%e': 'executable', '%E': 'executable_path', '%s': 'signal', '%t': 'event_time' };

/**
 * Splits a core pattern into the directory to watch and the file name pattern. A pattern that does not
 * start with `/` (a relative name, or a `|` pipe to a helper such as systemd-coredump) has no directory.
 */
export function splitCorePattern(corePattern: string): { dir: string; pattern: string } | undefined {
  const text = corePattern.includes('\n') ? corePattern : `${corePattern}\n`;
  const ind = text.lastIndexOf('/');
  if (ind < 0 || text[0] !== '/') return undefined;
  const end = text.lastIndexOf('\n');
  return { dir: text.slice(0, ind), pattern: text.slice(ind + 1, end) };
}

/** The core pattern in effect: the configured one, else /proc/sys/kernel/core_pattern. */
export function readCorePattern(procRoot: string, configured: string): string | undefined {
  if (configured !== '') return configured;
  return readText(join(procRoot, 'sys/kernel/core_pattern'))?.replace(/\0+$/, '');
}

/** /proc/sys/kernel/core_uses_pid: whether the kernel appends `.<pid>` to core file names. */
export function readCoreUsesPid(procRoot: string): boolean | undefined {
  const t = readText(join(procRoot, 'sys/kernel/core_uses_pid'));
  return t === undefined || t === '' ? undefined : t[0] !== '0';
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** Parses core file names against a core pattern. */
export class CoreFileParser {
  readonly #pattern: string;
  readonly #usesPid: boolean;
  readonly #match: RegExp | undefined;
  readonly #lazy: RegExp | undefined;
  readonly #greedy: RegExp | undefined;
  readonly #names: string[] = [];

  /** `matchRegex`: when set, a file is a core file iff its base name matches (dimensions still come from the pattern). */
  constructor(pattern: string, usesPid: boolean, matchRegex?: RegExp) {
    this.#pattern = pattern;
    this.#usesPid = usesPid;
    this.#match = matchRegex;
    // Each specifier with the literal text before it; a specifier other than the first needs a delimiter.
    const parts = [...`${pattern}%z`.matchAll(/([\s\S]*?)(%[a-zA-Z])/g)].map((m) => [m[1] as string, m[2] as string] as const);
    if (parts.length < 1 || parts.slice(0, -1).some(([prefix], i) => i !== 0 && prefix === '')) return;
    const build = (greedy: boolean): string => {
      let re = '^';
      parts.forEach(([prefix, spec], i) => {
        if (i === parts.length - 1) {
          re += escapeRe(prefix);
          return;
        }
        const name = DIMENSION[spec];
        const body = (NUMERIC.has(spec) ? '\\d+' : '.*') + (greedy ? '' : '?');
        re += `${escapeRe(prefix)}(${body})`;
        if (greedy) this.#names.push(name ?? '');
      });
      return `${re}$`;
    };
    try {
      this.#greedy = new RegExp(build(true), 's');
      this.#lazy = new RegExp(build(false), 's');
    } catch {
      this.#greedy = undefined;
      this.#lazy = undefined;
    }
  }

  /**
   * The dimensions of a core file and whether it counts as one. Ambiguous parts (where lazy and greedy
   * matching disagree) are left out; with no usable pattern every file counts, without dimensions.
   */
  parse(filePath: string): { dimensions: Record<string, string>; ok: boolean } {
    const v0 = this.#parsePattern(filePath);
    if (this.#match) return { dimensions: v0.dimensions, ok: this.#match.test(goBase(filePath)) };
    return v0;
  }

  #parsePattern(filePath: string): { dimensions: Record<string, string>; ok: boolean } {
    let name = goBase(filePath);
    if (this.#usesPid && !this.#pattern.includes('%p')) {
      const dot = name.lastIndexOf('.');
      if (dot < 0) return { dimensions: {}, ok: false };
      name = name.slice(0, dot);
    }
    if (!this.#lazy || !this.#greedy) return { dimensions: {}, ok: true };
    const lazy = this.#lazy.exec(name);
    if (!lazy) return { dimensions: {}, ok: false };
    const greedy = this.#greedy.exec(name);
    const dims: Record<string, string> = {};
    this.#names.forEach((dim, i) => {
      const value = lazy[i + 1] ?? '';
      if (greedy && (greedy[i + 1] ?? '') !== value) return;
      if (dim !== '' && value !== '') dims[dim] = value;
    });
    if (dims['executable_path'] !== undefined) dims['executable_path'] = dims['executable_path'].replaceAll('!', '/');
    if (dims['signal'] !== undefined && /^[-+]?\d+$/.test(dims['signal'])) dims['signal'] = SIGNALS[Number(dims['signal'])] ?? '';
    if (dims['executable'] === undefined && dims['executable_path']) dims['executable'] = goBase(dims['executable_path']);
    return { dimensions: dims, ok: true };
  }
}

/** The extra of a core file. */
export function corefileExtra(host: AlarmHost, path: string, dimensions: Record<string, string>): Extra {
  return extraOf(host, EXCEPTION_TYPE.corefile, { corefile: path, filesize: 0, ...dimensions });
}

/** The aggregation of core file alarms per executable path / executable / signal. */
export class CoreAggregator {
  readonly #gapMs: number;
  readonly #entries = new Map<string, { timeMs: number; count: number; info: Extra }>();

  constructor(gapMs: number) {
    this.#gapMs = gapMs;
  }

  static key(extra: Extra): string {
    return ['executable_path', 'executable', 'signal'].map((k) => (typeof extra[k] === 'string' ? extra[k] : '')).join('-');
  }

  /** A new core file: returns the extra to send now (`count` set) or undefined when it is only counted. */
  add(extra: Extra, nowMs: number): Extra | undefined {
    const key = CoreAggregator.key(extra);
    const entry = this.#entries.get(key);
    if (!entry) {
      const sent = { ...extra, count: 1 };
      this.#entries.set(key, { timeMs: nowMs, count: 0, info: sent });
      return sent;
    }
    entry.count++;
    entry.info = { ...extra, count: entry.count };
    if (nowMs - entry.timeMs > this.#gapMs) {
      const sent = entry.info;
      entry.timeMs = nowMs;
      entry.count = 0;
      return sent;
    }
    return undefined;
  }

  /** Counted alarms whose gap has passed (each with its count), to send now. */
  flush(nowMs: number): Extra[] {
    const out: Extra[] = [];
    for (const entry of this.#entries.values()) {
      if (nowMs - entry.timeMs > this.#gapMs && entry.count > 0) {
        out.push({ ...entry.info, count: entry.count });
        entry.timeMs = nowMs;
        entry.count = 0;
      }
    }
    return out;
  }
}

/** Watches a directory for new files (inotify through fs.watch); re-pointable when the core pattern changes. */
export class CoreDirWatcher {
  readonly #onFile: (path: string) => void;
  readonly #onError: (err: unknown) => void;
  #watcher: FSWatcher | undefined;
  #dir: string | undefined;

  constructor(onFile: (path: string) => void, onError: (err: unknown) => void) {
    this.#onFile = onFile;
    this.#onError = onError;
  }

  get dir(): string | undefined {
    return this.#watcher ? this.#dir : undefined;
  }

  /** Watches `dir` (replacing a previous watch); false when it cannot be watched (retried by the caller). */
  watch(dir: string): boolean {
    if (this.#watcher && this.#dir === dir) return true;
    this.close();
    this.#dir = dir;
    try {
      const w = watch(dir, { persistent: false }, (event, name) => {
        if (event !== 'rename' || name === null) return;
        const path = join(dir, name);
        try {
          if (lstatSync(path).isDirectory()) return;
        } catch {
          return; // removed again, or a deletion
        }
        this.#onFile(path);
      });
      w.on('error', (err) => {
        this.#onError(err);
        this.close();
      });
      this.#watcher = w;
      return true;
    } catch (err) {
      this.#onError(err);
      return false;
    }
  }

  close(): void {
    this.#watcher?.close();
    this.#watcher = undefined;
  }
}
