/**
 * The SQL of the GSE registry (migration 0210_gse_routing): stream_tos, routes and their targets, and the
 * outbox of topic keys to publish. Every change marks its key pending in the same transaction. Checks that
 * name a field (an unknown stream_to in a route, a duplicate name, a stream_to still routed to) are made
 * inside the transaction; the constraints (unique names, foreign keys, sealed passwords only) stand behind
 * them, so nothing invalid is stored even when two calls race.
 */
import { ConflictError, NotFoundError } from '../../common/errors.ts';
import { routesKey, SASL_PASSWD_CONTEXT, type KafkaStreamTo, type RouteDoc, type RouteItemDoc, type StorageAddress, type StreamToDoc } from '../../common/gse/records.ts';
import { SecretError, type SecretBox } from '../../common/secrets.ts';
import type { Queryable, Store } from '../../common/store/index.ts';
import { GseRequestError, type Label, type StreamFilter, type StreamToSpec } from './requests.ts';

/** A stored stream_to (the password sealed, or null). */
export interface StreamToRow {
  stream_to_id: number;
  plat_name: string;
  name: string;
  report_mode: 'kafka';
  data_log_path: string | null;
  label: Label | null;
  /** Without the password. */
  kafka: Omit<KafkaStreamTo, 'sasl_passwd'>;
  sasl_passwd: string | null;
}

/** A stored route with its targets in order. */
export interface RouteRow {
  channel_id: number;
  plat_name: string;
  label: Label | null;
  stream_filters: StreamFilter[];
  route: RouteItemDoc[];
}

/** What update_streamto does with the stored password. */
export type PasswordChange = { keep: true } | { keep: false; sealed: string | null };

/** What to publish for a key: the topic value (JSON text), or null for a tombstone. */
export type TopicValue = string | null;

const STREAM_TO_COLUMNS = 'stream_to_id, plat_name, name, report_mode, data_log_path, label, kafka, sasl_passwd';

function toStreamTo(r: Record<string, unknown>): StreamToRow {
  return {
    stream_to_id: Number(r.stream_to_id),
    plat_name: r.plat_name as string,
    name: r.name as string,
    report_mode: 'kafka',
    data_log_path: (r.data_log_path as string | null) ?? null,
    label: (r.label as Label | null) ?? null,
    kafka: r.kafka as Omit<KafkaStreamTo, 'sasl_passwd'>,
    sasl_passwd: (r.sasl_passwd as string | null) ?? null,
  };
}

/** The Kafka settings kept in the `kafka` column (everything but the password). */
function kafkaColumn(k: KafkaStreamTo): Omit<KafkaStreamTo, 'sasl_passwd'> {
  const { sasl_passwd: _, ...rest } = k;
  return rest;
}

async function markPending(tx: Queryable, key: string): Promise<void> {
  await tx.query(
    `INSERT INTO gse_routes_pending (key) VALUES ($1)
     ON CONFLICT (key) DO UPDATE SET seq = nextval('gse_routes_pending_seq'), changed_at = now()`,
    [key],
  );
}

export class GseStore {
  readonly #store: Store;

  constructor(store: Store) {
    this.#store = store;
  }

  // -------------------------------------------------------------------------------------------------------
  // stream_to

  /** Adds a stream_to; returns its new id. A name taken in the platform is a conflict. */
  async addStreamTo(plat: string, label: Label | undefined, spec: StreamToSpec, sealedPasswd: string | null, operator: string): Promise<number> {
    return this.#store.transaction(async (tx) => {
      const { rows } = await tx.query<{ stream_to_id: string }>(
        `INSERT INTO gse_stream_to (plat_name, name, report_mode, data_log_path, label, kafka, sasl_passwd, operator)
         VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)
         ON CONFLICT ON CONSTRAINT gse_stream_to_name DO NOTHING
         RETURNING stream_to_id`,
        [plat, spec.name, spec.report_mode, spec.data_log_path ?? null, label === undefined ? null : JSON.stringify(label), JSON.stringify(kafkaColumn(spec.kafka)), sealedPasswd, operator],
      );
      const row = rows[0];
      if (!row) throw new GseRequestError([{ field: 'stream_to.name', message: `a stream_to named "${spec.name}" already exists in plat_name "${plat}".` }]);
      const id = Number(row.stream_to_id);
      await markPending(tx, routesKey.streamTo(id));
      return id;
    });
  }

  /** Replaces a stream_to's settings (the password as `password` says). */
  async updateStreamTo(id: number, plat: string, spec: StreamToSpec, password: PasswordChange, operator: string): Promise<void> {
    await this.#store.transaction(async (tx) => {
      const current = await tx.query<{ stream_to_id: string }>('SELECT stream_to_id FROM gse_stream_to WHERE stream_to_id = $1 AND plat_name = $2 FOR UPDATE', [id, plat]);
      if (current.rows.length === 0) throw new NotFoundError(`stream_to_id ${id} of plat_name "${plat}" not found`);
      const taken = await tx.query('SELECT 1 FROM gse_stream_to WHERE plat_name = $1 AND name = $2 AND stream_to_id <> $3', [plat, spec.name, id]);
      if (taken.rows.length > 0) throw new GseRequestError([{ field: 'specification.stream_to.name', message: `a stream_to named "${spec.name}" already exists in plat_name "${plat}".` }]);
      await tx.query(
        `UPDATE gse_stream_to SET name = $3, report_mode = $4, data_log_path = $5, kafka = $6::jsonb,
                sasl_passwd = CASE WHEN $7::boolean THEN sasl_passwd ELSE $8 END, operator = $9, updated_at = now()
         WHERE stream_to_id = $1 AND plat_name = $2`,
        [id, plat, spec.name, spec.report_mode, spec.data_log_path ?? null, JSON.stringify(kafkaColumn(spec.kafka)), password.keep, password.keep ? null : password.sealed, operator],
      );
      await markPending(tx, routesKey.streamTo(id));
    });
  }

  /** Deletes a stream_to; one that a route still names is a conflict (naming the channels). */
  async deleteStreamTo(id: number, plat: string): Promise<void> {
    await this.#store.transaction(async (tx) => {
      const current = await tx.query('SELECT 1 FROM gse_stream_to WHERE stream_to_id = $1 AND plat_name = $2 FOR UPDATE', [id, plat]);
      if (current.rows.length === 0) throw new NotFoundError(`stream_to_id ${id} of plat_name "${plat}" not found`);
      const used = await tx.query<{ channel_id: string }>('SELECT DISTINCT channel_id FROM gse_route_target WHERE stream_to_id = $1 ORDER BY channel_id LIMIT 20', [id]);
      if (used.rows.length > 0) throw new ConflictError(`stream_to_id ${id} is used by the routes of channel_id ${used.rows.map((r) => r.channel_id).join(', ')}: delete or update those first`);
      await tx.query('DELETE FROM gse_stream_to WHERE stream_to_id = $1', [id]);
      await markPending(tx, routesKey.streamTo(id));
    });
  }

  /** Stream_tos of a platform (one, with `id`), by id. */
  async queryStreamTo(plat: string, id?: number): Promise<StreamToRow[]> {
    const { rows } = id === undefined
      ? await this.#store.query(`SELECT ${STREAM_TO_COLUMNS} FROM gse_stream_to WHERE plat_name = $1 ORDER BY stream_to_id`, [plat])
      : await this.#store.query(`SELECT ${STREAM_TO_COLUMNS} FROM gse_stream_to WHERE plat_name = $1 AND stream_to_id = $2`, [plat, id]);
    return rows.map(toStreamTo);
  }

  async streamToByName(plat: string, name: string): Promise<StreamToRow | undefined> {
    const { rows } = await this.#store.query(`SELECT ${STREAM_TO_COLUMNS} FROM gse_stream_to WHERE plat_name = $1 AND name = $2`, [plat, name]);
    return rows[0] ? toStreamTo(rows[0]) : undefined;
  }

  /** Sets the addresses of a stream_to (the default one follows the bus's brokers). */
  async setStorageAddress(id: number, addresses: readonly StorageAddress[], operator: string): Promise<void> {
    await this.#store.transaction(async (tx) => {
      await tx.query(`UPDATE gse_stream_to SET kafka = jsonb_set(kafka, '{storage_address}', $2::jsonb), operator = $3, updated_at = now() WHERE stream_to_id = $1`, [id, JSON.stringify(addresses), operator]);
      await markPending(tx, routesKey.streamTo(id));
    });
  }

  /**
   * Reseals, with the box's current key, every password sealed with another (a key rotation), marking the
   * stream_to pending so the topic gets it too; returns how many were resealed and how many no key opens.
   */
  async resealPasswords(box: SecretBox): Promise<{ resealed: number; unreadable: number }> {
    const { rows } = await this.#store.query<{ stream_to_id: string; sasl_passwd: string }>('SELECT stream_to_id, sasl_passwd FROM gse_stream_to WHERE sasl_passwd IS NOT NULL');
    let resealed = 0;
    let unreadable = 0;
    for (const r of rows) {
      if (box.current(r.sasl_passwd)) continue;
      let plain: string;
      try {
        plain = box.open(r.sasl_passwd, SASL_PASSWD_CONTEXT);
      } catch (err) {
        if (!(err instanceof SecretError)) throw err;
        unreadable++;
        continue;
      }
      const id = Number(r.stream_to_id);
      await this.#store.transaction(async (tx) => {
        await tx.query('UPDATE gse_stream_to SET sasl_passwd = $2 WHERE stream_to_id = $1 AND sasl_passwd = $3', [id, box.seal(plain, SASL_PASSWD_CONTEXT), r.sasl_passwd]);
        await markPending(tx, routesKey.streamTo(id));
      });
      resealed++;
    }
    return { resealed, unreadable };
  }

  // -------------------------------------------------------------------------------------------------------
  // route

  /**
   * Adds a route: with `channelId` under that id (taken: a conflict), else under a newly allocated one.
   * Each target's stream_to must exist. Returns the channel id.
   */
  async addRoute(plat: string, label: Label | undefined, channelId: number | undefined, items: readonly RouteItemDoc[], filters: readonly StreamFilter[], operator: string): Promise<number> {
    return this.#store.transaction(async (tx) => {
      await checkStreamTos(tx, items, 'route');
      let id: number | undefined;
      for (let attempt = 0; id === undefined; attempt++) {
        const candidate = channelId ?? Number((await tx.query<{ id: string }>(`SELECT nextval('gse_channel_id_seq') AS id`)).rows[0]?.id);
        const { rows } = await tx.query<{ channel_id: string }>(
          `INSERT INTO gse_route (channel_id, plat_name, label, stream_filters, operator) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5)
           ON CONFLICT (channel_id) DO NOTHING RETURNING channel_id`,
          [candidate, plat, label === undefined ? null : JSON.stringify(label), JSON.stringify(filters), operator],
        );
        if (rows[0]) id = candidate;
        else if (channelId !== undefined) throw new ConflictError(`channel_id ${channelId} already exists: update_route changes it`);
        else if (attempt > 1_000) throw new ConflictError('no free channel_id found');
      }
      await insertTargets(tx, id, items);
      await markPending(tx, routesKey.route(id));
      return id;
    });
  }

  /**
   * Updates a route: each given route item replaces the target of the same name or is appended; each given
   * stream filter likewise by name.
   */
  async updateRoute(channelId: number, plat: string, items: readonly RouteItemDoc[] | undefined, filters: readonly StreamFilter[] | undefined, operator: string): Promise<void> {
    await this.#store.transaction(async (tx) => {
      const current = await lockRoute(tx, channelId, plat);
      if (items) await checkStreamTos(tx, items, 'specification.route');
      const route = items ? mergeByName(current.route, items) : current.route;
      const streamFilters = filters ? mergeByName(current.stream_filters, filters) : current.stream_filters;
      await tx.query('UPDATE gse_route SET stream_filters = $2::jsonb, operator = $3, updated_at = now() WHERE channel_id = $1', [channelId, JSON.stringify(streamFilters), operator]);
      if (items) {
        await tx.query('DELETE FROM gse_route_target WHERE channel_id = $1', [channelId]);
        await insertTargets(tx, channelId, route);
      }
      await markPending(tx, routesKey.route(channelId));
    });
  }

  /** Deletes a route (`names` unset), or the named route items and stream filters of it (each must exist). */
  async deleteRoute(channelId: number, plat: string, names?: { route?: readonly string[]; stream_filters?: readonly string[] }, operator = ''): Promise<void> {
    await this.#store.transaction(async (tx) => {
      const current = await lockRoute(tx, channelId, plat);
      if (!names) {
        await tx.query('DELETE FROM gse_route WHERE channel_id = $1', [channelId]);
      } else {
        const problems = [
          ...(names.route ?? []).filter((n) => !current.route.some((r) => r.name === n)).map((n) => ({ field: 'specification.route', message: `no route named "${n}" in channel_id ${channelId}.` })),
          ...(names.stream_filters ?? []).filter((n) => !current.stream_filters.some((f) => f.name === n)).map((n) => ({ field: 'specification.stream_filters', message: `no stream filter named "${n}" in channel_id ${channelId}.` })),
        ];
        if (problems.length > 0) throw new GseRequestError(problems);
        const route = current.route.filter((r) => !(names.route ?? []).includes(r.name));
        const streamFilters = current.stream_filters.filter((f) => !(names.stream_filters ?? []).includes(f.name));
        await tx.query('UPDATE gse_route SET stream_filters = $2::jsonb, operator = $3, updated_at = now() WHERE channel_id = $1', [channelId, JSON.stringify(streamFilters), operator]);
        await tx.query('DELETE FROM gse_route_target WHERE channel_id = $1', [channelId]);
        await insertTargets(tx, channelId, route);
      }
      await markPending(tx, routesKey.route(channelId));
    });
  }

  /** A route (matching `plat` when given), or undefined. */
  async queryRoute(channelId: number, plat?: string): Promise<RouteRow | undefined> {
    const route = await readRoute(this.#store, channelId);
    return route && (plat === undefined || route.plat_name === plat) ? route : undefined;
  }

  // -------------------------------------------------------------------------------------------------------
  // publishing

  /** The topic value of a key as the store has it now (null: the object does not exist: a tombstone). */
  async topicValue(key: string): Promise<TopicValue> {
    const m = /^(stream_to|route):(\d+)$/.exec(key);
    if (!m) return null;
    const id = Number(m[2]);
    if (m[1] === 'route') {
      const r = await readRoute(this.#store, id);
      return r ? JSON.stringify(routeDocOf(r)) : null;
    }
    const { rows } = await this.#store.query(`SELECT ${STREAM_TO_COLUMNS} FROM gse_stream_to WHERE stream_to_id = $1`, [id]);
    return rows[0] ? JSON.stringify(streamToDocOf(toStreamTo(rows[0]))) : null;
  }

  /** Every key the registry holds (what a full publish sends). */
  async allKeys(): Promise<string[]> {
    const s = await this.#store.query<{ id: string }>('SELECT stream_to_id AS id FROM gse_stream_to ORDER BY stream_to_id');
    const r = await this.#store.query<{ id: string }>('SELECT channel_id AS id FROM gse_route ORDER BY channel_id');
    return [...s.rows.map((x) => routesKey.streamTo(Number(x.id))), ...r.rows.map((x) => routesKey.route(Number(x.id)))];
  }

  /** Keys waiting to be published, oldest change first. */
  async pending(limit: number): Promise<{ key: string; seq: string }[]> {
    const { rows } = await this.#store.query<{ key: string; seq: string }>('SELECT key, seq::text AS seq FROM gse_routes_pending ORDER BY seq LIMIT $1', [limit]);
    return rows;
  }

  /** The pending mark of one key (undefined: nothing to publish). */
  async pendingSeq(key: string): Promise<string | undefined> {
    const { rows } = await this.#store.query<{ seq: string }>('SELECT seq::text AS seq FROM gse_routes_pending WHERE key = $1', [key]);
    return rows[0]?.seq;
  }

  /** Marks a key published, unless it changed again since `seq`. */
  async published(key: string, seq: string): Promise<void> {
    await this.#store.query('DELETE FROM gse_routes_pending WHERE key = $1 AND seq = $2::bigint', [key, seq]);
  }

  /** Marks keys pending (a full publish at start, keys found on the topic but not here). */
  async markPending(keys: readonly string[]): Promise<void> {
    if (keys.length === 0) return;
    await this.#store.transaction(async (tx) => {
      for (const key of keys) await markPending(tx, key);
    });
  }
}

/** The stream_to as the topic carries it: the reference's shape, the password sealed. */
export function streamToDocOf(r: StreamToRow): StreamToDoc & { plat_name: string } {
  return {
    stream_to_id: r.stream_to_id,
    plat_name: r.plat_name,
    name: r.name,
    report_mode: r.report_mode,
    ...(r.data_log_path === null ? {} : { data_log_path: r.data_log_path }),
    kafka: { ...r.kafka, ...(r.sasl_passwd === null ? {} : { sasl_passwd: r.sasl_passwd }) },
  };
}

/** The route as the topic carries it. */
export function routeDocOf(r: RouteRow): RouteDoc & { stream_filters: StreamFilter[] } {
  return { channel_id: r.channel_id, plat_name: r.plat_name, route: r.route, stream_filters: r.stream_filters };
}

function mergeByName<T extends { name: string }>(current: readonly T[], given: readonly T[]): T[] {
  const out = current.map((c) => given.find((g) => g.name === c.name) ?? c);
  for (const g of given) if (!current.some((c) => c.name === g.name)) out.push(g);
  return out;
}

async function checkStreamTos(tx: Queryable, items: readonly RouteItemDoc[], path: string): Promise<void> {
  const ids = [...new Set(items.map((i) => i.stream_to.stream_to_id))];
  if (ids.length === 0) return;
  // FOR SHARE: a stream_to cannot be deleted while a route naming it is being written.
  const { rows } = await tx.query<{ stream_to_id: string }>('SELECT stream_to_id FROM gse_stream_to WHERE stream_to_id = ANY($1::bigint[]) FOR SHARE', [ids]);
  const known = new Set(rows.map((r) => Number(r.stream_to_id)));
  const problems = items.flatMap((item, i) => (known.has(item.stream_to.stream_to_id) ? [] : [{ field: `${path}.${i}.stream_to.stream_to_id`, message: `stream_to_id ${item.stream_to.stream_to_id} does not exist (add_streamto first).` }]));
  if (problems.length > 0) throw new GseRequestError(problems);
}

async function insertTargets(tx: Queryable, channelId: number, items: readonly RouteItemDoc[]): Promise<void> {
  if (items.length === 0) return;
  await tx.query(
    `INSERT INTO gse_route_target (channel_id, position, name, stream_to_id, item)
     SELECT $1, p, n, s, i FROM unnest($2::int[], $3::text[], $4::bigint[], $5::jsonb[]) AS x(p, n, s, i)`,
    [channelId, items.map((_, i) => i), items.map((i) => i.name), items.map((i) => i.stream_to.stream_to_id), items.map((i) => JSON.stringify(i))],
  );
}

async function lockRoute(tx: Queryable, channelId: number, plat: string): Promise<RouteRow> {
  const head = await tx.query('SELECT 1 FROM gse_route WHERE channel_id = $1 AND plat_name = $2 FOR UPDATE', [channelId, plat]);
  if (head.rows.length === 0) throw new NotFoundError(`channel_id ${channelId} of plat_name "${plat}" not found`);
  return (await readRoute(tx, channelId)) as RouteRow;
}

async function readRoute(db: Queryable, channelId: number): Promise<RouteRow | undefined> {
  const head = await db.query<{ channel_id: string; plat_name: string; label: Label | null; stream_filters: StreamFilter[] }>(
    'SELECT channel_id, plat_name, label, stream_filters FROM gse_route WHERE channel_id = $1',
    [channelId],
  );
  const h = head.rows[0];
  if (!h) return undefined;
  const targets = await db.query<{ item: RouteItemDoc }>('SELECT item FROM gse_route_target WHERE channel_id = $1 ORDER BY position', [channelId]);
  return { channel_id: Number(h.channel_id), plat_name: h.plat_name, label: h.label ?? null, stream_filters: h.stream_filters, route: targets.rows.map((t) => t.item) };
}
