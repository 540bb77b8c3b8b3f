/**
 * cmdb_host from agent static host events (`events` topic, `event_type` "static"): the envelope names
 * the agent (`agent.bk_cloud_id`, `agent.bk_host_id`, ...) and business; the body is the static task's
 * document whose `net.interface[].addrs` hold the host's addresses (`10.0.1.5/24`) (README: Interfaces).
 * One cmdb_host row per (cloud, IP); a newer report wins.
 */
import { isIP } from 'node:net';
import { ValidationError } from '../common/errors.ts';
import type { AgentEvent } from '../common/records.ts';
import type { Queryable } from '../common/store/index.ts';

export interface CmdbHostRow {
  bk_biz_id: number;
  bk_cloud_id: number;
  bk_host_id: number | null;
  ip: string;
  hostname: string;
  bk_agent_id: string;
  /** ms. */
  seenMs: number;
}

interface StaticDoc {
  net?: { interface?: { addrs?: unknown }[] };
  system?: { hostname?: unknown };
}

function usableIp(addr: string): string | undefined {
  const ip = addr.split('/')[0]?.trim() ?? '';
  const version = isIP(ip);
  if (version === 0) return undefined;
  if (version === 4 && (ip.startsWith('127.') || ip === '0.0.0.0')) return undefined;
  if (version === 6 && (ip === '::1' || ip === '::' || ip.toLowerCase().startsWith('fe80:'))) return undefined;
  return ip;
}

/** The cmdb_host rows a static event reports; `[]` for other event types. Throws on a malformed body. */
export function hostsFromEvent(event: AgentEvent): CmdbHostRow[] {
  if (event.event_type !== 'static') return [];
  let doc: StaticDoc;
  try {
    const parsed = JSON.parse(event.body || '{}') as { data?: StaticDoc } & StaticDoc;
    doc = parsed.data ?? parsed;
  } catch (err) {
    throw new ValidationError(`static event body is not JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof doc !== 'object' || doc === null) throw new ValidationError('static event body is not a JSON object');
  const ips = new Set<string>();
  const first = event.agent.ip ? usableIp(event.agent.ip) : undefined;
  if (first) ips.add(first);
  for (const iface of doc.net?.interface ?? []) {
    const addrs = Array.isArray(iface.addrs) ? iface.addrs : [];
    for (const a of addrs) {
      const ip = typeof a === 'string' ? usableIp(a) : undefined;
      if (ip) ips.add(ip);
    }
  }
  const hostname = event.agent.hostname || (typeof doc.system?.hostname === 'string' ? doc.system.hostname : '');
  return [...ips].map((ip) => ({
    bk_biz_id: event.bk_biz_id,
    bk_cloud_id: event.agent.bk_cloud_id,
    bk_host_id: event.agent.bk_host_id > 0 ? event.agent.bk_host_id : null,
    ip,
    hostname: hostname.slice(0, 255),
    bk_agent_id: event.agent.bk_agent_id.slice(0, 128),
    seenMs: event.timestamp,
  }));
}

/** Upserts hosts; of several rows for one (cloud, IP) the newest wins, and an older report never overwrites a newer one. */
export async function upsertHosts(db: Queryable, rows: readonly CmdbHostRow[]): Promise<void> {
  const latest = new Map<string, CmdbHostRow>();
  for (const r of rows) {
    const key = `${r.bk_cloud_id}|${r.ip}`;
    const seen = latest.get(key);
    if (!seen || r.seenMs >= seen.seenMs) latest.set(key, r);
  }
  const list = [...latest.values()].sort((a, b) => a.bk_cloud_id - b.bk_cloud_id || (a.ip < b.ip ? -1 : a.ip > b.ip ? 1 : 0));
  if (list.length === 0) return;
  await db.query(
    `INSERT INTO cmdb_host AS h (bk_biz_id, bk_cloud_id, bk_host_id, ip, hostname, bk_agent_id, first_seen, last_seen)
     SELECT u.b, u.c, u.h, u.ip, u.n, u.a, to_timestamp(u.t / 1000.0), to_timestamp(u.t / 1000.0)
     FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::bigint[]) AS u(b, c, h, ip, n, a, t)
     ON CONFLICT ON CONSTRAINT cmdb_host_natural_key DO UPDATE SET
       bk_biz_id = EXCLUDED.bk_biz_id, bk_host_id = EXCLUDED.bk_host_id, hostname = EXCLUDED.hostname,
       bk_agent_id = EXCLUDED.bk_agent_id, last_seen = EXCLUDED.last_seen, updated_at = now()
     WHERE EXCLUDED.last_seen >= h.last_seen`,
    [list.map((r) => r.bk_biz_id), list.map((r) => r.bk_cloud_id), list.map((r) => r.bk_host_id), list.map((r) => r.ip),
      list.map((r) => r.hostname), list.map((r) => r.bk_agent_id), list.map((r) => r.seenMs)],
  );
}
