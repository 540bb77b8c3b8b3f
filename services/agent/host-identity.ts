/**
 * Who this host is (reference hostid watcher, pkg/utils/host, and ParseConfig): the CMDB hostid file
 * (`host_id_path`, default /var/lib/gse/host/hostid; JSON with `bk_host_innerip`, `bk_cloud_id`,
 * `bk_host_id`, `associations`, `dataid`) wins over the main file's `ip` / `bk_cloud_id` / `bk_biz_id`
 * (biz only when non-zero), and `node_id` becomes `"<cloud>:<ip>"`. The file is polled every 10 s and
 * re-read when its mtime changes.
 *
 * Differences from the reference (README): a missing or unparsable hostid file leaves the configured
 * identity in place (the reference blanks `ip` to "" and `node_id` to ":", errata 15, and with
 * `ignore_cmdb_level` forces 127.0.0.1); `bk_agent_id` comes from the file's `bk_agent_id` key when
 * present (the reference asks the GSE agent); `output.bkpipe.hostid` / `cloudid` / `hostip` of the main
 * file are used as the reference's GSE output layer uses them; AGENT_HOST_IP overrides the main file's
 * `ip` (a DaemonSet passes the node's IP).
 */
import { readFile, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import type { Logger } from '../common/log.ts';
import { isMap, type RawMap } from './config-fields.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import type { MainConfig } from './main-config.ts';
import type { HostIdentity, HostTopology } from './task.ts';

/** What the hostid file says (fields absent from it are undefined). */
export interface HostIdFile {
  innerIp?: string;
  cloudId?: number;
  hostId?: number;
  bizId?: number;
  agentId?: string;
  /** The GSE static data id (`dataid`): overrides static_task's data id. */
  staticDataId?: number;
  /** `bk_cmdb_level`: one map per association (bk_biz_id, bk_set_id, bk_module_id and custom layers), at most `maxLevels`. */
  cmdbLevel: Record<string, number>[];
}

function int(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v);
  return undefined;
}

/** Parses a hostid file's text; throws when it is not a JSON object. */
export function parseHostIdFile(text: string, maxLevels = 10): HostIdFile {
  const doc: unknown = JSON.parse(text);
  if (!isMap(doc)) throw new Error('hostid file is not a JSON object');
  const ip = typeof doc.bk_host_innerip === 'string' ? (doc.bk_host_innerip.split(',')[0] ?? '').trim() : undefined;
  const cmdbLevel: Record<string, number>[] = [];
  const associations = doc.associations;
  if (isMap(associations)) {
    for (const v of Object.values(associations)) {
      if (cmdbLevel.length >= maxLevels) break;
      if (!isMap(v)) continue;
      const level = topoLevel(v);
      if (level) cmdbLevel.push(level);
    }
  }
  let bizId: number | undefined;
  for (const level of cmdbLevel) {
    const b = int(level.bk_biz_id);
    if (b !== undefined) {
      bizId = b;
      break;
    }
  }
  return {
    ...(ip === undefined ? {} : { innerIp: ip }),
    ...(int(doc.bk_cloud_id) === undefined ? {} : { cloudId: int(doc.bk_cloud_id) }),
    ...(int(doc.bk_host_id) === undefined ? {} : { hostId: int(doc.bk_host_id) }),
    ...(bizId === undefined ? {} : { bizId }),
    ...(typeof doc.bk_agent_id === 'string' && doc.bk_agent_id !== '' ? { agentId: doc.bk_agent_id } : {}),
    ...(int(doc.dataid) === undefined ? {} : { staticDataId: int(doc.dataid) }),
    cmdbLevel,
  };
}

/** One association → its level map: bk_biz_id/bk_set_id/bk_module_id plus the custom `layer` chain flattened (`<bk_obj_id>: <bk_inst_id>`). */
function topoLevel(meta: RawMap): Record<string, number> | undefined {
  const out: Record<string, number> = {};
  for (const key of ['bk_biz_id', 'bk_set_id', 'bk_module_id']) {
    if (meta[key] === undefined) continue;
    const n = int(meta[key]);
    if (n === undefined) return undefined;
    out[key] = n;
  }
  let layer = meta.layer;
  while (isMap(layer)) {
    const obj = layer.bk_obj_id;
    const inst = int(layer.bk_inst_id);
    if (typeof obj !== 'string' || inst === undefined) return undefined;
    out[obj] = inst;
    layer = layer.child;
  }
  return out;
}

export interface HostIdentityOptions {
  config: MainConfig;
  logger: Logger;
  clock?: Clock;
  /** AGENT_HOST_IP: overrides the main file's `ip` (the hostid file still wins). */
  ipOverride?: string;
  /** Poll interval of the hostid file. Default 10 000 ms (reference). */
  pollMs?: number;
  hostname?: string;
}

/** The current host identity, kept up to date from the hostid file. */
export class HostIdentitySource {
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #pollMs: number;
  readonly #hostname: string;
  #config: MainConfig;
  #ipOverride: string | undefined;
  #file: HostIdFile | undefined;
  #mtimeMs = -1;
  #timer: TimerHandle | undefined;
  #identity: HostIdentity;
  /** {@link topology} of the current file, made on first use. */
  #topology: HostTopology | undefined;

  constructor(options: HostIdentityOptions) {
    this.#config = options.config;
    this.#log = options.logger.child({ component: 'agent.hostid' });
    this.#clock = options.clock ?? systemClock;
    this.#pollMs = options.pollMs ?? 10_000;
    this.#hostname = options.hostname ?? hostname();
    this.#ipOverride = options.ipOverride;
    this.#identity = this.#compute();
  }

  /** Reads the file once; with `must_host_id_exist` a missing file is an error (the reference refuses to start). */
  async start(): Promise<void> {
    const exists = await this.#refresh();
    if (!exists && this.#config.mustHostIdExist) throw new Error(`hostid file ${this.#config.hostIdPath} does not exist (must_host_id_exist: true)`);
    this.#schedule();
  }

  stop(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  /** A reload may change the path, the override or the configured identity. */
  async reconfigure(config: MainConfig, ipOverride?: string): Promise<void> {
    const pathChanged = config.hostIdPath !== this.#config.hostIdPath;
    this.#config = config;
    this.#ipOverride = ipOverride;
    if (pathChanged) {
      this.#mtimeMs = -1;
      this.#file = undefined;
      this.#topology = undefined;
      await this.#refresh();
    }
    this.#identity = this.#compute();
  }

  current(): HostIdentity {
    return this.#identity;
  }

  /** `bk_cmdb_level`, or undefined when the file is not in use or `ignore_cmdb_level` is set (then it is not added). */
  cmdbLevel(): Record<string, number>[] | undefined {
    if (this.#config.ignoreCmdbLevel || !this.#file) return undefined;
    return this.#file.cmdbLevel;
  }

  /**
   * The topology keyword and snmptrap records are expanded by (task.ts HostTopology; reference watcher
   * `GetInfo`): the file's inner IP, cloud id and links; undefined without a parsed file or with
   * `ignore_cmdb_level` (the reference's empty watcher), like {@link cmdbLevel}.
   */
  topology(): HostTopology | undefined {
    if (this.#config.ignoreCmdbLevel || !this.#file) return undefined;
    const f = this.#file;
    this.#topology ??= Object.freeze({ innerIp: f.innerIp ?? '', cloudId: String(f.cloudId ?? 0), links: Object.freeze(f.cmdbLevel.map((l) => Object.freeze({ ...l }))) });
    return this.#topology;
  }

  staticDataId(): number | undefined {
    return this.#file?.staticDataId;
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimer(this.#pollMs, () => {
      void this.#refresh().finally(() => {
        if (this.#timer) this.#schedule();
      });
    });
  }

  /** Re-reads the file when its mtime changed; returns whether it exists. */
  async #refresh(): Promise<boolean> {
    const path = this.#config.hostIdPath;
    let mtimeMs: number;
    try {
      mtimeMs = (await stat(path)).mtimeMs;
    } catch {
      if (this.#file) this.#log.warn('hostid file disappeared; keeping the last identity', { path });
      return false;
    }
    if (mtimeMs === this.#mtimeMs) return true;
    this.#mtimeMs = mtimeMs;
    try {
      this.#file = parseHostIdFile(await readFile(path, 'utf8'), this.#config.cmdbLevelMaxLength);
      this.#topology = undefined;
      this.#identity = this.#compute();
      this.#log.info('host identity from the hostid file', { path, ip: this.#identity.ip, bk_cloud_id: this.#identity.bkCloudId, bk_host_id: this.#identity.bkHostId });
    } catch (err) {
      this.#log.warn('cannot parse the hostid file; keeping the configured identity', { path, err });
    }
    return true;
  }

  #compute(): HostIdentity {
    const c = this.#config;
    const bkpipe = c.bkpipe;
    const f = this.#file;
    const ip = f?.innerIp || this.#ipOverride || bkpipe.ip || c.ip;
    const bkCloudId = f?.cloudId ?? bkpipe.cloudId ?? c.bkCloudId;
    const bkBizId = f?.bizId !== undefined && f.bizId !== 0 ? f.bizId : c.bkBizId;
    return Object.freeze({
      ip,
      bkCloudId,
      bkBizId,
      hostname: this.#hostname,
      bkHostId: f?.hostId ?? bkpipe.hostId ?? 0,
      bkAgentId: f?.agentId ?? '',
      nodeId: `${bkCloudId}:${ip}`,
    });
  }
}
