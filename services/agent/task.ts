/**
 * The contract between the agent's schedulers and its task types (bkmonitorbeat's task plugins).
 *
 * A task type is one file under `tasks/` exporting a {@link TaskType}, listed once in `tasks/index.ts`.
 * The config engine (config-engine.ts) reads every task entry — a `<type>_task` section of the main file
 * or a child file of the `include` directory — into a {@link BaseTaskConfig} (reference §A3.3: defaults,
 * clamps, data id, identity), hands the raw entry to the type's `parse` for its own fields, and routes the
 * result to the scheduler the type names. A scheduler calls `run` — once per period (main scheduler) or as
 * a long-running listener restarted when it returns (listen, keyword).
 *
 * Tasks never talk to Kafka: they `emit` {@link TaskOutput}s into the agent's one bounded channel, and the
 * publisher adds the envelope (node id, cloud id, ip, hostname, biz id, host id, agent id, time), encodes
 * Avro `AgentEvent` / `MetricBatch`, and produces (through the on-disk spool, so nothing is lost while
 * Kafka is away).
 *
 * Helpers for `parse`: `config-fields.ts` (typed reads of raw YAML values that push a problem with its
 * key: durations `10s`/`1m`/plain seconds, ints, strings, booleans, string lists, regex lists). Helpers for
 * `run`: `tasks/gather-up.ts` (the `bkm_gather_up` series). The clock to use in a run is `ctx.now()` and
 * `ctx.sleep()`, never `Date.now()`/`setTimeout`, so tests can drive time.
 */
import type { ConfigProblem } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { ProbeResources } from './probe/budget.ts';

export type { ProbeResources } from './probe/budget.ts';

/** Which scheduler runs a type (reference §A2: keyword → keyword, snmptrap/metricbeat/kubeevent/dmesg → listen, rest → main). */
export type SchedulerKind = 'main' | 'listen' | 'keyword';

/** The fields every task has after cleaning (reference `BaseTaskParam`, §A3.3). */
export interface BaseTaskConfig {
  /** Task type, e.g. `basereport`, `http`. */
  readonly type: string;
  readonly taskId: number;
  /** The task's biz id: a `bk_biz_id` label value wins over the `bk_biz_id` field (reference GetBizID). */
  readonly bkBizId: number;
  readonly dataId: number;
  /** > 0. Single-instance sections are not cleaned by the reference; a missing period there is 10 s (with a warning). */
  readonly periodMs: number;
  /** Cleaned tasks: 3 s default, clamped to the meta `max_timeout` and to the period. Single-instance sections: as given (0 when absent). */
  readonly timeoutMs: number;
  readonly availableDurationMs: number;
  /** Label groups: every record is repeated once per group with the group's keys merged in (§A4). */
  readonly labels: readonly Readonly<Record<string, string>>[];
  readonly tags: Readonly<Record<string, string>>;
  /**
   * Identity: a hash of the whole cleaned config (+ file name, type, version for child files); the type
   * name for single-instance types with `fixedIdent`. Equal ident = the same task (reload keeps its job).
   */
  readonly ident: string;
  /** Where the entry came from: `main:<section>` or the child file's path (logs, check mode). */
  readonly source?: string;
}

/** Host identity the publisher stamps on every record (from config and the hostid file). */
export interface HostIdentity {
  readonly ip: string;
  readonly bkCloudId: number;
  readonly bkBizId: number;
  readonly hostname: string;
  readonly bkHostId: number;
  readonly bkAgentId: string;
  /** `"<cloud>:<ip>"`. */
  readonly nodeId: string;
}

/**
 * This host's CMDB topology as the hostid file gives it (reference host id watcher, `GetInfo`): keyword and
 * snmptrap records are expanded by it, once per topology link a task label targets (§A5.11, §A5.12;
 * tasks/cmdb-level.ts).
 */
export interface HostTopology {
  /** The file's `bk_host_innerip` (its first address); '' when absent. */
  readonly innerIp: string;
  /** The file's `bk_cloud_id` as decimal text; '0' when absent (the watcher keeps it as a string). */
  readonly cloudId: string;
  /**
   * One map per association: `bk_biz_id`, `bk_set_id`, `bk_module_id` and the custom `layer` chain
   * flattened (`<bk_obj_id>: <bk_inst_id>`), integers; at most `cmdb_level_max_length` of them.
   */
  readonly links: readonly Readonly<Record<string, number>>[];
}

/** A reference document (raw document / uptime-check / event shape) published as an Avro `AgentEvent`. */
export interface EventOutput {
  readonly kind: 'event';
  /** The reference's event type (`basereport`, `http`, `static`, `heartbeat`, ...). */
  readonly eventType: string;
  readonly dataId: number;
  /** Default: the task's / host's biz id. */
  readonly bkBizId?: number;
  readonly taskId?: number;
  /** ms since the epoch; default: now. */
  readonly timestampMs?: number;
  /**
   * The reference's gather status of the document (0 ok, -1 unknown, other = failed); counted for the
   * heartbeat (`published` / `errors`). Uptime-check documents also keep it in their body.
   */
  readonly status?: number;
  /**
   * The reference's `not_uptimecheck` marker: the document is published only when `status` is 0, and
   * `status` is not part of its body (§A4 beater layer). Default false.
   */
  readonly notUptimeCheck?: boolean;
  /**
   * Whether the publisher adds `bk_cmdb_level` (the hostid file's topology) to the body. Default true;
   * the reference opts out for ping, gather_up, exceptionbeat, static, kubeevent, dmesg, selfstats, ...
   */
  readonly cmdbLevel?: boolean;
  /**
   * Whether the publisher's beater layer applies (§A4 step 2: `node_id`, `bk_cloud_id`, `ip`, `type`,
   * `bk_cmdb_level`, status counting). Default true; false for the heartbeat, which the reference sends
   * straight to its output. The output layer (`bk_biz_id`, `gseindex`, `cloudid`, `ip`, `hostname`,
   * `bk_agent_id`, `bk_host_id`) applies to every event.
   */
  readonly beaterLayer?: boolean;
  /** Flat views for consumers that do not parse the body (optional). */
  readonly dimensions?: Readonly<Record<string, string>>;
  readonly metrics?: Readonly<Record<string, number>>;
  /** The reference's JSON document, unchanged in field names, nesting, types and units. */
  readonly body: Readonly<Record<string, unknown>>;
}

/** Time series (script, metricbeat, proccustom, gather-up, selfstats) published as an Avro `MetricBatch`. */
export interface MetricsOutput {
  readonly kind: 'metrics';
  /** The reference's event type, for logs and metrics (`script`, `gather_up`, ...). */
  readonly eventType: string;
  readonly dataId: number;
  readonly bkBizId?: number;
  readonly taskId?: number;
  /** What the series describe; part of the record key (`bk_biz_id:dataid:target`). */
  readonly target: string;
  readonly records: readonly {
    /** ms since the epoch. */
    readonly timestamp: number;
    readonly metrics: Readonly<Record<string, number>>;
    readonly dimensions: Readonly<Record<string, string>>;
  }[];
}

export type TaskOutput = EventOutput | MetricsOutput;

/** A small persistent key/value store under the state directory (reference libgse KV store, §A6). */
export interface StateStore {
  get(key: string): string | undefined;
  /** `ttlMs` > 0 lets the entry expire. */
  set(key: string, value: string, ttlMs?: number): void;
  delete(key: string): void;
}

/** Settings of the main file's `bkmonitorbeat:` section that tasks may read (reference GlobalConfig). */
export interface GlobalSettings {
  readonly mode: 'daemon' | 'check' | 'cron';
  /** `gather_up_beat.dataid` (0 = no gather-up records). */
  readonly gatherUpDataId: number;
  readonly disableNetlink: boolean;
  readonly keepOneDimension: boolean;
  /** `host_id_path` (the CMDB hostid file). */
  readonly hostIdPath: string;
  /** `include` (child task directory), '' when not configured. */
  readonly include: string;
  /**
   * Where the host's filesystems are seen (bkstream's addition, env AGENT_PROC_ROOT / AGENT_SYS_ROOT /
   * AGENT_ROOTFS): `/proc`, `/sys`, `/` on a host; `/host/proc`, `/host/sys`, `/host/root` in the DaemonSet.
   * Host collectors read through these, never through hard-coded paths.
   */
  readonly paths: { readonly proc: string; readonly sys: string; readonly rootfs: string };
  /** The whole `bkmonitorbeat:` section as parsed, for anything else. */
  readonly raw: Readonly<Record<string, unknown>>;
}

/** What the agent knows about itself (selfstats, heartbeat). */
export interface AgentSelf {
  readonly version: string;
  /** ms since the epoch of the agent's start. */
  readonly startedAtMs: number;
  /** Reloads applied since start. */
  reloadTotal(): number;
  /** Configured tasks per type, all schedulers. */
  runningTasks(): Readonly<Record<string, number>>;
}

/** What a run gets from its scheduler. */
export interface TaskContext {
  /**
   * Aborted when the task is stopped or replaced, or when a main-scheduler run reaches its deadline
   * (`timeoutMs`, or 2 × period for tasks without a timeout). A run should return soon after.
   */
  readonly signal: AbortSignal;
  /** The clock (ms since the epoch); injected so schedulers and tasks are testable. */
  now(): number;
  /** Waits `ms` on the injected clock; rejects with an AbortError when `signal` aborts. */
  sleep(ms: number): Promise<void>;
  /** Queues one output on the agent's bounded channel; waits while the channel is full (back-pressure). */
  emit(output: TaskOutput): Promise<void>;
  /**
   * Takes `n` from the type's two-level concurrency limit (`concurrency_limit.task.<type>`: per instance
   * and per task, §A2.6) and resolves to the function that gives them back; immediate when the type has no
   * limit. Rejects when `signal` aborts first (reference: the acquire fails with the context).
   */
  acquire(n: number): Promise<() => void>;
  /** Asks the agent to reload its configuration (procconf/procsync after writing child files). */
  requestReload(reason: string): void;
  readonly state: StateStore;
  readonly host: HostIdentity;
  readonly global: GlobalSettings;
  readonly agent: AgentSelf;
  readonly logger: Logger;
  /**
   * The host's CMDB topology now (each call reads the current one: the hostid file is re-read when it
   * changes), or undefined when none is in use (no hostid file, an unparsable one, `ignore_cmdb_level`).
   * Optional so that contexts made by tests and tools may leave it out: that reads as no topology.
   */
  readonly topology?: () => HostTopology | undefined;
  /** The agent's probe bounds; absent: the process defaults of probe/budget.ts (tests, benchmarks). */
  readonly probes?: ProbeResources;
}

/** One configured task. */
export interface Task<C extends BaseTaskConfig = BaseTaskConfig> {
  readonly config: C;
  /** One run (main scheduler) or the whole listener's life (listen / keyword schedulers). */
  run(ctx: TaskContext): Promise<void>;
  /** Releases what the task holds between runs (watchers, sockets). Idempotent. */
  stop?(): Promise<void>;
}

/**
 * How a type's configuration is laid out (reference §A3.2):
 * - `list`: a meta section (`dataid`, `max_timeout`, `min_period`, ...) holding `tasks: [...]`, each entry
 *   cleaned (defaults and clamps) — tcp, udp, http, ping, script, metricbeat, keyword, snmptrap, static;
 * - `single`: the section (or child file) is itself the one task's config, not cleaned — basereport,
 *   exceptionbeat, processbeat, proccustom, procconf, procsync, selfstats, ...
 */
export type ConfigShape = 'list' | 'single';

/** Meta-level defaults of a list type (reference `BaseTaskMetaParam`; a file/section's own values win). */
export interface MetaDefaults {
  /** Default 3 000 (reference DefaultTimeout). */
  readonly maxTimeoutMs?: number;
  /** Default 10 000 (reference DefaultPeriod). */
  readonly minPeriodMs?: number;
}

/** A task type: one file under `tasks/`, one line in `tasks/index.ts`. */
export interface TaskType<C extends BaseTaskConfig = BaseTaskConfig> {
  /** The task type, also the child file `type:` that selects it (`snmptrap` for trap tasks). */
  readonly type: string;
  readonly scheduler: SchedulerKind;
  readonly shape: ConfigShape;
  /** Key of the type's section in the main file's `bkmonitorbeat:` (e.g. `basereport_task`, `trap_task`); none = child files only. */
  readonly section?: string;
  /**
   * `single` types: whether the section configures a task at all (the reference's emptiness rule, e.g.
   * selfstats needs `dataid > 0`, processbeat needs processes and a data id). Default: always.
   */
  enabled?(config: C): boolean;
  /** `single` types: the ident is the type name whatever the config (default true; processbeat and proccustom hash their config). */
  readonly fixedIdent?: boolean;
  /**
   * Main scheduler: skip a run (counted as `skipped`) while the previous run of the same task is still
   * going — the reference's own guard in basereport, processbeat, proccustom, exceptionbeat, procbin,
   * procsnapshot, socketsnapshot, shellhistory, rpmpackage. A run past its deadline no longer counts.
   * Default false: runs may overlap, as the reference's scheduler allows.
   */
  readonly skipIfRunning?: boolean;
  /** `list` types: meta defaults other than the reference's 3 s / 10 s. */
  readonly metaDefaults?: MetaDefaults;
  /**
   * The type's own fields of one task entry, on top of the cleaned base. Problems are pushed with the
   * key they concern, relative to the entry (`cpu.stat_times`; the engine prefixes the section or file
   * and the entry: use `fields(raw, problems, '')` of config-fields.ts). A child file with any problem is
   * skipped; a main-file section's problem stops start-up. `meta` is the enclosing section / child file (list types: `max_buffer_size`, ...; for
   * `single` types it is `raw` itself).
   */
  parse(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[], meta: Readonly<Record<string, unknown>>): C;
  create(config: C): Task<C>;
}
