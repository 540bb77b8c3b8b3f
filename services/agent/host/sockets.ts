/**
 * Sockets from /proc/net/{tcp,tcp6,udp,udp6} and their owners through /proc/<pid>/fd.
 *
 * The reference asks the kernel over netlink `inet_diag` (TCP states for basereport's `netstat`, LISTEN
 * TCP and unconnected UDP sockets for the process tasks) and falls back to /proc. Node has no netlink
 * socket, so these readers use the /proc tables, which the kernel fills from the same socket hash tables:
 * for the states asked for they list the same sockets (request sockets show as SYN_RECV in both).
 */
import { endianness } from 'node:os';
import { join } from 'node:path';
import { ipString } from './goformat.ts';
import { fieldsOf, listDir, readLink, readText } from './paths.ts';

export type SocketTable = 'tcp' | 'tcp6' | 'udp' | 'udp6';

/** One row of a /proc/net socket table. */
export interface ProcSocket {
  table: SocketTable;
  /** Kernel state number (TCP: 1 ESTABLISHED … 10 LISTEN, 11 CLOSING; unconnected UDP: 7). */
  state: number;
  /** Local / remote address as Go's net.IP.String() prints it (IPv4-mapped IPv6 as dotted quad). */
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  inode: number;
}

const LITTLE = endianness() === 'LE';

/** A /proc/net address (`0100007F` or 32 hex digits) to its bytes: each 32-bit word is in host order. */
function hexAddress(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let b = 0; b < 4; b++) {
      const byte = parseInt(hex.slice(w * 8 + b * 2, w * 8 + b * 2 + 2), 16);
      out[w * 4 + (LITTLE ? 3 - b : b)] = byte;
    }
  }
  return out;
}

/** Parses one /proc/net/{tcp,tcp6,udp,udp6} table. */
export function parseSocketTable(text: string, table: SocketTable): ProcSocket[] {
  const out: ProcSocket[] = [];
  const lines = text.split('\n');
  for (const line of lines.slice(1)) {
    const f = fieldsOf(line);
    if (f.length < 10) continue;
    const [lhex, lport] = (f[1] as string).split(':');
    const [rhex, rport] = (f[2] as string).split(':');
    if (!lhex || !lport || !rhex || !rport) continue;
    out.push({
      table,
      state: parseInt(f[3] as string, 16),
      saddr: ipString(hexAddress(lhex)),
      sport: parseInt(lport, 16),
      daddr: ipString(hexAddress(rhex)),
      dport: parseInt(rport, 16),
      inode: Number(f[9]),
    });
  }
  return out;
}

/** Reads one socket table; an absent table (no IPv6 in the kernel) is empty. */
export function readSocketTable(procRoot: string, table: SocketTable): ProcSocket[] {
  const text = readText(join(procRoot, 'net', table));
  return text === undefined ? [] : parseSocketTable(text, table);
}

/** basereport `net.netstat`: TCP state counts (IPv4 sockets, as the reference's AF_INET inet_diag query counts). */
export interface TcpStateCounts {
  established: number;
  syncSent: number;
  synRecv: number;
  finWait1: number;
  finWait2: number;
  timeWait: number;
  close: number;
  closeWait: number;
  lastAck: number;
  listen: number;
  closing: number;
}

const STATE_KEYS: (keyof TcpStateCounts)[] = [
  'established',
  'syncSent',
  'synRecv',
  'finWait1',
  'finWait2',
  'timeWait',
  'close',
  'closeWait',
  'lastAck',
  'listen',
  'closing',
];

/** Counts TCP sockets per state over the given tables (basereport uses `['tcp']`). */
export function countTcpStates(procRoot: string, tables: readonly ('tcp' | 'tcp6')[] = ['tcp']): TcpStateCounts {
  const counts = Object.fromEntries(STATE_KEYS.map((k) => [k, 0])) as unknown as TcpStateCounts;
  for (const table of tables) {
    const text = readText(join(procRoot, 'net', table));
    if (text === undefined) continue;
    for (const line of text.split('\n').slice(1)) {
      const f = fieldsOf(line);
      if (f.length < 4) continue;
      const key = STATE_KEYS[parseInt(f[3] as string, 16) - 1];
      if (key) counts[key]++;
    }
  }
  return counts;
}

/** The socket inodes a process holds open (`socket:[N]` links under /proc/<pid>/fd). */
export function socketInodes(procRoot: string, pid: number): number[] {
  const dir = join(procRoot, String(pid), 'fd');
  const fds = listDir(dir);
  if (!fds) return [];
  const out: number[] = [];
  for (const fd of fds) {
    const link = readLink(join(dir, fd));
    if (link?.startsWith('socket:[')) {
      const n = Number(link.slice(8, -1));
      if (Number.isInteger(n)) out.push(n);
    }
  }
  return out;
}

/** A socket attributed to a process (the reference's FileSocket; `status` as its netlink detector names it). */
export interface FileSocket {
  status: string;
  inode: number;
  pid: number;
  /** 2 (AF_INET) or 10 (AF_INET6). */
  family: number;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  protocol: 'tcp' | 'udp' | 'tcp6' | 'udp6';
}

/** Per pid, the listening sockets of each protocol (the reference's PidSockets). */
export interface PidSockets {
  tcp: Map<number, FileSocket[]>;
  udp: Map<number, FileSocket[]>;
  tcp6: Map<number, FileSocket[]>;
  udp6: Map<number, FileSocket[]>;
}

/** The addresses a socket bound to `addr` accepts on: `::` means both wildcards (reference GetListeningIPs). */
export function listeningIps(addr: string): string[] {
  if (addr === '*' || addr === '::') return ['0.0.0.0', '::'];
  return [addr];
}

const TCP_LISTEN = 10;
const UDP_UNCONN = 7;

/**
 * The LISTEN TCP and unconnected UDP sockets of `pids` (the reference's netlink detector with the listen
 * state): tables are read once, the pids' fd links map inodes to owners.
 */
export function listeningSockets(procRoot: string, pids: readonly number[]): PidSockets {
  const byInode = new Map<number, ProcSocket>();
  for (const table of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    for (const s of readSocketTable(procRoot, table)) {
      const wanted = table.startsWith('tcp') ? s.state === TCP_LISTEN : s.state === UDP_UNCONN;
      if (wanted && s.inode !== 0) byInode.set(s.inode, s);
    }
  }
  const out: PidSockets = { tcp: new Map(), udp: new Map(), tcp6: new Map(), udp6: new Map() };
  for (const pid of pids) {
    for (const inode of socketInodes(procRoot, pid)) {
      const s = byInode.get(inode);
      if (!s) continue;
      const list = out[s.table].get(pid) ?? [];
      for (const ip of listeningIps(s.saddr)) {
        list.push({
          status: s.table.startsWith('tcp') ? 'LISTEN' : 'UNCONN',
          inode,
          pid,
          family: s.table.endsWith('6') ? 10 : 2,
          saddr: ip,
          sport: s.sport,
          daddr: s.daddr,
          dport: s.dport,
          protocol: s.table,
        });
      }
      out[s.table].set(pid, list);
    }
  }
  return out;
}

/** Sockets of a pid for a configured protocol: `tcp` means tcp+tcp6, `udp` udp+udp6 (reference PidSockets.Get). */
export function socketsFor(ps: PidSockets, pid: number, protocol: string): FileSocket[] {
  switch (protocol) {
    case 'tcp':
      return [...(ps.tcp.get(pid) ?? []), ...(ps.tcp6.get(pid) ?? [])];
    case 'udp':
      return [...(ps.udp.get(pid) ?? []), ...(ps.udp6.get(pid) ?? [])];
    case 'tcp6':
      return ps.tcp6.get(pid) ?? [];
    case 'udp6':
      return ps.udp6.get(pid) ?? [];
    default:
      return [];
  }
}
