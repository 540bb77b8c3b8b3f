/**
 * The agent's local key/value state (reference libgse KV store, §A6): job check times
 * (`task_<type>_<id>_check_time`, TTL 2 × period), per-data-id `gseindex_<dataid>` sequences, and whatever
 * tasks keep (basereport `last_publish_time`, disk read-only history, ...).
 *
 * Reads and writes are synchronous and in memory; the map is written to `<dir>/state.json` (temp file,
 * fsync, rename — a crash leaves the old or the new file, never half of one) at most once per
 * `flushDelayMs` after a change, and on stop. A missing file starts empty; an unreadable one is kept
 * aside as `state.json.corrupt` and the store starts empty (check times are re-aligned, nothing fails).
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import type { StateStore } from './task.ts';

interface Entry {
  v: string;
  /** Expiry, ms since the epoch. */
  exp?: number;
}

export interface FileStateStoreOptions {
  dir: string;
  logger: Logger;
  clock?: Clock;
  /** Delay between a change and the write. Default 1 000 ms. */
  flushDelayMs?: number;
}

export class FileStateStore implements StateStore, Component {
  readonly name = 'agent-state';
  readonly #file: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #flushDelayMs: number;
  readonly #dir: string;
  #entries = new Map<string, Entry>();
  #timer: TimerHandle | undefined;
  #writing: Promise<void> = Promise.resolve();
  #dirty = false;

  constructor(options: FileStateStoreOptions) {
    this.#dir = options.dir;
    this.#file = join(options.dir, 'state.json');
    this.#log = options.logger.child({ component: 'agent.state' });
    this.#clock = options.clock ?? systemClock;
    this.#flushDelayMs = options.flushDelayMs ?? 1_000;
  }

  /** Loads the file (once). */
  async start(): Promise<void> {
    await mkdir(this.#dir, { recursive: true });
    let text: string;
    try {
      text = await readFile(this.#file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return;
    }
    try {
      const doc = JSON.parse(text) as Record<string, Entry>;
      const now = this.#clock.now();
      for (const [k, e] of Object.entries(doc)) {
        if (typeof e?.v === 'string' && (e.exp === undefined || e.exp > now)) this.#entries.set(k, e);
      }
    } catch (err) {
      this.#log.warn('state file unreadable; starting empty', { file: this.#file, err });
      await rename(this.#file, `${this.#file}.corrupt`).catch(() => undefined);
    }
  }

  get(key: string): string | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.exp !== undefined && e.exp <= this.#clock.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.v;
  }

  set(key: string, value: string, ttlMs?: number): void {
    this.#entries.set(key, ttlMs !== undefined && ttlMs > 0 ? { v: value, exp: this.#clock.now() + ttlMs } : { v: value });
    this.#changed();
  }

  delete(key: string): void {
    if (this.#entries.delete(key)) this.#changed();
  }

  /** Writes pending changes now. */
  flush(): Promise<void> {
    this.#timer?.cancel();
    this.#timer = undefined;
    if (!this.#dirty) return this.#writing;
    this.#dirty = false;
    const now = this.#clock.now();
    const doc: Record<string, Entry> = {};
    for (const [k, e] of this.#entries) if (e.exp === undefined || e.exp > now) doc[k] = e;
    const text = JSON.stringify(doc);
    this.#writing = this.#writing.then(() => this.#write(text)).catch((err: unknown) => {
      this.#log.error('cannot write state file', { file: this.#file, err });
    });
    return this.#writing;
  }

  async stop(): Promise<void> {
    await this.flush();
  }

  #changed(): void {
    this.#dirty = true;
    this.#timer ??= this.#clock.setTimer(this.#flushDelayMs, () => {
      this.#timer = undefined;
      void this.flush();
    });
  }

  async #write(text: string): Promise<void> {
    const tmp = `${this.#file}.tmp`;
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(text);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await rename(tmp, this.#file);
  }
}

/** An in-memory store (check mode, tests). */
export class MemoryStateStore implements StateStore {
  readonly #entries = new Map<string, Entry>();
  readonly #clock: Clock;

  constructor(clock: Clock = systemClock) {
    this.#clock = clock;
  }

  get(key: string): string | undefined {
    const e = this.#entries.get(key);
    if (!e) return undefined;
    if (e.exp !== undefined && e.exp <= this.#clock.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.v;
  }

  set(key: string, value: string, ttlMs?: number): void {
    this.#entries.set(key, ttlMs !== undefined && ttlMs > 0 ? { v: value, exp: this.#clock.now() + ttlMs } : { v: value });
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }
}
