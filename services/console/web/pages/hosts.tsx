/**
 * Agents seen: the newest heartbeat of every host within the chosen window (storage's agent events,
 * `event_type=heartbeat`), with its age, agent version, task count and counters. A host opens its charts.
 */
import { call } from '../api.ts';
import { agentsFromHeartbeats } from '../agents.ts';
import { ago, count, RANGES, rangeSeconds } from '../format.ts';
import { usePoll } from '../poll.ts';
import { href, navigate, useRoute } from '../router.ts';
import type { AgentEventItem, Page } from '../types.ts';

/** Pages of heartbeats read at most per refresh (1000 each). */
const MAX_PAGES = 5;
/** A heartbeat older than this is shown as late (the agent's period is 60 s). */
const LATE_MS = 3 * 60_000;

export async function heartbeats(startS: number, endS: number, signal: AbortSignal): Promise<{ events: AgentEventItem[]; complete: boolean }> {
  const events: AgentEventItem[] = [];
  let cursor: string | undefined;
  for (let i = 0; i < MAX_PAGES; i++) {
    const page = await call<Page<AgentEventItem>>('storage', '/events', { query: { event_type: 'heartbeat', start: startS, end: endS, limit: 1000, cursor }, signal });
    events.push(...page.items);
    cursor = page.next_cursor;
    if (!cursor) return { events, complete: true };
  }
  return { events, complete: false };
}

export function HostsPage() {
  const { query } = useRoute();
  const windowKey = query.get('window') ?? '15m';
  const polled = usePoll(async (signal) => {
    const end = Math.floor(Date.now() / 1000) + 1;
    const r = await heartbeats(end - rangeSeconds(windowKey, '15m'), end, signal);
    return { agents: agentsFromHeartbeats(r.events), complete: r.complete };
  }, [windowKey]);
  const now = polled.at ?? Date.now();
  const agents = polled.data?.agents ?? [];
  return (
    <div class="page">
      <div class="row between wrap">
        <h1>Hosts</h1>
        <label class="inline">
          Seen in the{' '}
          <select name="window" value={windowKey} onChange={(e) => navigate(href(['hosts'], { window: (e.target as HTMLSelectElement).value }))}>
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>{r.label}</option>
            ))}
          </select>
        </label>
      </div>
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      {polled.data && !polled.data.complete ? <p class="warn">Only the newest {MAX_PAGES * 1000} heartbeats were read: pick a shorter window to see every agent.</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="agents" data-loaded={polled.data ? 'yes' : 'no'}>
          <thead>
            <tr>
              <th>Host</th>
              <th>IP</th>
              <th>Heartbeat</th>
              <th>Version</th>
              <th>Tasks</th>
              <th>Uptime</th>
              <th>Published</th>
              <th>Errors</th>
            </tr>
          </thead>
          <tbody>
            {agents.map((a) => (
              <tr key={`${a.bkCloudId}:${a.ip}`} data-host={a.ip}>
                <td>
                  <a href={href(['hosts', a.bkCloudId, a.ip])}>{a.hostname || a.ip}</a>
                  <div class="muted small">host {a.bkHostId} · cloud {a.bkCloudId} · biz {a.bkBizId}</div>
                </td>
                <td class="mono">{a.ip}</td>
                <td class={now - a.lastSeen > LATE_MS ? 'late' : ''}>{ago(now - a.lastSeen)}</td>
                <td>{a.version || '–'}</td>
                <td>{a.tasks ?? '–'}{a.errorTasks ? <span class="error small"> ({a.errorTasks} skipped)</span> : null}</td>
                <td>{a.uptimeS !== undefined ? ago(a.uptimeS * 1000).replace(' ago', '') : '–'}</td>
                <td>{count(a.published)}</td>
                <td>{count(a.errors)}</td>
              </tr>
            ))}
            {polled.data && agents.length === 0 ? (
              <tr>
                <td colSpan={8} class="muted">No agent sent a heartbeat in this window.</td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </div>
  );
}
