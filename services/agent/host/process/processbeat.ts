/**
 * processbeat (reference §A5.14, CMDB processes): match the configured processes among all processes,
 * report their performance (`perf` document, one item per matched process and one `exists: false` item
 * per configuration without a process) and the health of their configured ports (`processes` document:
 * listening, not listening, listening on another address).
 */
import { createHash } from 'node:crypto';
import { canonicalIp, goBase, goTimeJson, localOffsetMinutes } from '../goformat.ts';
import { goRegExp } from '../goregexp.ts';
import { defaultIps, type InterfaceAddrsFn } from '../net.ts';
import { type FileSocket, type PidSockets, socketsFor } from '../sockets.ts';
import type { MappedProcess, PidMapper, PidStore } from './mapping.ts';
import type { PerfStat } from './perf.ts';
import type { ProcMeta } from './procs.ts';

export interface BindInfo {
  ip: string;
  ports: number[];
  protocol: string;
}

/** One configured process (the reference's ProcessbeatPortConfig). */
export interface ProcessConfig {
  name: string;
  displayname: string;
  protocol: string;
  ports: number[];
  paramregex: string;
  bindip: string;
  bind_info: BindInfo[];
}

/** A configuration's identity (the reference hashes its JSON with MD5). */
export function processConfigId(c: ProcessConfig): string {
  return createHash('md5').update(JSON.stringify([c.name, c.displayname, c.protocol, c.ports, c.paramregex, c.bindip, c.bind_info])).digest('hex');
}

/** Sorted, de-duplicated ports (the reference's formatPorts). */
export function formatPorts(ports: readonly number[]): number[] {
  if (ports.length < 2) return [...ports];
  return [...new Set(ports)].sort((a, b) => a - b);
}

/** The bind entries of a configuration: the v1 fields (when all set) plus `bind_info`, grouped by ip and protocol. */
export function bindDetails(c: ProcessConfig): BindInfo[] {
  const all: BindInfo[] = [];
  if (c.bindip !== '' && c.protocol !== '' && c.ports.length !== 0) all.push({ ip: c.bindip, ports: c.ports, protocol: c.protocol });
  all.push(...c.bind_info);
  const grouped = new Map<string, BindInfo>();
  for (const b of all) {
    const key = `${b.ip}\n${b.protocol}`;
    const seen = grouped.get(key);
    if (seen) seen.ports = [...seen.ports, ...b.ports];
    else grouped.set(key, { ip: b.ip, ports: [...b.ports], protocol: b.protocol });
  }
  return [...grouped.values()].map((b) => ({ ...b, ports: formatPorts(b.ports) }));
}

/** The names a process answers to: its name, exe, basename(exe), argv0 and basename(argv0). */
export function matchNames(meta: ProcMeta): Set<string> {
  const argv0 = meta.cmd.split(' ')[0] as string;
  return new Set([meta.name, meta.exe, goBase(meta.exe), argv0, goBase(argv0)]);
}

/** One port-health entry of the `processes` document (field order as the reference marshals PortStat). */
export interface PortStat {
  name: string;
  exists: number;
  protocol: string;
  listen: number[] | null;
  nonlisten: number[] | null;
  notaccuratelisten: string[] | null;
  bindip: string;
  paramregex: string;
  displayname: string;
  porthealth: number;
}

/** Recursively sorts plain-object keys (Go marshals maps with sorted keys). */
export function sortDeep(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortDeep);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v).sort()) out[k] = sortDeep((v as Record<string, unknown>)[k]);
  return out;
}

/** A process's `perf` item as the reference's AsOneCmdbConfMapStr builds it (before the config fields). */
export function perfItem(meta: ProcMeta, perf: PerfStat, nowMs: number): Record<string, unknown> {
  const item: Record<string, unknown> = {
    pid: meta.pid,
    ppid: meta.ppid,
    name: meta.name,
    state: meta.status,
    username: meta.username,
    cmdline: meta.cmd,
    cwd: meta.cwd,
    exe: meta.exe,
  };
  if (meta.created !== 0) item['uptime'] = Math.floor(nowMs / 1000) - Math.floor(meta.created / 1000);
  if (perf.mem) item['memory'] = { size: perf.mem.size, rss: { bytes: perf.mem.resident, pct: perf.mem.percent }, share: perf.mem.share };
  if (perf.cpu) {
    const c = perf.cpu;
    item['cpu'] = {
      total: { value: c.total, pct: c.percent, norm: { pct: c.normalPercent }, ticks: c.total },
      start_time: goTimeJson(c.startTime, localOffsetMinutes(c.startTime)),
      user: { ticks: c.user },
      system: { ticks: c.sys },
    };
  }
  if (perf.fd) item['fd'] = { open: perf.fd.open, limit: { soft: perf.fd.softLimit, hard: perf.fd.hardLimit } };
  if (perf.io) item['io'] = { read_speed: perf.io.readSpeed, write_speed: perf.io.writeSpeed, read_bytes: perf.io.readBytes, write_bytes: perf.io.writeBytes };
  return item;
}

export interface Matched {
  meta: ProcMeta;
  config: ProcessConfig;
  configId: string;
}

/** Compiled configurations; a `paramregex` that does not compile never matches. */
export class ProcessMatcher {
  readonly configs: readonly ProcessConfig[];
  readonly #byName = new Map<string, { config: ProcessConfig; id: string; re: RegExp | null | undefined }[]>();
  readonly invalid: string[] = [];

  constructor(configs: readonly ProcessConfig[]) {
    this.configs = configs;
    for (const config of configs) {
      let re: RegExp | null | undefined;
      if (config.paramregex !== '') {
        try {
          re = goRegExp(config.paramregex);
        } catch {
          re = null;
          this.invalid.push(config.paramregex);
        }
      }
      const list = this.#byName.get(config.name) ?? [];
      list.push({ config, id: processConfigId(config), re });
      this.#byName.set(config.name, list);
    }
  }

  /** Every (process, configuration) pair that matches. */
  match(metas: readonly ProcMeta[]): Matched[] {
    const out: Matched[] = [];
    for (const meta of metas) {
      for (const name of matchNames(meta)) {
        for (const entry of this.#byName.get(name) ?? []) {
          if (entry.re === null || (entry.re && !entry.re.test(meta.cmd))) continue;
          out.push({ meta, config: entry.config, configId: entry.id });
        }
      }
    }
    return out;
  }
}

export interface PortHealthOptions {
  /** More non-listening ports than this reads as `[0]` (default 100). */
  readonly maxNoListenPorts: number;
  readonly interfaceAddrs?: InterfaceAddrsFn;
}

/** The port entries of one configuration with binds (the reference's calcPortStat). */
export function portStats(config: ProcessConfig, sockets: readonly FileSocket[], pidCount: number, ips: { v4: string[]; v6: string[] }): PortStat[] {
  const listenKeys = new Set(sockets.map((s) => `${s.saddr}:${s.sport}`));
  const ports = new Set(sockets.map((s) => s.sport));
  const out: PortStat[] = [];
  for (const bind of bindDetails(config)) {
    const listen: number[] = [];
    const nonlisten: number[] = [];
    const notAccurate = new Set<number>();
    for (const port of bind.ports) {
      if (!ports.has(port)) {
        nonlisten.push(port);
        continue;
      }
      let guess = [canonicalIp(bind.ip)];
      if (bind.ip === '') {
        guess = ['::1', '::', ...ips.v6];
        if (bind.protocol === '' || bind.protocol === 'tcp' || bind.protocol === 'udp') guess.push('127.0.0.1', '0.0.0.0', ...ips.v4);
      }
      if (guess.some((ip) => listenKeys.has(`${ip}:${port}`))) listen.push(port);
      else notAccurate.add(port);
    }
    const wrong = [...new Set(sockets.filter((s) => notAccurate.has(s.sport)).map((s) => `${s.saddr}:${s.sport}`))];
    out.push({
      name: config.name,
      exists: pidCount > 0 ? 1 : 0,
      protocol: bind.protocol,
      listen: listen.sort((a, b) => a - b),
      nonlisten: nonlisten.sort((a, b) => a - b),
      notaccuratelisten: wrong.sort(),
      bindip: bind.ip,
      paramregex: config.paramregex,
      displayname: config.displayname,
      porthealth: wrong.length === 0 && nonlisten.length === 0 ? 1 : 0,
    });
  }
  return out;
}

/** The `processes` entries of every configuration (the reference's CollectPortStat), with the non-listening cap. */
export function collectPortStats(configs: readonly ProcessConfig[], matched: readonly Matched[], sockets: PidSockets, opts: PortHealthOptions): PortStat[] {
  const conf2pids = new Map<string, number[]>();
  for (const m of matched) conf2pids.set(m.configId, [...(conf2pids.get(m.configId) ?? []), m.meta.pid]);
  const ips = defaultIps(opts.interfaceAddrs);
  const out: PortStat[] = [];
  for (const config of configs) {
    const id = processConfigId(config);
    const pids = conf2pids.get(id) ?? [];
    const binds = bindDetails(config);
    if (binds.length === 0) {
      out.push({ name: config.name, exists: pids.length > 0 ? 1 : 0, protocol: '', listen: null, nonlisten: null, notaccuratelisten: null, bindip: '', paramregex: config.paramregex, displayname: config.displayname, porthealth: 1 });
      continue;
    }
    let protocols = [...new Set(binds.map((b) => b.protocol).filter((p) => p !== ''))];
    if (protocols.length === 0) protocols = ['tcp', 'udp'];
    const found: FileSocket[] = [];
    for (const protocol of protocols) for (const pid of pids) found.push(...socketsFor(sockets, pid, protocol));
    out.push(...portStats(config, found, pids.length, ips));
  }
  const max = opts.maxNoListenPorts > 0 ? opts.maxNoListenPorts : 100;
  for (const p of out) if (p.nonlisten && p.nonlisten.length > max) p.nonlisten = [0];
  return out;
}

/**
 * The `perf` items: matched processes with their performance and config fields, then one
 * `{exists: false}` item per configuration nothing matched. With `converge`, pids become stable fake
 * pids (recorded in `pidStore`) and ppid/pgid/state are blanked.
 */
export function perfItems(
  configs: readonly ProcessConfig[],
  matched: readonly Matched[],
  perfOf: (pid: number) => PerfStat,
  nowMs: number,
  converge?: { mapper: PidMapper; pidStore: PidStore },
): Record<string, unknown>[] {
  const exists = matched.map((m): { m: Matched; item: Record<string, unknown> } => ({
    m,
    item: { ...perfItem(m.meta, perfOf(m.meta.pid), nowMs), name: m.config.name, exists: true, paramregex: m.config.paramregex, displayname: m.config.displayname },
  }));
  const visited = new Set(matched.map((m) => m.configId));
  const missing = configs
    .filter((c) => !visited.has(processConfigId(c)))
    .map((c) => ({ exists: false, name: c.name, paramregex: c.paramregex, displayname: c.displayname }));
  if (converge) {
    const procs: MappedProcess[] = exists.map(({ m }) => ({ pid: m.meta.pid, name: m.config.name, params: m.config.paramregex }));
    converge.mapper.refresh(procs);
    exists.forEach(({ m, item }, i) => {
      item['ppid'] = 0;
      item['pgid'] = 0;
      item['state'] = 'sleeping';
      const fake = converge.mapper.fakePid(procs[i] as MappedProcess);
      converge.pidStore.set(m.meta.pid, fake, m.meta.cmd);
      item['pid'] = fake;
    });
  }
  return [...exists.map((e) => sortDeep(e.item) as Record<string, unknown>), ...missing.map((x) => sortDeep(x) as Record<string, unknown>)];
}

