/** The store on embedded PGlite (PostgreSQL in WASM), in a worker thread of this process. */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { UnavailableError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { lockDir, unlockDir } from './lock-file.ts';
import { migrate } from './migrate.ts';
import type { ErrorFields, Reply, Request } from './pglite-worker.ts';
import type { MigrationResult, Queryable, QueryResult, Store, StoreOptions } from './types.ts';

/** How a PGlite thread is started. */
interface ThreadSettings {
  sharedBuffers: string;
  heapLimitMb: number | undefined;
}

export const PGLITE_SHARED_BUFFERS_DEFAULT = '32MB';

/**
 * Whether V8 compiles WASM with its baseline compiler only. Tiering PGlite up with TurboFan took up to
 * ~500 MB of transient compiler memory (peak RSS 763 → 268 MB over 80 000 upserts) for ~1.6× faster
 * statements; it is a process-wide V8 flag (it cannot be set from a running process), so the commands
 * that run PGlite pass it.
 */
const LIFTOFF_ONLY = process.execArgv.includes('--liftoff-only');

/**
 * Embedded PGlite runs each statement synchronously in WebAssembly. On the event loop's thread that
 * starved timers, sockets and Kafka heartbeats (a 10 ms interval did not fire once in 4 s of 64
 * concurrent query loops, and a consumer group dropped its member), and a discovery flush stopped the
 * span consumers for ~170 ms at a time. So PGlite runs in a worker thread (pglite-worker.ts); statements
 * go to it one at a time through a gate, and a transaction holds the gate from BEGIN to COMMIT.
 */
export class PgliteStore implements Store {
  readonly name = 'store:pglite';
  readonly driver = 'pglite' as const;
  readonly #dir: string;
  readonly #log: Logger;
  readonly #snapshot: Blob | undefined;
  readonly #settings: ThreadSettings;
  #opening: Promise<PgliteThread> | undefined;
  #tail: Promise<void> = Promise.resolve();

  /** Runs `fn` after every earlier gated call, one at a time. */
  async #gate<T>(fn: (db: PgliteThread) => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    try {
      await previous;
      return await fn(await this.#open());
    } finally {
      release();
    }
  }

  constructor(dir: string, options: StoreOptions) {
    this.#dir = dir;
    this.#snapshot = options.pgliteSnapshot;
    this.#settings = { sharedBuffers: options.pgliteSharedBuffers ?? PGLITE_SHARED_BUFFERS_DEFAULT, heapLimitMb: options.pgliteHeapLimitMb };
    this.#log = options.logger.child({ component: 'store', driver: 'pglite' });
  }

  readonly #onExit = (err: Error): void => {
    this.#log.error('the embedded database thread stopped; it is opened again on the next query', { dir: this.#dir, err });
    this.#opening = undefined;
  };

  /** The open database thread; a thread that died (it is logged) is replaced by a new one. */
  #open(): Promise<PgliteThread> {
    this.#opening ??= (async () => {
      if (!LIFTOFF_ONLY) {
        this.#log.warn('embedded PGlite in a process started without `node --liftoff-only`: V8 tiers its WASM up with TurboFan, which takes up to ~500 MB for seconds at a time (npm run up and the deployed commands pass the flag)');
      }
      const inMemory = this.#dir.startsWith('memory://');
      if (!inMemory) {
        mkdirSync(this.#dir, { recursive: true });
        lockDir(this.#dir);
      }
      let snapshot = this.#snapshot ? await this.#snapshot.arrayBuffer() : undefined;
      if (!inMemory && !existsSync(join(this.#dir, 'PG_VERSION'))) {
        // initdb leaves the process ~350 MB larger (V8 tiering PGlite's WASM up with TurboFan, plus
        // initdb's own memory): a first thread creates the directory and exits, which returns that
        // memory at once; the thread opened below finds the directory made.
        await (await PgliteThread.open(this.#dir, this.#settings, snapshot, () => undefined)).close();
        this.#log.info('initialised', { dir: this.#dir });
        snapshot = undefined;
      }
      const db = await PgliteThread.open(this.#dir, this.#settings, snapshot, this.#onExit);
      this.#log.info('opened', { dir: this.#dir });
      return db;
    })();
    return this.#opening;
  }

  async start(): Promise<void> {
    await this.#open();
  }

  /** Closes the database and ends its thread. */
  async stop(): Promise<void> {
    const opening = this.#opening;
    this.#opening = undefined;
    if (!opening) return;
    const db = await opening.catch(() => undefined); // an open that failed (e.g. locked) left nothing to close
    if (!db) return;
    await db.close();
    if (!this.#dir.startsWith('memory://')) unlockDir(this.#dir);
  }

  query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
    return this.#gate((db) => db.call({ op: 'query', sql, params: params as unknown[] | undefined }) as Promise<QueryResult<R>>);
  }

  exec(sql: string): Promise<void> {
    return this.#gate(async (db) => {
      await db.call({ op: 'exec', sql });
    });
  }

  /** The whole transaction holds the gate (its own statements run inside it). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> {
    return this.#gate(async (db) => {
      await db.call({ op: 'exec', sql: 'BEGIN' });
      let result: T;
      try {
        result = await fn({
          query: <R>(sql: string, params?: readonly unknown[]) => db.call({ op: 'query', sql, params: params as unknown[] | undefined }) as Promise<QueryResult<R>>,
          exec: async (sql) => {
            await db.call({ op: 'exec', sql });
          },
        });
      } catch (err) {
        await db.call({ op: 'exec', sql: 'ROLLBACK' }).catch(() => undefined);
        throw err;
      }
      await db.call({ op: 'exec', sql: 'COMMIT' });
      return result;
    });
  }

  /**
   * Applies pending migrations. DDL, like initdb, makes V8 tier much of PGlite's WASM up with
   * TurboFan, which took ~300 MB of RSS for 0001_init.sql and gave it back only seconds later and in
   * part; so after applying any on a directory the thread is replaced by a fresh one on the directory.
   */
  async migrate(): Promise<MigrationResult> {
    const result = await migrate(this, this.#log);
    if (result.applied.length > 0 && !this.#dir.startsWith('memory://')) {
      await this.#gate(async (db) => {
        await db.close();
        this.#opening = PgliteThread.open(this.#dir, this.#settings, undefined, this.#onExit);
        await this.#opening;
      });
    }
    return result;
  }

  snapshot(): Promise<Blob> {
    return this.#gate(async (db) => new Blob([(await db.call({ op: 'dump' })) as ArrayBuffer]));
  }
}

/** A request without its id (which {@link PgliteThread.call} assigns); distributed over the union. */
type WithoutId<Q> = Q extends unknown ? Omit<Q, 'id'> : never;
type Call = WithoutId<Request>;

/**
 * One PGlite in a worker thread (pglite-worker.ts). The thread keeps the process alive only while a
 * call is outstanding. When it dies, every outstanding call fails with a retriable error.
 */
class PgliteThread {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 0;
  #dead: Error | undefined;
  #closing = false;

  private constructor(heapLimitMb: number | undefined, onExit: (err: Error) => void) {
    this.#worker = new Worker(new URL('./pglite-worker.ts', import.meta.url), heapLimitMb ? { resourceLimits: { maxOldGenerationSizeMb: heapLimitMb } } : {});
    this.#worker.unref();
    this.#worker.on('message', (reply: Reply) => {
      const p = this.#pending.get(reply.id);
      if (!p) return;
      this.#pending.delete(reply.id);
      if (this.#pending.size === 0) this.#worker.unref();
      if (reply.ok) p.resolve(reply.value);
      else p.reject(rebuildError(reply.error));
    });
    this.#worker.on('error', (err: Error) => this.#die(new UnavailableError(`the embedded database failed: ${err.message}`, { cause: err }), onExit));
    this.#worker.on('exit', (code) => this.#die(new UnavailableError(`the embedded database thread exited (code ${code})`), onExit));
  }

  static async open(dir: string, settings: ThreadSettings, snapshot: ArrayBuffer | undefined, onExit: (err: Error) => void): Promise<PgliteThread> {
    const t = new PgliteThread(settings.heapLimitMb, onExit);
    try {
      await t.call({ op: 'open', dir, sharedBuffers: settings.sharedBuffers, snapshot });
    } catch (err) {
      await t.#worker.terminate();
      throw err;
    }
    return t;
  }

  #die(err: Error, onExit: (err: Error) => void): void {
    if (this.#dead) return;
    this.#dead = err;
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
    if (!this.#closing) onExit(err);
  }

  call(req: Call): Promise<unknown> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      if (this.#pending.size === 1) this.#worker.ref();
      this.#worker.postMessage({ ...req, id });
    });
  }

  async close(): Promise<void> {
    this.#closing = true;
    if (!this.#dead) await this.call({ op: 'close' });
    await this.#worker.terminate();
  }
}

/** A worker's error as an Error again, with PostgreSQL's fields (`code`, `detail`, …). */
function rebuildError(fields: ErrorFields): Error {
  const { name, message, ...rest } = fields;
  const err = new Error(message);
  err.name = name;
  return Object.assign(err, rest);
}
