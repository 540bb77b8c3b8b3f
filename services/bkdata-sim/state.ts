/**
 * The objects bkdata-sim keeps: raw data (deploy plans), cleans, project grants, dataflows with their
 * nodes and deployments, and ES resource sets. Statuses that change with time (a clean `starting` →
 * `running`, a dataflow `starting` → `running`, `stopping` → `no-start`) are computed when read from the
 * time of the last transition, so nothing needs a timer.
 *
 * Persistence is pluggable ({@link SimPersistence}): memory only, or the store. Handlers mark what they
 * change with {@link SimState.touch}; the server awaits {@link SimState.flush} before answering, so an
 * answered write is durable.
 */
import type { Queryable } from '../common/store/index.ts';

export interface RawData {
  raw_data_id: number;
  bk_biz_id: number;
  raw_data_name: string;
  data_scenario: string;
  params: Record<string, unknown>;
  created_at: number;
  updated_at: number;
}

export type CleanStatus = 'stopped' | 'starting' | 'running';

export interface Clean {
  id: number;
  processing_id: string;
  raw_data_id: number;
  bk_biz_id: number;
  clean_config_name: string;
  params: Record<string, unknown>;
  /** `stopped`, or `started` with the time of the start; the visible status is computed. */
  state: 'stopped' | 'started';
  started_at: number;
  updated_at: number;
}

export type DataflowStatus = 'no-start' | 'starting' | 'running' | 'stopping';

export interface FlowNode {
  node_id: number;
  node_type: string;
  node_config: Record<string, unknown>;
  from_links: unknown[];
  frontend_info: unknown;
}

export interface Deployment {
  id: number;
  action: 'start' | 'restart';
  consuming_mode: string | null;
  cluster_group: string | null;
  status: 'success';
  at: number;
}

export interface Dataflow {
  flow_id: number;
  project_id: number;
  flow_name: string;
  /** Target of the last start/stop and its time; the visible status is computed. */
  target: 'running' | 'no-start';
  changed_at: number;
  nodes: FlowNode[];
  deployments: Deployment[];
  created_at: number;
}

export interface ResourceSet {
  resource_set_id: string;
  resource_set_name: string;
  bk_biz_id: number;
  category: string;
  connection_info: Record<string, unknown>;
  authorized_projects: number[];
  params: Record<string, unknown>;
}

export type Kind = 'raw_data' | 'clean' | 'grant' | 'flow' | 'resource_set' | 'seq';

/** Where the objects are kept between restarts. */
export interface SimPersistence {
  load(): Promise<{ kind: Kind; id: string; doc: unknown }[]>;
  /** `doc: undefined` deletes the object. */
  save(items: { kind: Kind; id: string; doc: unknown }[]): Promise<void>;
}

export const memoryPersistence: SimPersistence = {
  load: async () => [],
  save: async () => undefined,
};

/** Keeps objects in table bkdata_sim_object (migration 0201). */
export function storePersistence(db: Queryable): SimPersistence {
  return {
    async load() {
      const { rows } = await db.query<{ kind: Kind; id: string; doc: unknown }>('SELECT kind, id, doc FROM bkdata_sim_object');
      return rows;
    },
    async save(items) {
      const upserts = items.filter((i) => i.doc !== undefined);
      const deletes = items.filter((i) => i.doc === undefined);
      if (upserts.length > 0) {
        await db.query(
          `INSERT INTO bkdata_sim_object (kind, id, doc)
           SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::jsonb[])
           ON CONFLICT (kind, id) DO UPDATE SET doc = EXCLUDED.doc, updated_at = now()`,
          [upserts.map((i) => i.kind), upserts.map((i) => i.id), upserts.map((i) => JSON.stringify(i.doc))],
        );
      }
      for (const d of deletes) await db.query('DELETE FROM bkdata_sim_object WHERE kind = $1 AND id = $2', [d.kind, d.id]);
    },
  };
}

interface Sequences {
  raw: number;
  clean: number;
  flow: number;
  node: number;
  deploy: number;
}

const FIRST_IDS: Sequences = { raw: 500_000, clean: 1, flow: 1, node: 1, deploy: 1 };

export class SimState {
  readonly rawData = new Map<number, RawData>();
  readonly cleans = new Map<string, Clean>();
  /** `${project_id}|${result_table_id}` */
  readonly grants = new Set<string>();
  readonly flows = new Map<number, Dataflow>();
  readonly resourceSets = new Map<string, ResourceSet>();
  seq: Sequences = { ...FIRST_IDS };
  readonly #persistence: SimPersistence;
  readonly #dirty = new Map<string, { kind: Kind; id: string }>();

  constructor(persistence: SimPersistence = memoryPersistence) {
    this.#persistence = persistence;
  }

  async load(): Promise<void> {
    this.clear();
    for (const { kind, id, doc } of await this.#persistence.load()) {
      switch (kind) {
        case 'raw_data':
          this.rawData.set(Number(id), doc as RawData);
          break;
        case 'clean':
          this.cleans.set(id, doc as Clean);
          break;
        case 'grant':
          this.grants.add(id);
          break;
        case 'flow':
          this.flows.set(Number(id), doc as Dataflow);
          break;
        case 'resource_set':
          this.resourceSets.set(id, doc as ResourceSet);
          break;
        case 'seq':
          this.seq = { ...FIRST_IDS, ...(doc as Partial<Sequences>) };
          break;
      }
    }
  }

  /** Forgets everything (and, on the next flush, in the persistence too). */
  reset(): void {
    for (const id of this.rawData.keys()) this.touch('raw_data', id);
    for (const id of this.cleans.keys()) this.touch('clean', id);
    for (const id of this.grants) this.touch('grant', id);
    for (const id of this.flows.keys()) this.touch('flow', id);
    for (const id of this.resourceSets.keys()) this.touch('resource_set', id);
    this.clear();
    this.touch('seq', 'seq');
  }

  clear(): void {
    this.rawData.clear();
    this.cleans.clear();
    this.grants.clear();
    this.flows.clear();
    this.resourceSets.clear();
    this.seq = { ...FIRST_IDS };
  }

  next(name: keyof Sequences): number {
    const id = this.seq[name]++;
    this.touch('seq', 'seq');
    return id;
  }

  /** Marks an object as changed (or deleted); persisted by the next {@link flush}. */
  touch(kind: Kind, id: string | number): void {
    this.#dirty.set(`${kind}|${id}`, { kind, id: String(id) });
  }

  async flush(): Promise<void> {
    if (this.#dirty.size === 0) return;
    const items = [...this.#dirty.values()].map(({ kind, id }) => ({ kind, id, doc: this.#doc(kind, id) }));
    this.#dirty.clear();
    await this.#persistence.save(items);
  }

  #doc(kind: Kind, id: string): unknown {
    switch (kind) {
      case 'raw_data':
        return this.rawData.get(Number(id));
      case 'clean':
        return this.cleans.get(id);
      case 'grant':
        return this.grants.has(id) ? true : undefined;
      case 'flow':
        return this.flows.get(Number(id));
      case 'resource_set':
        return this.resourceSets.get(id);
      case 'seq':
        return this.seq;
    }
  }
}
