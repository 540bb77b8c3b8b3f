/**
 * GSE data routing, the in-memory side (shared by the registry that writes routes and the agent and
 * collector that publish by them).
 *
 * The reference's GSE keeps two kinds of objects (bk-monitor `api/gse/default.py`):
 * - a **stream_to** (receiver): a Kafka cluster's addresses and SASL settings, by `stream_to_id`;
 * - a **route** by data id (`channel_id`): one or more targets, each a stream_to with a topic (and an
 *   optional partition).
 * The registry (services/orchestrator/gse/) stores them and publishes every change to the compacted topic
 * `<prefix>.gse.routes` (key `stream_to:<id>` or `route:<channel_id>`, JSON value, a tombstone on delete);
 * publishers keep a {@link RouteTable} built from that topic ({@link RouteSource}) and resolve each record's
 * data id when they send it, so a route change applies without a restart.
 *
 * A data id without a route resolves to `undefined`: the publisher's default (the bkstream topics on the
 * bus), which is how the default install "routes every data id to the bkstream topics".
 */

/** A Kafka receiver (reference stream_to with `report_mode: kafka`). */
export interface KafkaReceiver {
  readonly streamToId: number;
  readonly name: string;
  /** `host:port` of each broker (reference `storage_address: [{ip, port}]`). */
  readonly brokers: readonly string[];
  /** SASL, when the receiver has a user name. The password is plain text here (opened by the watcher). */
  readonly sasl?: { readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; readonly username: string; readonly password: string };
  /** TLS to the brokers (reference `security_protocol` SASL_SSL / SSL). */
  readonly ssl: boolean;
}

/** One target of a route: a receiver and the topic (and partition) on it. */
export interface RouteTarget {
  readonly streamToId: number;
  readonly topic: string;
  readonly partition?: number;
}

/** A data id's route (reference route with `condition.channel_id`). */
export interface DataRoute {
  readonly channelId: number;
  readonly name: string;
  readonly targets: readonly RouteTarget[];
}

/** Where one record goes: a receiver, a topic, maybe a partition. */
export interface ResolvedTarget {
  readonly receiver: KafkaReceiver;
  readonly topic: string;
  readonly partition?: number;
}

/** An immutable snapshot of the routing state. */
export class RouteTable {
  /** Increments with every change a source applies; publishers can cache resolutions per version. */
  readonly version: number;
  readonly #receivers: ReadonlyMap<number, KafkaReceiver>;
  readonly #routes: ReadonlyMap<number, DataRoute>;

  constructor(receivers: Iterable<KafkaReceiver> = [], routes: Iterable<DataRoute> = [], version = 0) {
    this.version = version;
    this.#receivers = new Map([...receivers].map((r) => [r.streamToId, r]));
    this.#routes = new Map([...routes].map((r) => [r.channelId, r]));
  }

  static readonly EMPTY = new RouteTable();

  get receivers(): readonly KafkaReceiver[] {
    return [...this.#receivers.values()];
  }

  get routes(): readonly DataRoute[] {
    return [...this.#routes.values()];
  }

  receiver(streamToId: number): KafkaReceiver | undefined {
    return this.#receivers.get(streamToId);
  }

  route(channelId: number): DataRoute | undefined {
    return this.#routes.get(channelId);
  }

  /**
   * Where a data id's records go: undefined when it has no route (the caller's default). Targets whose
   * receiver is unknown are left out; a route with none left resolves to `[]` (nowhere to send: the caller
   * keeps the record and retries, it never falls back silently).
   */
  resolve(dataId: number): readonly ResolvedTarget[] | undefined {
    const route = this.#routes.get(dataId);
    if (!route) return undefined;
    const out: ResolvedTarget[] = [];
    for (const t of route.targets) {
      const receiver = this.#receivers.get(t.streamToId);
      if (receiver) out.push({ receiver, topic: t.topic, ...(t.partition === undefined ? {} : { partition: t.partition }) });
    }
    return out;
  }

  withReceiver(r: KafkaReceiver): RouteTable {
    return new RouteTable([...this.#receivers.values()].filter((x) => x.streamToId !== r.streamToId).concat(r), this.#routes.values(), this.version + 1);
  }

  withoutReceiver(streamToId: number): RouteTable {
    return new RouteTable([...this.#receivers.values()].filter((x) => x.streamToId !== streamToId), this.#routes.values(), this.version + 1);
  }

  withRoute(r: DataRoute): RouteTable {
    return new RouteTable(this.#receivers.values(), [...this.#routes.values()].filter((x) => x.channelId !== r.channelId).concat(r), this.version + 1);
  }

  withoutRoute(channelId: number): RouteTable {
    return new RouteTable(this.#receivers.values(), [...this.#routes.values()].filter((x) => x.channelId !== channelId), this.version + 1);
  }
}

/** What publishers read routes from (the topic watcher, or a fixed table in tests). */
export interface RouteSource {
  current(): RouteTable;
  /** Called after every change; returns an unsubscribe function. */
  onChange(listener: (table: RouteTable) => void): () => void;
}

/** A source that never changes (tests, and publishers with routing off). */
export class StaticRouteSource implements RouteSource {
  #table: RouteTable;
  readonly #listeners = new Set<(table: RouteTable) => void>();
  constructor(table: RouteTable = RouteTable.EMPTY) {
    this.#table = table;
  }
  current(): RouteTable {
    return this.#table;
  }
  /** Replaces the table (tests drive route changes with this). */
  set(table: RouteTable): void {
    this.#table = table;
    for (const l of this.#listeners) l(table);
  }
  onChange(listener: (table: RouteTable) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
