/**
 * Network interfaces, counters and protocol statistics for basereport's `net` section, in the shapes of
 * gopsutil's `net.IOCountersStat` / `net.InterfaceStat` and the reference's `Stat` / `NetReport`.
 */
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { firstCharToLower } from './goformat.ts';
import { fieldsOf, listDir, readLines, readText } from './paths.ts';

/** One interface's counters (gopsutil `net.IOCountersStat`). */
export interface IoCounters {
  name: string;
  bytesSent: number;
  bytesRecv: number;
  packetsSent: number;
  packetsRecv: number;
  errin: number;
  errout: number;
  dropin: number;
  dropout: number;
  fifoin: number;
  fifoout: number;
}

/** One entry of basereport `net.dev[]`: counters, their in+out sums, and speeds per second. */
export interface NetDevStat extends IoCounters {
  errors: number;
  dropped: number;
  overruns: number;
  carrier: number;
  collisions: number;
  speedSent: number;
  speedRecv: number;
  speedPacketsSent: number;
  speedPacketsRecv: number;
}

/** gopsutil `net.InterfaceStat` (`hardwareaddr` lower-case as the BlueKing fork marshals it). */
export interface InterfaceStat {
  index: number;
  mtu: number;
  name: string;
  hardwareaddr: string;
  flags: string[] | null;
  addrs: { addr: string }[] | null;
}

/** Addresses per interface name as `addr/prefix` (Go's `net.IPNet.String()`); `os.networkInterfaces` by default. */
export type InterfaceAddrsFn = () => Record<string, string[]>;

export const nodeInterfaceAddrs: InterfaceAddrsFn = () => {
  const out: Record<string, string[]> = {};
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const list: string[] = [];
    for (const a of addrs ?? []) if (a.cidr) list.push(a.cidr);
    out[name] = list;
  }
  return out;
};

/** /proc/net/dev as gopsutil's net.IOCounters(pernic=true) reads it. */
export function readIoCounters(procRoot: string): IoCounters[] {
  const lines = readLines(join(procRoot, 'net/dev'));
  if (!lines) throw new Error(`cannot read ${join(procRoot, 'net/dev')}`);
  const out: IoCounters[] = [];
  for (const line of lines.slice(2)) {
    const sep = line.lastIndexOf(':');
    if (sep < 0) continue;
    const name = line.slice(0, sep).trim();
    if (name === '') continue;
    const f = fieldsOf(line.slice(sep + 1)).map(Number);
    if (f.length < 13 || f.slice(0, 13).some((v) => !Number.isFinite(v))) throw new Error(`malformed ${join(procRoot, 'net/dev')} line for ${name}`);
    out.push({
      name,
      bytesRecv: f[0] as number,
      packetsRecv: f[1] as number,
      errin: f[2] as number,
      dropin: f[3] as number,
      fifoin: f[4] as number,
      bytesSent: f[8] as number,
      packetsSent: f[9] as number,
      errout: f[10] as number,
      dropout: f[11] as number,
      fifoout: f[12] as number,
    });
  }
  return out;
}

/**
 * The `carrier` / `collisions` columns of /proc/net/dev per interface. Quirk kept from the reference: it
 * reads the 14th column (colls) into `carrier` and the 15th (carrier) into `collisions`.
 */
export function readCarrierCollisions(procRoot: string): Map<string, { carrier: number; collisions: number }> {
  const out = new Map<string, { carrier: number; collisions: number }>();
  const text = readText(join(procRoot, 'net/dev'));
  if (text === undefined) return out;
  for (const line of text.split('\n').slice(2)) {
    const parts = line.split(':');
    const name = (parts[0] as string).trim();
    if (name === '' || parts.length < 2) continue;
    const f = fieldsOf(parts[1] as string);
    if (f.length !== 16) continue;
    out.set(name, { carrier: Number(f[13]) || 0, collisions: Number(f[14]) || 0 });
  }
  return out;
}

/** Names under /sys/devices/virtual/net (the reference's "virtual interface" set). */
export function virtualInterfaces(sysRoot: string): Set<string> | undefined {
  const names = listDir(join(sysRoot, 'devices/virtual/net'));
  return names ? new Set(names) : undefined;
}

const IFF = { up: 0x1, broadcast: 0x2, loopback: 0x8, pointtopoint: 0x10, multicast: 0x1000 };

/**
 * Every interface (gopsutil net.Interfaces, which asks the kernel over rtnetlink): index, MTU, flags and
 * hardware address from /sys/class/net, addresses from `addrsOf`. Ordered by index.
 */
export function readInterfaces(sysRoot: string, addrsOf: InterfaceAddrsFn = nodeInterfaceAddrs): InterfaceStat[] {
  const base = join(sysRoot, 'class/net');
  const names = listDir(base);
  if (!names) throw new Error(`cannot list ${base}`);
  const addrs = addrsOf();
  const out: InterfaceStat[] = [];
  for (const name of names) {
    const read = (f: string): string => (readText(join(base, name, f)) ?? '').trim();
    const index = Number(read('ifindex'));
    if (!Number.isFinite(index) || read('ifindex') === '') continue;
    const rawFlags = Number.parseInt(read('flags'), 16) || 0;
    const flags: string[] = [];
    for (const [flag, bit] of Object.entries(IFF)) if (rawFlags & bit) flags.push(flag);
    const mac = read('address').toLowerCase();
    out.push({
      index,
      mtu: Number(read('mtu')) || 0,
      name,
      // Go leaves an all-zero link-layer address (loopback, tunnels) empty.
      hardwareaddr: /^[0:]*$/.test(mac) ? '' : mac,
      flags: flags.length > 0 ? flags : null,
      addrs: (addrs[name] ?? []).map((addr) => ({ addr })),
    });
  }
  out.sort((a, b) => a.index - b.index);
  return out;
}

/** Interface filter lists of basereport `net` (regexes; a find anywhere in the name matches). */
export interface NetFilter {
  readonly skipVirtualInterface: boolean;
  readonly whiteList: readonly RegExp[];
  readonly blackList: readonly RegExp[];
  readonly forceReportList: readonly RegExp[];
}

export const inList = (name: string, list: readonly RegExp[]): boolean => list.some((re) => re.test(name));

/** The reference's CheckBlackWhiteList: a white list, when set, decides alone; else the black list excludes. */
export function passesLists(name: string, white: readonly RegExp[], black: readonly RegExp[]): boolean {
  if (white.length > 0) return inList(name, white);
  if (black.length > 0) return !inList(name, black);
  return true;
}

/**
 * Whether an interface is reported: the force list always; otherwise the white/black lists, then
 * (unless white-listed) virtual interfaces are dropped when `skipVirtualInterface`.
 */
export function keepInterface(name: string, filter: NetFilter, virtual: ReadonlySet<string>): boolean {
  if (inList(name, filter.forceReportList)) return true;
  if (!passesLists(name, filter.whiteList, filter.blackList)) return false;
  if (!inList(name, filter.whiteList) && filter.skipVirtualInterface && virtual.has(name)) return false;
  return true;
}

const counterDiff = (now: number, before: number): number => (before > now ? 0 : now - before);

/**
 * Turns successive /proc/net/dev readings into per-interface speeds with the reference's counter-reversal
 * ("backflow") protection: when a counter of any interface went backwards, every speed of that round is 0
 * and the previous reading is kept — unless the last 5 rounds (this one included) are strictly increasing
 * for every interface, in which case the new baseline is accepted; the first round after a reversal is
 * zeroed as well.
 */
export class NetSpeedTracker {
  static readonly WINDOW = 5;
  #last = new Map<string, IoCounters>();
  #lastTimeMs: number | undefined;
  readonly #rounds: NetDevStat[][] = [];
  #errCount = 0;

  /** Reversals seen since the last recovery (for logs). */
  get reversals(): number {
    return this.#errCount;
  }

  /** Fills the speed fields of `stats` (read at `nowMs`) in place. */
  update(stats: NetDevStat[], nowMs: number): void {
    // Whole seconds since the previous round, at least 1 (the reference's uint64 truncation).
    let interval = this.#lastTimeMs === undefined ? 0 : Math.trunc((nowMs - this.#lastTimeMs) / 1000);
    if (this.#lastTimeMs === undefined) interval = Math.trunc(nowMs / 1000);
    if (interval <= 0) interval = 1;
    this.#lastTimeMs = nowMs;

    this.#rounds.push(stats);
    if (this.#rounds.length > NetSpeedTracker.WINDOW) this.#rounds.shift();

    let backflow = false;
    if (this.#last.size > 0) {
      for (const s of stats) {
        const prev = this.#last.get(s.name);
        if (!prev) continue;
        if (s.bytesSent < prev.bytesSent || s.bytesRecv < prev.bytesRecv || s.packetsRecv < prev.packetsRecv || s.packetsSent < prev.packetsSent) {
          backflow = true;
          break;
        }
        s.speedRecv = Math.floor(counterDiff(s.bytesRecv, prev.bytesRecv) / interval);
        s.speedSent = Math.floor(counterDiff(s.bytesSent, prev.bytesSent) / interval);
        s.speedPacketsRecv = Math.floor(counterDiff(s.packetsRecv, prev.packetsRecv) / interval);
        s.speedPacketsSent = Math.floor(counterDiff(s.packetsSent, prev.packetsSent) / interval);
      }
    }
    if (backflow && !this.#monotonic()) {
      this.#errCount++;
      zeroSpeeds(stats);
      return;
    }
    this.#last = new Map(stats.map((s) => [s.name, counterPart(s)]));
    if (this.#errCount > 0) {
      zeroSpeeds(stats);
      this.#errCount = 0;
    }
  }

  #monotonic(): boolean {
    if (this.#rounds.length < NetSpeedTracker.WINDOW) return false;
    const byName = new Map<string, NetDevStat[]>();
    for (const round of this.#rounds) for (const s of round) byName.set(s.name, [...(byName.get(s.name) ?? []), s]);
    for (const series of byName.values()) {
      for (let i = 1; i < series.length; i++) {
        const a = series[i - 1] as NetDevStat;
        const b = series[i] as NetDevStat;
        if (b.bytesSent <= a.bytesSent || b.bytesRecv <= a.bytesRecv || b.packetsSent <= a.packetsSent || b.packetsRecv <= a.packetsRecv) return false;
      }
    }
    return true;
  }
}

function counterPart(s: NetDevStat): IoCounters {
  const { name, bytesSent, bytesRecv, packetsSent, packetsRecv, errin, errout, dropin, dropout, fifoin, fifoout } = s;
  return { name, bytesSent, bytesRecv, packetsSent, packetsRecv, errin, errout, dropin, dropout, fifoin, fifoout };
}

function zeroSpeeds(stats: NetDevStat[]): void {
  for (const s of stats) {
    s.speedRecv = 0;
    s.speedSent = 0;
    s.speedPacketsRecv = 0;
    s.speedPacketsSent = 0;
  }
}

/** Builds `net.dev` entries from counters: sums of errors/drops/fifo and the carrier/collisions columns. */
export function devStats(counters: IoCounters[], extra: Map<string, { carrier: number; collisions: number }>): NetDevStat[] {
  return counters.map((c) => {
    const e = extra.get(c.name);
    return {
      ...c,
      errors: e ? c.errin + c.errout : 0,
      dropped: e ? c.dropin + c.dropout : 0,
      overruns: e ? c.fifoin + c.fifoout : 0,
      carrier: e?.carrier ?? 0,
      collisions: e?.collisions ?? 0,
      speedSent: 0,
      speedRecv: 0,
      speedPacketsSent: 0,
      speedPacketsRecv: 0,
    };
  });
}

/** Keeps, per interface, the round with the highest max(speedRecv, speedSent) (first seen wins ties). */
export function keepPeak(peaks: Map<string, NetDevStat>, round: NetDevStat[]): void {
  for (const s of round) {
    const best = peaks.get(s.name);
    if (!best || Math.max(s.speedRecv, s.speedSent) > Math.max(best.speedRecv, best.speedSent)) peaks.set(s.name, s);
  }
}

/** /proc/net/snmp counters of the given protocols (`tcp`, `udp`), keys lower-camel (`inDatagrams`). */
export function readProtoCounters(procRoot: string, protocols: readonly string[]): Map<string, Map<string, number>> {
  const file = join(procRoot, 'net/snmp');
  const lines = readLines(file);
  if (!lines) throw new Error(`cannot read ${file}`);
  const out = new Map<string, Map<string, number>>();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const r = line.indexOf(':');
    if (r < 0) throw new Error(`${file} is not formatted correctly, expected ':'`);
    const proto = line.slice(0, r).toLowerCase();
    const values = lines[i + 1];
    i++;
    if (!protocols.includes(proto) || values === undefined) continue;
    const names = line.slice(r + 2).split(' ');
    const nums = values.slice(r + 2).split(' ');
    if (names.length !== nums.length) throw new Error(`${file} is not formatted correctly, expected same number of columns`);
    const stats = new Map<string, number>();
    names.forEach((n, j) => stats.set(firstCharToLower(n), Number(nums[j])));
    out.set(proto, stats);
  }
  return out;
}

/**
 * `net.protocolstat`: per protocol and counter, the change since the previous call (0 for counters not
 * seen before, so a restart does not report whole totals). Keys sorted as Go marshals maps.
 */
export class ProtocolStatTracker {
  #last = new Map<string, Map<string, number>>();

  update(current: Map<string, Map<string, number>>): Record<string, Record<string, number>> {
    const out: Record<string, Record<string, number>> = {};
    for (const proto of [...current.keys()].sort()) {
      const stats = current.get(proto) as Map<string, number>;
      const last = this.#last.get(proto);
      const delta: Record<string, number> = {};
      for (const key of [...stats.keys()].sort()) {
        const v = stats.get(key) as number;
        delta[key] = v - (last ? (last.get(key) ?? 0) : v);
      }
      out[proto] = delta;
    }
    this.#last = current;
    return out;
  }
}

/** Go's `net.IP.IsGlobalUnicast` on a textual address. */
export function isGlobalUnicast(ip: string): boolean {
  if (ip.includes(':')) {
    const l = ip.toLowerCase();
    if (l === '::' || l === '::1') return false;
    if (/^ff/.test(l)) return false;
    if (/^fe[89ab]/.test(l)) return false;
    if (/^::ffff:\d/.test(l)) return isGlobalUnicast(l.slice(7));
    return true;
  }
  const p = ip.split('.').map(Number);
  if (p.length !== 4 || p.some((n) => !Number.isInteger(n) || n < 0 || n > 255)) return false;
  const [a, b] = p as [number, number, number, number];
  if (ip === '255.255.255.255' || ip === '0.0.0.0') return false;
  if (a === 127 || a >= 224 || (a === 169 && b === 254)) return false;
  return true;
}

/** The host's global unicast addresses (the reference's DefaultIPs), IPv4 and IPv6 apart, in interface order. */
export function defaultIps(addrsOf: InterfaceAddrsFn = nodeInterfaceAddrs): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const list of Object.values(addrsOf())) {
    for (const cidr of list) {
      const ip = cidr.split('/')[0] as string;
      if (!isGlobalUnicast(ip)) continue;
      (ip.includes(':') ? v6 : v4).push(ip);
    }
  }
  return { v4, v6 };
}
