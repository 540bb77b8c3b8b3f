/** Agents seen, from their heartbeat documents (pure): the newest heartbeat of each host. */
import type { AgentEventItem } from './types.ts';

export interface Agent {
  bkCloudId: number;
  ip: string;
  hostname: string;
  bkHostId: number;
  bkBizId: number;
  /** ms of the newest heartbeat */
  lastSeen: number;
  version: string;
  tasks: number | undefined;
  uptimeS: number | undefined;
  published: number | undefined;
  errors: number | undefined;
  errorTasks: number | undefined;
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function num(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** One entry per (cloud id, ip), from its newest heartbeat; hosts sorted by name. */
export function agentsFromHeartbeats(events: readonly AgentEventItem[]): Agent[] {
  const newest = new Map<string, AgentEventItem>();
  for (const e of events) {
    const key = `${e.bk_cloud_id}:${e.ip}`;
    const seen = newest.get(key);
    if (!seen || Number(seen.timestamp) < Number(e.timestamp)) newest.set(key, e);
  }
  return [...newest.values()]
    .map((e) => {
      const body = obj(e.body);
      const dims = obj(body.dimensions);
      const metrics = obj(body.metrics);
      return {
        bkCloudId: Number(e.bk_cloud_id),
        ip: e.ip,
        hostname: e.hostname,
        bkHostId: Number(e.bk_host_id),
        bkBizId: Number(e.bk_biz_id),
        lastSeen: Number(e.timestamp),
        version: typeof dims.version === 'string' ? dims.version : '',
        tasks: num(metrics.tasks),
        uptimeS: num(metrics.uptime),
        published: num(metrics.published),
        errors: num(metrics.errors),
        errorTasks: num(metrics.error_tasks),
      };
    })
    .sort((a, b) => a.hostname.localeCompare(b.hostname) || a.ip.localeCompare(b.ip));
}
