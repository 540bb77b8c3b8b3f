/**
 * The keyword scheduler's one shared file input (reference tasks/keyword/input, §A2.5 / §A5.11): every
 * keyword task subscribes with its globs; the input scans them, tails each matched file once, and hands
 * every subscriber whose globs match a file the file's new lines, decoded in the subscriber's encoding.
 *
 * Files are tracked by identity (device + inode), not by name:
 * - rotation by rename: the renamed file keeps its offset (under its new name if a glob still matches it,
 *   otherwise it is read to its end and closed); the new file at the old name is a new identity;
 * - copy-truncate: a size below the offset restarts the file at 0;
 * - `close_inactive`: a file not modified for that long is closed (its state kept) and reopened when it
 *   changes; `exclude_files` (regexes on the path) are never opened;
 * - where a new file starts (reference): found by a periodic rescan → from the start, unless not modified
 *   in the last minute (then from the end); found because tasks started or changed → the end minus
 *   `retain_file_bytes` (0 on the process's first scan), moved forward to the next line start so no
 *   partial line is read; a known identity → its tracked offset.
 *
 * Offsets: each subscriber acknowledges, after it published a report, everything dispatched to it so far
 * (`commit`); a file's persisted offset is the smallest acknowledged offset of its subscribers, written to
 * the agent's state store (`keyword_file_<dev>_<ino>`) with the save time. On start a persisted identity
 * resumes at its offset (0 if the file is now shorter), and a file never seen but created or modified after
 * the last save is read from the start — so a restart neither re-reads what was reported nor skips what
 * was written meanwhile.
 *
 * Lines end at `\n` (a trailing `\r` is removed); a partial last line waits for its newline; a line longer
 * than {@link MAX_LINE_BYTES} is cut there and the rest of it skipped.
 *
 * Reading: each open file is read in chunks of up to {@link READ_CHUNK} bytes into one reused buffer; a
 * chunk that filled the buffer is followed at once by the next, a short read (the end of the file) waits for
 * the poll interval (or a wake-up), so a file appended at full speed is read in large batches. A file at its
 * end is stat'ed before reading (size check, truncation); while it has more, it is read without. Complete
 * lines go to subscribers in pieces of at most {@link DISPATCH_BYTES}, either decoded (`onLines`) or as a
 * {@link LineBatch} (`onBatch`: the bytes, and the decoded text or lines on demand, decoded once per
 * encoding and piece).
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import iconv from 'iconv-lite';
import type { Logger } from '../../common/log.ts';
import type { StateStore } from '../task.ts';
import { glob } from './glob.ts';

/** Lines are cut at 1 MiB. */
export const MAX_LINE_BYTES = 1024 * 1024;
/** Reference rescan interval. */
export const DEFAULT_SCAN_INTERVAL_MS = 5_000;
/** How often open files are checked for new data when idle (reference tail poll: 100 ms). */
export const DEFAULT_POLL_INTERVAL_MS = 100;
/** Bytes read at a time from a file. */
export const READ_CHUNK = 1024 * 1024;
/**
 * Lines are handed to subscribers in pieces of at most this many bytes (cut at newlines): their decoded
 * text then stays below V8's large-object size and dies young instead of driving full collections.
 */
export const DISPATCH_BYTES = 64 * 1024;
const STATE_PREFIX = 'keyword_file_';
const SAVED_AT_KEY = 'keyword_saved_at';
/** How far file times may lag the clock that stamped the last save (kernel coarse time). */
const SAVE_CLOCK_SLACK_MS = 1_000;
/** Persisted offsets expire after 30 days without a save. */
const STATE_TTL_MS = 30 * 24 * 3_600_000;

export interface TailSubscriber {
  readonly id: string;
  /** Globs (Go filepath.Glob). */
  readonly paths: readonly string[];
  readonly exclude: readonly RegExp[];
  /** iconv-lite encoding name; 'utf-8' reads natively. */
  readonly encoding: string;
  readonly closeInactiveMs: number;
  readonly retainFileBytes: number;
  /**
   * Complete lines of `file` (decoded), in order. Called synchronously by the read loop. A subscriber
   * gives this or {@link onBatch} (which wins when both are given).
   */
  onLines?(file: string, lines: readonly string[]): void;
  /** Complete lines of `file`, in order, as a batch (bytes + lines on demand). Called synchronously. */
  onBatch?(file: string, batch: LineBatch): void;
}

/** One dispatch of complete lines. */
export interface LineBatch {
  /**
   * The lines' bytes: lines separated by `\n`, without the last line's newline (a trailing `\r` of each
   * line still there). Valid only during the call: the input reuses its read buffer.
   */
  readonly bytes: Buffer;
  /** The subscriber's encoding. */
  readonly encoding: string;
  /** `bytes` decoded in `encoding` (`\r` still there) — decoded once per encoding and dispatch. */
  text(): string;
  /** The lines of {@link text}, trailing `\r` removed — split once per encoding and dispatch. */
  lines(): readonly string[];
}

/** The number of lines in `text` (lines separated by `\n`, the last one without it). */
export function countLines(text: string): number {
  let n = 1;
  for (let p = text.indexOf('\n'); p >= 0; p = text.indexOf('\n', p + 1)) n++;
  return n;
}

/** `text` split into lines at `\n`, a trailing `\r` of each removed. */
export function splitLines(text: string): string[] {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const l = lines[i] as string;
    if (l.charCodeAt(l.length - 1) === 13) lines[i] = l.slice(0, -1);
  }
  return lines;
}

interface Decoded {
  text: string;
  lines: string[] | undefined;
}

/** What the subscribers of one dispatch share: the piece decoded once per encoding (made on first use). */
export interface PieceCache {
  decoded: Map<string, Decoded> | undefined;
}

class PieceBatch implements LineBatch {
  readonly bytes: Buffer;
  readonly encoding: string;
  readonly #shared: PieceCache;

  constructor(bytes: Buffer, encoding: string, shared: PieceCache) {
    this.bytes = bytes;
    this.encoding = encoding;
    this.#shared = shared;
  }

  #decoded(): Decoded {
    const all = (this.#shared.decoded ??= new Map<string, Decoded>());
    let d = all.get(this.encoding);
    if (!d) {
      d = { text: this.encoding === 'utf-8' ? this.bytes.toString('utf8') : iconv.decode(this.bytes, this.encoding), lines: undefined };
      all.set(this.encoding, d);
    }
    return d;
  }

  text(): string {
    return this.#decoded().text;
  }

  lines(): readonly string[] {
    const d = this.#decoded();
    return (d.lines ??= splitLines(d.text));
  }
}

/**
 * The batch of `bytes` for a subscriber reading `encoding` (what the input hands to `onBatch`); `shared`
 * shares the decoding between the subscribers of one dispatch.
 */
export function lineBatch(bytes: Buffer, encoding: string, shared: PieceCache = { decoded: undefined }): LineBatch {
  return new PieceBatch(bytes, encoding, shared);
}

interface TrackedFile {
  key: string;
  path: string;
  dev: number;
  ino: number;
  /** Bytes handed out (end of the last complete line). */
  offset: number;
  fh: FileHandle | undefined;
  /** Bytes read past `offset`, waiting for a newline. */
  carry: Buffer;
  skippingLongLine: boolean;
  subs: Set<string>;
  acked: Map<string, number>;
  mtimeMs: number;
  /** Not found by the last scan (renamed away or deleted): drained, then closed. */
  orphan: boolean;
  inactive: boolean;
  /** Size at the previous scan, for orphans. */
  lastSize: number;
  /** The last read reached the end of the file (the next read is preceded by a stat). */
  atEnd: boolean;
}

interface Found {
  path: string;
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  birthtimeMs: number;
}

export interface TailInputOptions {
  state: StateStore;
  logger: Logger;
  scanIntervalMs?: number;
  pollIntervalMs?: number;
  now?: () => number;
}

function keyOf(dev: number, ino: number): string {
  return `${dev}_${ino}`;
}

export class TailInput {
  readonly #state: StateStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #subs = new Map<string, TailSubscriber>();
  readonly #files = new Map<string, TrackedFile>();
  #scanIntervalMs: number;
  readonly #pollIntervalMs: number;
  #firstScan = true;
  #lastSavedAt: number | undefined;
  #running = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #nextScanAt = 0;
  #pendingTaskScan = false;
  #readBuffer: Buffer = Buffer.alloc(0);
  /** Scans completed (tests wait for the first). */
  scans = 0;

  constructor(options: TailInputOptions) {
    this.#state = options.state;
    this.#log = options.logger.child({ component: 'agent.keyword.input' });
    this.#now = options.now ?? Date.now;
    this.#scanIntervalMs = options.scanIntervalMs ?? DEFAULT_SCAN_INTERVAL_MS;
    this.#pollIntervalMs = options.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS;
  }

  get subscriberCount(): number {
    return this.#subs.size;
  }

  /** Lowers the rescan interval to what a subscriber asks for (the smallest wins). */
  requestScanInterval(ms: number): void {
    this.#scanIntervalMs = Math.max(10, Math.min(this.#scanIntervalMs, ms));
  }

  /** Adds a subscriber and scans at once (a "task change" scan). Returns the unsubscribe function. */
  subscribe(sub: TailSubscriber): () => Promise<void> {
    this.#subs.set(sub.id, sub);
    this.#pendingTaskScan = true;
    this.#nextScanAt = 0;
    if (!this.#running) {
      this.#running = true;
      const saved = Number(this.#state.get(SAVED_AT_KEY));
      this.#lastSavedAt = Number.isFinite(saved) && saved > 0 ? saved : undefined;
      this.#loop = this.#run();
    } else this.#wake?.();
    return async () => {
      this.#subs.delete(sub.id);
      for (const f of this.#files.values()) {
        f.subs.delete(sub.id);
        f.acked.delete(sub.id);
      }
      if (this.#subs.size === 0) await this.stop();
    };
  }

  /** The subscriber published everything dispatched to it so far: persist what all subscribers have. */
  commit(subId: string): void {
    const now = this.#now();
    for (const f of this.#files.values()) {
      if (!f.subs.has(subId)) continue;
      f.acked.set(subId, f.offset);
      this.#persist(f, now);
    }
    this.#state.set(SAVED_AT_KEY, String(now), STATE_TTL_MS);
  }

  #persist(f: TrackedFile, now: number): void {
    let min = Infinity;
    for (const s of f.subs) min = Math.min(min, f.acked.get(s) ?? Infinity);
    if (min === Infinity) return;
    this.#state.set(`${STATE_PREFIX}${f.key}`, JSON.stringify({ path: f.path, offset: min, at: now }), STATE_TTL_MS);
  }

  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    for (const f of this.#files.values()) await this.#close(f);
    this.#files.clear();
    this.#firstScan = true;
  }

  async #run(): Promise<void> {
    while (this.#running) {
      try {
        if (this.#now() >= this.#nextScanAt) {
          const taskChange = this.#pendingTaskScan;
          this.#pendingTaskScan = false;
          await this.#scan(taskChange);
          this.scans++;
          this.#nextScanAt = this.#now() + this.#scanIntervalMs;
        }
        const more = await this.#readAll();
        if (more) continue;
      } catch (err) {
        this.#log.warn('keyword input loop error', { err: (err as Error).message });
      }
      if (!this.#running) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(this.#pollIntervalMs, Math.max(0, this.#nextScanAt - this.#now())));
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.#wake = done;
      });
      this.#wake = undefined;
    }
  }

  /** Globs of all subscribers → identities, with the subscribers matching each. */
  async #find(): Promise<Map<string, { found: Found; subs: Set<string> }>> {
    const out = new Map<string, { found: Found; subs: Set<string> }>();
    for (const sub of this.#subs.values()) {
      for (const pattern of sub.paths) {
        let paths: string[];
        try {
          paths = await glob(pattern);
        } catch (err) {
          this.#log.warn('bad keyword path pattern', { pattern, err: (err as Error).message });
          continue;
        }
        for (const p of paths) {
          if (sub.exclude.some((re) => re.test(p))) continue;
          let st;
          try {
            st = await stat(p);
          } catch {
            continue;
          }
          if (!st.isFile()) continue;
          const key = keyOf(st.dev, st.ino);
          let e = out.get(key);
          if (!e) {
            e = { found: { path: p, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, birthtimeMs: st.birthtimeMs }, subs: new Set() };
            out.set(key, e);
          }
          e.subs.add(sub.id);
        }
      }
    }
    return out;
  }

  async #scan(taskChange: boolean): Promise<void> {
    const found = await this.#find();
    const now = this.#now();
    const first = this.#firstScan;
    this.#firstScan = false;
    for (const [key, { found: fi, subs }] of found) {
      let f = this.#files.get(key);
      if (!f) {
        f = {
          key,
          path: fi.path,
          dev: fi.dev,
          ino: fi.ino,
          offset: this.#startOffset(key, fi, taskChange, first, subs, now),
          fh: undefined,
          carry: Buffer.alloc(0),
          skippingLongLine: false,
          subs: new Set(),
          acked: new Map(),
          mtimeMs: fi.mtimeMs,
          orphan: false,
          inactive: false,
          lastSize: fi.size,
          atEnd: true,
        };
        if (f.offset > 0 && f.offset < fi.size) f.offset = await this.#lineStart(fi.path, f.offset);
        this.#files.set(key, f);
        this.#log.debug('tailing file', { file: fi.path, offset: f.offset });
      } else if (f.path !== fi.path) {
        this.#log.info('file renamed; continuing at its offset', { from: f.path, to: fi.path, offset: f.offset });
        f.path = fi.path;
      }
      f.orphan = false;
      f.mtimeMs = fi.mtimeMs;
      for (const s of subs) {
        if (!f.subs.has(s)) {
          f.subs.add(s);
          f.acked.set(s, f.offset);
        }
      }
      for (const s of [...f.subs]) if (!subs.has(s)) f.subs.delete(s);
      const ttl = Math.max(...[...f.subs].map((s) => this.#subs.get(s)?.closeInactiveMs ?? 0));
      const idle = now - fi.mtimeMs > ttl && ttl > 0 && fi.size <= f.offset;
      if (idle && !f.inactive) {
        f.inactive = true;
        await this.#close(f);
        this.#log.debug('file inactive; closed', { file: f.path });
      } else if (!idle && f.inactive) {
        f.inactive = false;
        this.#log.debug('file active again; reopening', { file: f.path, offset: f.offset });
      }
    }
    for (const [key, f] of this.#files) {
      if (found.has(key)) continue;
      if (!f.orphan) {
        f.orphan = true;
        f.lastSize = -1;
        continue;
      }
      // an orphan is dropped once it stopped growing and was read to its end
      const size = f.fh ? (await f.fh.stat().catch(() => undefined))?.size : undefined;
      if (size === undefined || (size === f.lastSize && f.offset + f.carry.length >= size)) {
        await this.#close(f);
        this.#files.delete(key);
        this.#state.delete(`${STATE_PREFIX}${key}`);
        this.#log.debug('file gone; closed', { file: f.path });
      } else f.lastSize = size;
    }
  }

  #startOffset(key: string, fi: Found, taskChange: boolean, first: boolean, subs: Set<string>, now: number): number {
    const saved = this.#state.get(`${STATE_PREFIX}${key}`);
    if (saved !== undefined) {
      try {
        const { offset } = JSON.parse(saved) as { offset: number };
        return offset <= fi.size ? offset : 0;
      } catch {
        // fall through
      }
    }
    if (first && this.#lastSavedAt !== undefined) {
      // file times come from the kernel's coarse clock: allow for it lagging the save time a little
      const since = this.#lastSavedAt - SAVE_CLOCK_SLACK_MS;
      const born = fi.birthtimeMs > 0 ? fi.birthtimeMs : fi.mtimeMs;
      if (born >= since || fi.mtimeMs >= since) return 0;
    }
    if (taskChange) {
      let retain = 0;
      if (!first) for (const s of subs) retain = Math.max(retain, this.#subs.get(s)?.retainFileBytes ?? 0);
      return Math.max(0, fi.size - retain);
    }
    return now - fi.mtimeMs > 60_000 ? fi.size : 0;
  }

  /** `offset` moved to the start of the next line unless it already is one. */
  async #lineStart(path: string, offset: number): Promise<number> {
    let fh: FileHandle | undefined;
    try {
      fh = await open(path, 'r');
      const buf = Buffer.alloc(64 * 1024);
      let pos = offset - 1;
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) return pos;
        const nl = buf.subarray(0, bytesRead).indexOf(10);
        if (nl >= 0) return pos + nl + 1;
        pos += bytesRead;
      }
    } catch {
      return offset;
    } finally {
      await fh?.close();
    }
  }

  async #close(f: TrackedFile): Promise<void> {
    const fh = f.fh;
    f.fh = undefined;
    f.carry = Buffer.alloc(0);
    f.skippingLongLine = false;
    f.atEnd = true;
    await fh?.close().catch(() => undefined);
  }

  /** Reads one chunk of every open file. True when a file may have more to read at once. */
  async #readAll(): Promise<boolean> {
    let more = false;
    for (const f of this.#files.values()) {
      if (!this.#running) break;
      if (f.inactive || f.subs.size === 0) continue;
      if (!f.fh) {
        try {
          f.fh = await open(f.path, 'r');
          const st = await f.fh.stat();
          if (keyOf(st.dev, st.ino) !== f.key) {
            await this.#close(f);
            continue;
          }
        } catch {
          f.fh = undefined;
          continue;
        }
      }
      if (await this.#readFile(f)) more = true;
    }
    return more;
  }

  /** The reused read buffer, at least `size` bytes. */
  #buffer(size: number): Buffer {
    if (this.#readBuffer.length < size) this.#readBuffer = Buffer.allocUnsafe(Math.max(size, READ_CHUNK + 64 * 1024));
    return this.#readBuffer;
  }

  /**
   * Reads the next chunk of `f` and dispatches its complete lines. True when the chunk filled the buffer
   * (more may follow at once) or the file was truncated (read again from the start).
   */
  async #readFile(f: TrackedFile): Promise<boolean> {
    const fh = f.fh as FileHandle;
    const carry = f.carry.length;
    const pos = f.offset + carry;
    if (f.atEnd) {
      const st = await fh.stat();
      if (st.size < f.offset) {
        this.#log.info('file truncated; reading from the start', { file: f.path, size: st.size, offset: f.offset });
        f.offset = 0;
        f.carry = Buffer.alloc(0);
        f.skippingLongLine = false;
        return true;
      }
      if (st.size <= pos) return false;
    }
    const buf = this.#buffer(carry + READ_CHUNK);
    if (carry > 0) f.carry.copy(buf, 0);
    const { bytesRead } = await fh.read(buf, carry, READ_CHUNK, pos);
    const more = bytesRead === READ_CHUNK;
    f.atEnd = !more;
    if (bytesRead === 0) return false;
    const data = buf.subarray(0, carry + bytesRead);
    let start = 0;
    if (carry > 0 && !f.skippingLongLine) {
      const nl = data.indexOf(10);
      if (nl > MAX_LINE_BYTES) {
        this.#dispatch(f, data.subarray(0, MAX_LINE_BYTES));
        start = nl + 1;
      }
    }
    if (f.skippingLongLine) {
      const nl = data.indexOf(10);
      if (nl < 0) {
        f.offset += data.length;
        f.carry = Buffer.alloc(0);
        return more;
      }
      f.skippingLongLine = false;
      start = nl + 1;
    }
    const last = data.lastIndexOf(10);
    if (last < start) {
      const partial = data.subarray(start);
      if (partial.length >= MAX_LINE_BYTES) {
        this.#dispatch(f, partial.subarray(0, MAX_LINE_BYTES));
        f.offset += data.length;
        f.carry = Buffer.alloc(0);
        f.skippingLongLine = true;
      } else {
        f.offset += start;
        f.carry = Buffer.from(partial);
      }
      return more;
    }
    this.#dispatch(f, data.subarray(start, last));
    f.offset += last + 1;
    f.carry = last + 1 < data.length ? Buffer.from(data.subarray(last + 1)) : Buffer.alloc(0);
    return more;
  }

  /**
   * Hands complete lines (`region`: lines separated by newlines, without the last newline; a line cut at
   * MAX_LINE_BYTES holds none) to the file's subscribers, in pieces of at most {@link DISPATCH_BYTES} cut at
   * newlines (a longer line is one piece).
   */
  #dispatch(f: TrackedFile, region: Buffer): void {
    for (let a = 0; ; ) {
      let b = region.length;
      if (b - a > DISPATCH_BYTES) {
        b = region.lastIndexOf(10, a + DISPATCH_BYTES);
        if (b < a) b = region.indexOf(10, a + DISPATCH_BYTES);
        if (b < 0) b = region.length;
      }
      this.#deliver(f, region.subarray(a, b));
      if (b >= region.length) return;
      a = b + 1;
    }
  }

  #deliver(f: TrackedFile, piece: Buffer): void {
    const shared: PieceCache = { decoded: undefined };
    for (const id of f.subs) {
      const sub = this.#subs.get(id);
      if (!sub) continue;
      try {
        const batch = lineBatch(piece, sub.encoding, shared);
        if (sub.onBatch) sub.onBatch(f.path, batch);
        else sub.onLines?.(f.path, batch.lines());
      } catch (err) {
        this.#log.warn('keyword subscriber failed on lines', { subscriber: id, err: (err as Error).message });
      }
    }
  }
}

const inputs = new WeakMap<StateStore, TailInput>();

/**
 * The shared input of an agent (one per state store: the agent has one; tests get one each). Created on
 * first use, stopped when its last subscriber leaves.
 */
export function sharedInput(state: StateStore, logger: Logger): TailInput {
  let input = inputs.get(state);
  if (!input) {
    input = new TailInput({ state, logger });
    inputs.set(state, input);
  }
  return input;
}
