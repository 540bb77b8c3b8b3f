/**
 * {@link RouteWatcher}: the {@link RouteSource} publishers use, kept on the compacted topic
 * `<prefix>.gse.routes` (records: ./records.ts).
 *
 * - Reads the topic from its beginning with a follower of its own (no committed offsets: every start
 *   rebuilds the whole table) and applies each record to a {@link RouteTable}: a stream_to sets a
 *   receiver, a route sets a data id's route, a tombstone removes the key's object. A route whose target
 *   list is empty (a data id allocated by add_route and not routed yet) counts as no route: the
 *   publisher's default.
 * - Sealed SASL passwords are opened with the SecretBox; one that does not open (another key, no box)
 *   leaves the receiver without a password, counted and logged once per receiver.
 * - Malformed records (a key or value this version does not understand) are skipped, counted and logged
 *   once per key; they never stop the watcher.
 * - `start()` resolves once the records up to the end offsets seen at start are applied, so a publisher
 *   started after it has every route before its first send; then it keeps following. The table is rebuilt
 *   aside and swapped in whole when caught up (a restart never shows a partial or older table meanwhile). It rejects when
 *   the topic is missing or the broker does not answer (the caller decides: fail, or retry in the
 *   background with the default routes meanwhile).
 * - `onChange` listeners run after every applied change (a listener that throws is logged, not fatal).
 */
import type { FollowedRecord, TopicFollower } from '../bus/index.ts';
import type { Component } from '../lifecycle.ts';
import type { Logger } from '../log.ts';
import { counter, gauge, type Registry } from '../metrics.ts';
import { SecretError, type SecretBox } from '../secrets.ts';
import { dataRouteOf, decodeRoute, decodeStreamTo, MalformedRouteRecord, parseRoutesKey, receiverOf, SASL_PASSWD_CONTEXT } from './records.ts';
import { RouteTable, type RouteSource } from './routes.ts';

/** What the watcher needs of the bus (a `Bus`, or a test double). */
export interface FollowerSource {
  follower(options: { topic: string; onRecords: (records: readonly FollowedRecord[]) => void; groupPrefix?: string; catchUpTimeoutMs?: number }): Pick<TopicFollower, 'start' | 'stop'>;
}

export interface RouteWatcherOptions {
  /** The bus (`Bus` is one). */
  bus: FollowerSource;
  /** `<prefix>.gse.routes` (topicName(prefix, 'gseRoutes')). */
  topic: string;
  /** Opens sealed SASL passwords; without one, receivers with a password are kept without it (warned). */
  box?: SecretBox;
  logger: Logger;
  registry?: Registry;
  /** How long start() waits to catch up. Default 60 000 ms. */
  catchUpTimeoutMs?: number;
}

function watcherMetrics(registry: Registry) {
  return {
    applied: counter(registry, { name: 'bkstream_gse_routes_applied_total', help: 'Records of the GSE routes topic applied, by kind (stream_to, route) and op (set, delete)', labelNames: ['kind', 'op'] }),
    skipped: counter(registry, { name: 'bkstream_gse_routes_skipped_total', help: 'Records of the GSE routes topic skipped, by reason (malformed, password)', labelNames: ['reason'] }),
    receivers: gauge(registry, { name: 'bkstream_gse_receivers', help: 'Receivers (stream_to) known from the GSE routes topic' }),
    routes: gauge(registry, { name: 'bkstream_gse_routes', help: 'Data id routes known from the GSE routes topic' }),
  };
}

export class RouteWatcher implements RouteSource, Component {
  readonly name = 'gse-route-watcher';
  readonly #opts: RouteWatcherOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<(table: RouteTable) => void>();
  readonly #metrics: ReturnType<typeof watcherMetrics> | undefined;
  /** Keys already warned about (malformed records, passwords that do not open): one log line each. */
  readonly #warned = new Set<string>();
  #table = RouteTable.EMPTY;
  /** While a start reads the topic: the table being rebuilt (swapped in once caught up). */
  #staging: RouteTable | undefined;
  #follower: Pick<TopicFollower, 'start' | 'stop'> | undefined;
  #stopping: Promise<void> | undefined;

  constructor(options: RouteWatcherOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'gse-route-watcher', topic: options.topic });
    this.#metrics = options.registry ? watcherMetrics(options.registry) : undefined;
  }

  current(): RouteTable {
    return this.#table;
  }

  onChange(listener: (table: RouteTable) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async start(): Promise<void> {
    if (this.#follower) return;
    this.#stopping = undefined;
    const follower = this.#opts.bus.follower({
      topic: this.#opts.topic,
      groupPrefix: 'bkstream-gse-routes',
      onRecords: (records) => this.applyRecords(records),
      ...(this.#opts.catchUpTimeoutMs === undefined ? {} : { catchUpTimeoutMs: this.#opts.catchUpTimeoutMs }),
    });
    this.#follower = follower;
    // Rebuilt aside and swapped in whole: a restart never shows publishers a partial or older table.
    this.#staging = RouteTable.EMPTY;
    try {
      await follower.start();
    } catch (err) {
      this.#staging = undefined;
      this.#follower = undefined;
      await follower.stop().catch(() => undefined);
      throw err;
    }
    const rebuilt = this.#staging ?? RouteTable.EMPTY;
    this.#staging = undefined;
    this.#publish(new RouteTable(rebuilt.receivers, rebuilt.routes, this.#table.version + 1));
    this.#log.info('routes read', { receivers: this.#table.receivers.length, routes: this.#table.routes.length, version: this.#table.version });
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      const follower = this.#follower;
      this.#follower = undefined;
      await follower?.stop();
    })();
    return this.#stopping;
  }

  /** Applies records in order (what the follower calls; public so the logic is testable without a broker). */
  applyRecords(records: readonly FollowedRecord[]): void {
    const base = this.#staging ?? this.#table;
    let table = base;
    for (const r of records) table = this.#apply(table, r);
    if (table === base) return;
    if (this.#staging) this.#staging = table;
    else this.#publish(table);
  }

  #publish(table: RouteTable): void {
    this.#table = table;
    this.#metrics?.receivers.set(table.receivers.length);
    this.#metrics?.routes.set(table.routes.length);
    for (const l of this.#listeners) {
      try {
        l(table);
      } catch (err) {
        this.#log.error('route change listener failed', { err });
      }
    }
  }

  #apply(table: RouteTable, r: FollowedRecord): RouteTable {
    const keyText = r.key?.toString('utf8') ?? '';
    try {
      const key = parseRoutesKey(keyText);
      if (r.value === null || r.value.length === 0) {
        this.#metrics?.applied.inc({ kind: key.kind, op: 'delete' });
        if (key.kind === 'stream_to') return table.receiver(key.id) ? table.withoutReceiver(key.id) : table;
        return table.route(key.id) ? table.withoutRoute(key.id) : table;
      }
      let value: unknown;
      try {
        value = JSON.parse(r.value.toString('utf8'));
      } catch {
        throw new MalformedRouteRecord('value is not JSON');
      }
      let next: RouteTable;
      if (key.kind === 'route') {
        const doc = decodeRoute(value, key.id);
        // A channel with no target yet (an allocated data id not routed): like no route, the publisher's default.
        next = doc.route.length === 0 ? (table.route(key.id) ? table.withoutRoute(key.id) : table) : table.withRoute(dataRouteOf(doc));
      } else {
        next = table.withReceiver(receiverOf(decodeStreamTo(value, key.id), (sealed) => this.#open(keyText, sealed)));
      }
      this.#metrics?.applied.inc({ kind: key.kind, op: 'set' });
      return next;
    } catch (err) {
      if (!(err instanceof MalformedRouteRecord)) throw err;
      this.#metrics?.skipped.inc({ reason: 'malformed' });
      if (!this.#warned.has(`malformed:${keyText}`)) {
        this.#warned.add(`malformed:${keyText}`);
        this.#log.warn('malformed GSE routes record skipped', { key: keyText.slice(0, 80), partition: r.partition, offset: r.offset, message: err.message });
      }
      return table;
    }
  }

  #open(key: string, sealed: string): string | undefined {
    const box = this.#opts.box;
    try {
      if (!box) throw new SecretError('no secret key to open it with (set BKSTREAM_SECRET_KEY as the orchestrator has it)');
      return box.open(sealed, SASL_PASSWD_CONTEXT);
    } catch (err) {
      if (!(err instanceof SecretError)) throw err;
      this.#metrics?.skipped.inc({ reason: 'password' });
      if (!this.#warned.has(`password:${key}`)) {
        this.#warned.add(`password:${key}`);
        this.#log.warn('SASL password of a receiver does not open; the receiver is kept without it', { key, message: err.message });
      }
      return undefined;
    }
  }
}
