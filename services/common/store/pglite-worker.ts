/**
 * The worker thread that runs embedded PGlite for {@link PgliteStore} (index.ts).
 *
 * PGlite is PostgreSQL compiled to WASM: every statement runs synchronously on the thread that owns it.
 * On the main thread a discovery flush (a few thousand upserted rows) blocked the consumers for ~170 ms
 * at a time; here it runs beside them. The thread also sheds memory that initdb and DDL leave behind
 * (~300–350 MB, mostly V8 compiling the WASM with TurboFan): a fresh directory is initialised and
 * migrated by a thread that then exits (its memory goes back to the OS with it), and opened by a new one.
 *
 * Protocol: the parent posts {@link Request}s; every request gets one {@link Reply} with its `id`.
 * Requests are handled in order of arrival (the parent already serialises them).
 */
import { parentPort } from 'node:worker_threads';
import { PGlite } from '@electric-sql/pglite';

export type Request =
  | { id: number; op: 'open'; dir: string; sharedBuffers: string; snapshot: ArrayBuffer | undefined }
  | { id: number; op: 'query'; sql: string; params: unknown[] | undefined }
  | { id: number; op: 'exec'; sql: string }
  | { id: number; op: 'dump' }
  | { id: number; op: 'close' };

/** The fields of an error that cross the thread boundary (PostgreSQL's `code`, `detail`, … included). */
export interface ErrorFields {
  name: string;
  message: string;
  [field: string]: unknown;
}

export type Reply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: ErrorFields };

const INT8 = 20;

let db: PGlite | undefined;

function opened(): PGlite {
  if (!db) throw new Error('the embedded database is not open');
  return db;
}

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'open':
      db = await PGlite.create(req.dir, {
        parsers: { [INT8]: (v: string) => Number(v) },
        startParams: [...PGlite.defaultStartParams, '-c', `shared_buffers=${req.sharedBuffers}`],
        ...(req.snapshot ? { loadDataDir: new Blob([req.snapshot]) } : {}),
      });
      return undefined;
    case 'query': {
      const res = await opened().query(req.sql, req.params);
      return { rows: res.rows, rowCount: Math.max(res.affectedRows ?? 0, res.rows.length) };
    }
    case 'exec':
      await opened().exec(req.sql);
      return undefined;
    case 'dump':
      return (await opened().dumpDataDir('none')).arrayBuffer();
    case 'close':
      if (db && !db.closed) await db.close();
      db = undefined;
      return undefined;
  }
}

/** An error as plain data: its own enumerable fields (pg-protocol's DatabaseError keeps `code` etc. there). */
function errorFields(err: unknown): ErrorFields {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const fields: ErrorFields = { name: err.name, message: err.message };
  for (const [k, v] of Object.entries(err)) {
    if (v === undefined || typeof v === 'function' || (typeof v === 'object' && v !== null)) continue;
    fields[k] = v;
  }
  return fields;
}

const port = parentPort;
if (!port) throw new Error('pglite-worker.ts runs as a worker thread of the PGlite store');
let chain: Promise<void> = Promise.resolve();
port.on('message', (req: Request) => {
  chain = chain.then(async () => {
    let reply: Reply;
    try {
      reply = { id: req.id, ok: true, value: await handle(req) };
    } catch (err) {
      reply = { id: req.id, ok: false, error: errorFields(err) };
    }
    const value = reply.ok ? reply.value : undefined;
    port.postMessage(reply, value instanceof ArrayBuffer ? [value] : []);
  });
});
