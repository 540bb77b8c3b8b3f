/**
 * Hosts (README: How it works › Discoverers): one row per (cloud, host id, IP, service). The IP is the first truthy of
 * `resource["net.host.ip"]`, `attributes["net.host.ip"]`; cloud and host id come from cmdb_host through
 * {@link CmdbLookup}; a miss gives `-1` / `null`, and a later hit yields a new row with the proper ids.
 */
import type { ClassifiedSpan } from '../classify.ts';
import { keyString, truthy } from '../fields.ts';
import type { Sink } from '../records.ts';

export const DEFAULT_BK_CLOUD_ID = -1;

export interface CmdbHost {
  bk_cloud_id: number;
  bk_host_id: number | null;
}

/** Which host of a business has an IP (cmdb_host). */
export interface CmdbLookup {
  host(bkBizId: number, ip: string): CmdbHost | undefined;
}

export function discoverHost(c: ClassifiedSpan, cmdb: CmdbLookup, sink: Sink): void {
  const { span } = c;
  const rawIp = truthy(span.resource['net.host.ip']) ? span.resource['net.host.ip'] : span.attributes['net.host.ip'];
  if (!truthy(rawIp) || c.service === '') return;
  const ip = keyString(rawIp);
  // Space (negative) business ids are never in the CMDB.
  const hit = span.bk_biz_id >= 0 ? cmdb.host(span.bk_biz_id, ip) : undefined;
  sink.emit('host', span.bk_biz_id, span.app_name, {
    bk_cloud_id: hit?.bk_cloud_id ?? DEFAULT_BK_CLOUD_ID,
    bk_host_id: hit?.bk_host_id ?? null,
    ip,
    topo_node_key: c.service,
  }, span.end_time);
}
