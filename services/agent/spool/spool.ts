/**
 * The agent's bounded on-disk queue (the model: Vector's disk buffer, Fluent Bit's filesystem storage).
 * Every record the publisher accepts is appended here first and leaves only when Kafka acknowledged it,
 * so neither a broker outage nor an agent crash or restart loses it.
 *
 * Layout under `dir`: append-only segment files `<first seq, 20 digits>.seg` of framed records
 * (frame.ts), and `ack.json`, the sequence of the last record Kafka acknowledged (written to a temp file
 * and renamed over the old one, so it is always whole). The sequence is per agent and monotonic across
 * runs: the next one is one past the highest found in the segments or the ack file.
 *
 * - Durability: with `fsync` (default) each append batch is flushed with fdatasync before `append`
 *   resolves (group commit), and the ack file before it is renamed; a power loss then loses nothing the
 *   publisher accepted. Without it the page cache decides; a process crash still loses nothing.
 * - Bound: past `maxBytes` the oldest segments are deleted whole (segment size is `maxBytes / 8`, between
 *   64 KiB and 8 MiB) and their records not yet handed to the sender are counted as dropped. Each run
 *   appends to a new segment.
 * - Recovery: on open every segment is scanned; a torn or corrupt tail (a frame cut short, a CRC
 *   mismatch, an impossible length) is cut off at the last good frame and counted; reading resumes after
 *   the acknowledged sequence, in order.
 *
 * All operations are serialised (one at a time), so appends, reads and acks never see half a write.
 */
import { mkdir, open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../../common/log.ts';
import { decodeFrames, encodeFrame, frameSizeAt, type SpoolRecord } from './frame.ts';

export type { SpoolRecord } from './frame.ts';

export interface SpoolOptions {
  dir: string;
  /** Bytes on disk at most (segments). */
  maxBytes: number;
  /** Default `maxBytes / 8` clamped to [64 KiB, 8 MiB]. */
  segmentBytes?: number;
  /** fdatasync appends and acks. Default true. */
  fsync?: boolean;
  logger: Logger;
}

interface Segment {
  readonly firstSeq: number;
  readonly path: string;
  /** Bytes of whole frames in the file. */
  size: number;
  /** Records in the file. */
  count: number;
  /** Highest sequence in the file (firstSeq - 1 when empty). */
  lastSeq: number;
}

export interface SpoolStats {
  /** Records not yet acknowledged by Kafka. */
  readonly pending: number;
  /** Bytes of the segment files. */
  readonly bytes: number;
  readonly segments: number;
  readonly ackedSeq: number;
  /** The sequence the next appended record gets. */
  readonly nextSeq: number;
  /** Records deleted unsent because of the size cap, since open. */
  readonly dropped: number;
  /** Corrupt or torn frames cut off at open, since open. */
  readonly corrupt: number;
}

const SEGMENT_RE = /^(\d{20})\.seg$/;
const segName = (seq: number): string => `${String(seq).padStart(20, '0')}.seg`;

export class DiskSpool {
  readonly name = 'agent-spool';
  readonly #dir: string;
  readonly #maxBytes: number;
  readonly #segmentBytes: number;
  readonly #fsync: boolean;
  readonly #log: Logger;
  #segments: Segment[] = [];
  /** Append handle of the last segment. */
  #active: { seg: Segment; fh: FileHandle } | undefined;
  #reader: { seg: Segment; fh: FileHandle } | undefined;
  /** Read position: the segment (by firstSeq) and byte offset of the next record to hand out. */
  #cursor = { firstSeq: 0, offset: 0 };
  /** Highest sequence handed to the sender. */
  #readSeq = 0;
  #ackedSeq = 0;
  #nextSeq = 1;
  #pending = 0;
  #bytes = 0;
  #dropped = 0;
  #corrupt = 0;
  #lock: Promise<unknown> = Promise.resolve();
  #dataWaiters: (() => void)[] = [];
  #opened = false;
  #closed = false;

  constructor(options: SpoolOptions) {
    this.#dir = options.dir;
    this.#maxBytes = options.maxBytes;
    this.#segmentBytes = options.segmentBytes ?? Math.min(8 << 20, Math.max(64 << 10, Math.floor(options.maxBytes / 8)));
    this.#fsync = options.fsync ?? true;
    this.#log = options.logger.child({ component: 'agent.spool' });
  }

  stats(): SpoolStats {
    return {
      pending: this.#pending,
      bytes: this.#bytes,
      segments: this.#segments.length,
      ackedSeq: this.#ackedSeq,
      nextSeq: this.#nextSeq,
      dropped: this.#dropped,
      corrupt: this.#corrupt,
    };
  }

  /** Opens the directory and recovers what a previous run left. */
  open(): Promise<void> {
    return this.#locked(async () => {
      if (this.#opened) return;
      await mkdir(this.#dir, { recursive: true });
      this.#ackedSeq = await this.#readAck();
      const names = (await readdir(this.#dir)).filter((n) => SEGMENT_RE.test(n)).sort();
      let maxSeq = this.#ackedSeq;
      for (const [i, name] of names.entries()) {
        const path = join(this.#dir, name);
        const buf = await readFile(path);
        const decoded = decodeFrames(buf);
        if (decoded.stop !== 'end') {
          this.#corrupt++;
          this.#log.warn('spool segment has a torn or corrupt frame; cut off after the last good record', {
            segment: name, at: decoded.goodEnd, bytes_cut: buf.length - decoded.goodEnd, reason: decoded.stop, last_segment: i === names.length - 1,
          });
          const fh = await open(path, 'r+');
          try {
            await fh.truncate(decoded.goodEnd);
            if (this.#fsync) await fh.datasync();
          } finally {
            await fh.close();
          }
        }
        const frames = decoded.frames;
        if (frames.length === 0) {
          await rm(path, { force: true });
          continue;
        }
        const first = (frames[0] as (typeof frames)[number]).record.seq;
        const last = (frames[frames.length - 1] as (typeof frames)[number]).record.seq;
        maxSeq = Math.max(maxSeq, last);
        if (last <= this.#ackedSeq) {
          await rm(path, { force: true });
          continue;
        }
        const seg: Segment = { firstSeq: Number(SEGMENT_RE.exec(name)?.[1] ?? first), path, size: decoded.goodEnd, count: frames.length, lastSeq: last };
        this.#segments.push(seg);
        this.#bytes += seg.size;
        const unacked = frames.filter((f) => f.record.seq > this.#ackedSeq);
        this.#pending += unacked.length;
        if (this.#segments.length === 1 || this.#cursor.firstSeq === 0) {
          this.#cursor = { firstSeq: seg.firstSeq, offset: (unacked[0] as (typeof unacked)[number]).offset };
        }
      }
      this.#nextSeq = maxSeq + 1;
      this.#readSeq = this.#ackedSeq;
      if (this.#segments.length === 0) this.#cursor = { firstSeq: this.#nextSeq, offset: 0 };
      this.#opened = true;
      this.#log.info('spool opened', { dir: this.#dir, pending: this.#pending, bytes: this.#bytes, acked_seq: this.#ackedSeq, next_seq: this.#nextSeq });
    });
  }

  /**
   * Appends records in order, giving each the next sequence; resolves when they are written (and
   * flushed with fsync). Returns the records with their sequences.
   */
  append(items: readonly Omit<SpoolRecord, 'seq'>[]): Promise<SpoolRecord[]> {
    return this.#locked(async () => {
      this.#checkOpen();
      const out: SpoolRecord[] = [];
      const touched = new Set<FileHandle>();
      for (const item of items) {
        const record: SpoolRecord = { ...item, seq: this.#nextSeq };
        const frame = encodeFrame(record);
        if (frame.length > this.#segmentBytes) {
          this.#dropped++;
          this.#log.error('record larger than a spool segment; dropped', { bytes: frame.length, segment_bytes: this.#segmentBytes, topic: item.topic });
          continue;
        }
        this.#nextSeq++;
        if (!this.#active || (this.#active.seg.size > 0 && this.#active.seg.size + frame.length > this.#segmentBytes)) await this.#roll(record.seq, touched);
        await this.#makeRoom(frame.length);
        const active = this.#active as { seg: Segment; fh: FileHandle };
        await active.fh.write(frame, 0, frame.length, active.seg.size);
        touched.add(active.fh);
        active.seg.size += frame.length;
        active.seg.count++;
        active.seg.lastSeq = record.seq;
        this.#bytes += frame.length;
        this.#pending++;
        out.push(record);
      }
      if (this.#fsync) for (const fh of touched) await fh.datasync();
      if (out.length > 0) this.#wakeReaders();
      return out;
    });
  }

  /**
   * Up to `maxRecords` records (about `maxBytes` bytes, at least one) after the last read, in order; an
   * empty list when there is nothing unread. What is read is not removed until {@link ack}.
   */
  read(maxRecords: number, maxBytes: number): Promise<SpoolRecord[]> {
    return this.#locked(async () => {
      this.#checkOpen();
      const out: SpoolRecord[] = [];
      let bytes = 0;
      while (out.length < maxRecords && bytes < maxBytes) {
        const seg = this.#segments.find((s) => s.firstSeq === this.#cursor.firstSeq);
        if (!seg) {
          const next = this.#segments.find((s) => s.firstSeq > this.#cursor.firstSeq);
          if (!next) break;
          this.#cursor = { firstSeq: next.firstSeq, offset: 0 };
          continue;
        }
        if (this.#cursor.offset >= seg.size) {
          const next = this.#segments.find((s) => s.firstSeq > seg.firstSeq);
          if (!next) break;
          this.#cursor = { firstSeq: next.firstSeq, offset: 0 };
          continue;
        }
        const fh = await this.#readerFor(seg);
        const want = Math.min(seg.size - this.#cursor.offset, Math.max(64 << 10, maxBytes - bytes));
        let buf = Buffer.allocUnsafe(want);
        const { bytesRead } = await fh.read(buf, 0, want, this.#cursor.offset);
        buf = buf.subarray(0, bytesRead);
        let decoded = decodeFrames(buf, 0, maxRecords - out.length);
        if (decoded.frames.length === 0) {
          const size = frameSizeAt(buf, 0);
          if (size !== undefined && size > buf.length && size <= seg.size - this.#cursor.offset) {
            buf = Buffer.allocUnsafe(size);
            await fh.read(buf, 0, size, this.#cursor.offset);
            decoded = decodeFrames(buf, 0, 1);
          }
        }
        if (decoded.frames.length === 0) {
          // Written frames were checked at open or written by us: a frame that no longer decodes means
          // the file changed under us. Skip the rest of the segment rather than loop.
          this.#corrupt++;
          this.#log.error('unreadable spool frame; skipping the rest of the segment', { segment: seg.path, offset: this.#cursor.offset });
          this.#cursor = { firstSeq: seg.firstSeq, offset: seg.size };
          continue;
        }
        for (const f of decoded.frames) {
          out.push(f.record);
          bytes += f.size;
          this.#cursor.offset += f.size;
          this.#readSeq = f.record.seq;
          if (bytes >= maxBytes) break;
        }
      }
      return out;
    });
  }

  /** Marks every record up to `seq` (`count` of them, as read) as delivered; deletes segments wholly delivered. */
  ack(seq: number, count: number): Promise<void> {
    return this.#locked(async () => {
      this.#checkOpen();
      if (seq <= this.#ackedSeq) return;
      this.#ackedSeq = seq;
      this.#pending = Math.max(0, this.#pending - count);
      await this.#writeAck();
      while (this.#segments.length > 0) {
        const first = this.#segments[0] as Segment;
        if (first.lastSeq > seq || this.#active?.seg === first) break;
        await this.#deleteSegment(first);
      }
    });
  }

  /** Resolves when there are unread records (at once if there are), or when `signal` aborts. */
  waitForData(signal?: AbortSignal): Promise<void> {
    if (this.#hasUnread() || signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.#dataWaiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Closes the files (the data stays for the next open). */
  close(): Promise<void> {
    return this.#locked(async () => {
      if (this.#closed) return;
      this.#closed = true;
      await this.#active?.fh.close();
      await this.#reader?.fh.close();
      this.#active = undefined;
      this.#reader = undefined;
      for (const w of this.#dataWaiters.splice(0)) w();
    });
  }

  #hasUnread(): boolean {
    const last = this.#segments[this.#segments.length - 1];
    return last !== undefined && last.lastSeq > this.#readSeq;
  }

  #wakeReaders(): void {
    for (const w of this.#dataWaiters.splice(0)) w();
  }

  #checkOpen(): void {
    if (!this.#opened || this.#closed) throw new Error('spool is not open');
  }

  /** Starts a new segment for appends (the previous one is flushed and closed). */
  async #roll(firstSeq: number, touched: Set<FileHandle>): Promise<void> {
    if (this.#active) {
      if (this.#fsync && touched.has(this.#active.fh)) await this.#active.fh.datasync();
      touched.delete(this.#active.fh);
      await this.#active.fh.close();
    }
    const seg: Segment = { firstSeq, path: join(this.#dir, segName(firstSeq)), size: 0, count: 0, lastSeq: firstSeq - 1 };
    const fh = await open(seg.path, 'w');
    this.#segments.push(seg);
    this.#active = { seg, fh };
  }

  /** Deletes the oldest segments until `incoming` more bytes fit under the cap (never the one being written). */
  async #makeRoom(incoming: number): Promise<void> {
    while (this.#bytes + incoming > this.#maxBytes) {
      const oldest = this.#segments[0];
      if (!oldest || oldest === this.#active?.seg) return;
      // Records already handed to the sender are in its hands; the unread ones are lost.
      const unsent = oldest.lastSeq > this.#readSeq ? Math.min(oldest.count, oldest.lastSeq - Math.max(oldest.firstSeq, this.#readSeq + 1) + 1) : 0;
      this.#dropped += unsent;
      this.#pending = Math.max(0, this.#pending - unsent);
      if (unsent > 0) this.#log.warn('spool full: oldest records dropped', { dropped: unsent, segment: oldest.path, max_bytes: this.#maxBytes });
      if (this.#cursor.firstSeq <= oldest.firstSeq) {
        const next = this.#segments[1];
        this.#cursor = { firstSeq: next ? next.firstSeq : this.#nextSeq, offset: 0 };
      }
      if (this.#readSeq < oldest.lastSeq) this.#readSeq = oldest.lastSeq;
      await this.#deleteSegment(oldest);
    }
  }

  async #deleteSegment(seg: Segment): Promise<void> {
    if (this.#reader?.seg === seg) {
      await this.#reader.fh.close();
      this.#reader = undefined;
    }
    this.#segments = this.#segments.filter((s) => s !== seg);
    this.#bytes -= seg.size;
    await rm(seg.path, { force: true });
  }

  async #readerFor(seg: Segment): Promise<FileHandle> {
    if (this.#reader?.seg === seg) return this.#reader.fh;
    await this.#reader?.fh.close();
    const fh = await open(seg.path, 'r');
    this.#reader = { seg, fh };
    return fh;
  }

  async #readAck(): Promise<number> {
    try {
      const doc = JSON.parse(await readFile(join(this.#dir, 'ack.json'), 'utf8')) as { seq?: unknown };
      return typeof doc.seq === 'number' && Number.isSafeInteger(doc.seq) && doc.seq >= 0 ? doc.seq : 0;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#log.warn('spool ack file unreadable; resending from the oldest spooled record', { err });
      return 0;
    }
  }

  async #writeAck(): Promise<void> {
    const path = join(this.#dir, 'ack.json');
    const tmp = `${path}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify({ seq: this.#ackedSeq }));
      if (this.#fsync) await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn, fn);
    this.#lock = run.catch(() => undefined);
    return run;
  }
}
