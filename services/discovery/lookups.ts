/**
 * What the discoverers look up per application, cached in memory and loaded before a batch is
 * processed (so the discoverers themselves stay synchronous and pure):
 * - the rule set (apm_discover_rule: the app's rules, then the global ones), refreshed after a TTL;
 * - a business's hosts (cmdb_host: IP → cloud id, host id), refreshed after a TTL and updated at once by
 *   the events consumer of this process;
 * - the stored kind/category of the app's topo nodes, read once when the app is first seen.
 * A stale entry is served while it refreshes in the background; only a missing one is waited for.
 */
import { errorMessage } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { Queryable } from '../common/store/index.ts';
import type { CmdbHostRow } from './cmdb.ts';
import type { NodeKinds } from './dedupe.ts';
import type { CmdbHost, CmdbLookup } from './discoverers/host.ts';
import type { NodeKindLookup } from './discoverers/relation.ts';
import { SEP, type JsonValue } from './records.ts';
import { buildRuleSet, type RuleRow, type RuleSet } from './rules.ts';
import { DISCOVERED } from './tables.ts';

interface Cached<V> {
  value: V | undefined;
  loadedAt: number;
  loading: Promise<void> | undefined;
}

export interface LookupsOptions {
  db: Queryable;
  logger: Logger;
  nodeKinds: NodeKinds;
  ruleTtlMs: number;
  cmdbTtlMs: number;
  /** Most topo nodes read per app when it is first seen. */
  maxNodesPerApp: number;
  now?: () => number;
}

export class Lookups implements CmdbLookup, NodeKindLookup {
  readonly #opts: LookupsOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #rules = new Map<string, Cached<RuleSet>>();
  readonly #hosts = new Map<number, Cached<Map<string, CmdbHost>>>();
  readonly #nodesLoaded = new Map<string, Cached<true>>();
  /** The rows each cached rule set was built from, so an unchanged reload keeps the same set. */
  readonly #ruleRows = new Map<string, string>();
  #cmdbVersion = 0;

  constructor(options: LookupsOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'discovery.lookups' });
    this.#now = options.now ?? Date.now;
  }

  /** The rule set of an app; {@link ensure} must have loaded it. */
  rules(bkBizId: number, appName: string): RuleSet {
    const set = this.#rules.get(bkBizId + SEP + appName)?.value;
    if (!set) throw new Error(`rules of ${bkBizId}/${appName} are not loaded`);
    return set;
  }

  host(bkBizId: number, ip: string): CmdbHost | undefined {
    return this.#hosts.get(bkBizId)?.value?.get(ip);
  }

  /** Changes whenever the host map of some business changes (shapes that used it are then re-run). */
  get cmdbVersion(): number {
    return this.#cmdbVersion;
  }

  nodeKind(bkBizId: number, appName: string, topoKey: string): { kind: string; category: string } | undefined {
    return this.#opts.nodeKinds.nodeKind(bkBizId, appName, topoKey);
  }

  /** Hosts just reported by an agent (this process's events consumer). */
  addHosts(rows: readonly CmdbHostRow[]): void {
    for (const r of rows) {
      const map = this.#hosts.get(r.bk_biz_id)?.value;
      const seen = map?.get(r.ip);
      if (!map || (seen?.bk_cloud_id === r.bk_cloud_id && seen.bk_host_id === r.bk_host_id)) continue;
      map.set(r.ip, { bk_cloud_id: r.bk_cloud_id, bk_host_id: r.bk_host_id });
      this.#cmdbVersion++;
    }
  }

  /**
   * Makes sure everything the given apps need is loaded. Returns undefined when nothing has to be
   * waited for (the common case), else a promise.
   */
  ensure(apps: Iterable<readonly [number, string]>): Promise<void> | undefined {
    const waits: Promise<void>[] = [];
    for (const [biz, app] of apps) {
      const appKey = biz + SEP + app;
      this.#refresh(this.#rules, appKey, this.#opts.ruleTtlMs, () => this.#loadRules(biz, app), waits);
      this.#refresh(this.#hosts, biz, this.#opts.cmdbTtlMs, () => this.#loadHosts(biz), waits);
      this.#refresh(this.#nodesLoaded, appKey, Infinity, () => this.#loadNodes(biz, app), waits);
    }
    return waits.length > 0 ? Promise.all(waits).then(() => undefined) : undefined;
  }

  #refresh<K, V>(cache: Map<K, Cached<V>>, key: K, ttlMs: number, load: () => Promise<V>, waits: Promise<void>[]): void {
    let entry = cache.get(key);
    const now = this.#now();
    if (entry?.value !== undefined && now - entry.loadedAt < ttlMs) return;
    if (!entry) cache.set(key, (entry = { value: undefined, loadedAt: 0, loading: undefined }));
    const e = entry;
    e.loading ??= load().then(
      (value) => {
        e.value = value;
        e.loadedAt = this.#now();
      },
      (err: unknown) => {
        // With a value in hand keep serving it; without one the batch fails and is retried by the bus.
        this.#log.warn('lookup load failed', { key: String(key), error: errorMessage(err) });
        if (e.value === undefined) throw err;
      },
    ).finally(() => {
      e.loading = undefined;
    });
    if (e.value === undefined) waits.push(e.loading);
  }

  async #loadRules(biz: number, app: string): Promise<RuleSet> {
    const { rows } = await this.#opts.db.query<RuleRow>(
      `SELECT bk_biz_id, app_name, type, category_id, topo_kind, predicate_key, instance_key, endpoint_key, sort
       FROM apm_discover_rule WHERE (bk_biz_id = 0 AND app_name = '') OR (bk_biz_id = $1 AND app_name = $2)
       ORDER BY id`,
      [biz, app],
    );
    const text = JSON.stringify(rows);
    const appKey = biz + SEP + app;
    const previous = this.#rules.get(appKey)?.value;
    if (previous && this.#ruleRows.get(appKey) === text) return previous;
    this.#ruleRows.set(appKey, text);
    const set = buildRuleSet(rows);
    if (set.fallbackOther) this.#log.warn('no `other` category rule for the app; using the built-in one', { bk_biz_id: biz, app_name: app });
    return set;
  }

  async #loadHosts(biz: number): Promise<Map<string, CmdbHost>> {
    const { rows } = await this.#opts.db.query<{ ip: string; bk_cloud_id: number; bk_host_id: number | null }>(
      // Of several hosts with one IP in a business the most recently reported wins.
      'SELECT ip, bk_cloud_id, bk_host_id FROM cmdb_host WHERE bk_biz_id = $1 ORDER BY last_seen, id',
      [biz],
    );
    const map = new Map(rows.map((r) => [r.ip, { bk_cloud_id: r.bk_cloud_id, bk_host_id: r.bk_host_id }]));
    const previous = this.#hosts.get(biz)?.value;
    if (!previous || previous.size !== map.size || [...map].some(([ip, h]) => previous.get(ip)?.bk_cloud_id !== h.bk_cloud_id || previous.get(ip)?.bk_host_id !== h.bk_host_id)) {
      this.#cmdbVersion++;
      return map;
    }
    return previous;
  }

  async #loadNodes(biz: number, app: string): Promise<true> {
    const { rows } = await this.#opts.db.query<{ topo_key: string; extra_data: Record<string, unknown> }>(
      `SELECT topo_key, extra_data FROM ${DISCOVERED.node.sql} WHERE bk_biz_id = $1 AND app_name = $2 ORDER BY last_seen DESC LIMIT $3`,
      [biz, app, this.#opts.maxNodesPerApp],
    );
    for (const r of rows) {
      const x = r.extra_data;
      if (typeof x.kind === 'string' && typeof x.category === 'string') {
        this.#opts.nodeKinds.merge(biz, app, r.topo_key, {
          category: x.category,
          kind: x.kind,
          predicate_value: (x.predicate_value ?? null) as JsonValue,
          service_language: typeof x.service_language === 'string' ? x.service_language : null,
        });
      }
    }
    return true;
  }
}
