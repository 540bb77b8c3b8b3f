/**
 * Versioned migrations: `migrations/NNNN_name.sql`, applied in version order, each in its own
 * transaction under an advisory lock (so several instances starting at once apply each exactly once),
 * recorded in `schema_migrations`. Applying again is a no-op.
 *
 * Version ranges by owner keep parallel work from colliding: 0001–0099 foundation, 0100–0199 discovery,
 * 0200–0299 orchestrator, 0300–0399 collector.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { BkError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { MigrationResult, Queryable, Store } from './types.ts';

export const MIGRATIONS_DIR = resolve(import.meta.dirname, 'migrations');
/** Arbitrary constant naming bkstream's migration lock. */
const LOCK_ID = 7_290_514;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export type { MigrationResult };

export function loadMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  const out: Migration[] = [];
  for (const file of readdirSync(dir)) {
    const m = /^(\d{4})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) continue;
    out.push({ version: Number(m[1]), name: m[2] as string, sql: readFileSync(join(dir, file), 'utf8') });
  }
  out.sort((a, b) => a.version - b.version);
  for (let i = 1; i < out.length; i++) {
    if (out[i]?.version === out[i - 1]?.version) {
      throw new BkError('migration_duplicate', `two migrations have version ${out[i]?.version}`, false);
    }
  }
  return out;
}

async function appliedVersions(db: Queryable): Promise<Set<number>> {
  const { rows } = await db.query<{ version: number }>('SELECT version FROM schema_migrations');
  return new Set(rows.map((r) => Number(r.version)));
}

export async function migrate(store: Store, logger: Logger, migrations: Migration[] = loadMigrations()): Promise<MigrationResult> {
  const log = logger.child({ component: 'migrate' });
  // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalog: take the lock first.
  await store.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
    await tx.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  });
  const result: MigrationResult = { applied: [], skipped: [] };
  for (const m of migrations) {
    const applied = await store.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock($1)', [LOCK_ID]);
      if ((await appliedVersions(tx)).has(m.version)) return false;
      try {
        await tx.exec(m.sql);
      } catch (err) {
        throw new BkError('migration_failed', `migration ${m.version}_${m.name} failed: ${(err as Error).message}`, false, { cause: err });
      }
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      return true;
    });
    (applied ? result.applied : result.skipped).push(m.version);
    if (applied) log.info('migration applied', { version: m.version, name: m.name });
  }
  return result;
}
