/**
 * One host: its basereport charts (cpu, memory, disk, network, load) over a chosen range, the newest
 * results of the uptime probes its agent runs (http, tcp, udp, ping), and its exceptions (exceptionbeat).
 */
import { useEffect } from 'preact/hooks';
import { call } from '../api.ts';
import { Chart } from '../chart.tsx';
import { dateTime, RANGES, rangeSeconds, text } from '../format.ts';
import { emptyCharts, HOST_METRICS, linesFromBasereport, linesFromMetrics, toCharts, type ChartData } from '../host-series.ts';
import { usePoll } from '../poll.ts';
import { href, navigate } from '../router.ts';
import type { AgentEventItem, Page } from '../types.ts';

const PROBE_TYPES = ['http', 'tcp', 'udp', 'ping'];
const EXCEPTION_TYPES: Readonly<Record<number, string>> = { 3: 'disk read-only', 6: 'disk full', 7: 'core dump', 9: 'out of memory' };

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

function probeTarget(e: AgentEventItem): string {
  const b = obj(e.body);
  if (typeof b.url === 'string') return b.url;
  if (b.target_host !== undefined) return `${text(b.target_host)}:${text(b.target_port)}`;
  if (typeof b.target === 'string') return b.target;
  return e.dimensions.target ?? e.dimensions.target_host ?? '';
}

async function hostEvents(ip: string, cloudId: number, type: string, startS: number, endS: number, limit: number, signal: AbortSignal): Promise<AgentEventItem[]> {
  const page = await call<Page<AgentEventItem>>('storage', '/events', { query: { event_type: type, ip, start: startS, end: endS, limit }, signal });
  return page.items.filter((e) => Number(e.bk_cloud_id) === cloudId);
}

/** Which charts come from storage's series and which from the documents. */
function sourceText(charts: readonly ChartData[], documents: number | undefined): string {
  const of = (source: ChartData['source']): string => charts.filter((c) => c.source === source).map((c) => c.title.toLowerCase()).join(', ');
  const parts = [of('series') && `${of('series')}: host series derived by storage`, of('documents') && `${of('documents')}: read from ${documents ?? 0} basereport documents`];
  return `${parts.filter(Boolean).join('; ') || 'No basereport data in this range'}.`;
}

export function HostPage({ cloudId, ip, query }: { cloudId: number; ip: string; query: URLSearchParams }) {
  const rangeKey = query.get('range') ?? '1h';
  // The chart library loads while the APIs answer, not after.
  useEffect(() => void import('uplot'), []);
  const charts = usePoll(async (signal): Promise<{ charts: ChartData[]; documents: number | undefined }> => {
    const end = Math.floor(Date.now() / 1000) + 1;
    const seconds = rangeSeconds(rangeKey);
    const step = Math.max(60, Math.round(seconds / 240 / 60) * 60);
    const answers = await Promise.all(
      HOST_METRICS.map(async (q) => {
        const r = await call<{ series: { labels: Record<string, string>; points: [number, number][] }[] }>('storage', '/metrics/query', {
          query: { name: q.name, match: [`bk_target_ip=${ip}`, `bk_target_cloud_id=${cloudId}`], start: end - seconds, end, step, agg: q.agg, by: q.by },
          signal,
        });
        return { query: q, series: r.series };
      }),
    );
    const series = linesFromMetrics(answers);
    if (emptyCharts(series).length === 0) return { charts: toCharts(series), documents: undefined };
    // Charts storage has no series for are read from the basereport documents themselves.
    const docs = await hostEvents(ip, cloudId, 'basereport', end - seconds, end, 1000, signal);
    return { charts: toCharts(series, linesFromBasereport(docs.map((d) => ({ timestamp: Number(d.timestamp), body: d.body })))), documents: docs.length };
  }, [cloudId, ip, rangeKey]);
  const events = usePoll(async (signal) => {
    const end = Math.floor(Date.now() / 1000) + 1;
    const start = end - Math.max(rangeSeconds(rangeKey), 3_600);
    const [probes, exceptions] = await Promise.all([
      Promise.all(PROBE_TYPES.map((t) => hostEvents(ip, cloudId, t, start, end, 20, signal))).then((lists) => lists.flat().sort((a, b) => Number(b.timestamp) - Number(a.timestamp)).slice(0, 40)),
      hostEvents(ip, cloudId, 'exceptionbeat', start, end, 50, signal),
    ]);
    return { probes, exceptions };
  }, [cloudId, ip, rangeKey]);

  return (
    <div class="page">
      <p>
        <a href={href(['hosts'])}>← Hosts</a>
      </p>
      <div class="row between wrap">
        <h1>
          Host {ip} <span class="muted small">cloud {cloudId}</span>
        </h1>
        <label class="inline">
          Range{' '}
          <select name="range" value={rangeKey} onChange={(e) => navigate(href(['hosts', cloudId, ip], { range: (e.target as HTMLSelectElement).value }))}>
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>{r.label}</option>
            ))}
          </select>
        </label>
      </div>
      {charts.error ? <p class="error" role="alert">{charts.error.message}</p> : null}
      {charts.data ? <p class="muted small" data-testid="chart-source">{sourceText(charts.data.charts, charts.data.documents)}</p> : <p class="muted">Loading…</p>}
      <div class="charts" data-testid="charts">
        {(charts.data?.charts ?? []).map((c) => (
          <Chart key={c.key} data={c} />
        ))}
      </div>
      <h2>Uptime probes</h2>
      {events.error ? <p class="error">{events.error.message}</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="probes">
          <thead>
            <tr><th>Time</th><th>Type</th><th>Target</th><th>Result</th><th>Duration</th></tr>
          </thead>
          <tbody>
            {(events.data?.probes ?? []).map((e) => {
              const b = obj(e.body);
              const ok = Number(b.available ?? e.metrics.available ?? 0) >= 1 && Number(b.status ?? e.status) === 0;
              return (
                <tr key={`${e.event_id}`} class={ok ? '' : 'failed'}>
                  <td>{dateTime(Number(e.timestamp))}</td>
                  <td>{e.event_type}</td>
                  <td class="mono">{probeTarget(e)}</td>
                  <td>{ok ? 'available' : `failed (code ${text(b.error_code ?? e.status)})`}</td>
                  <td>{b.task_duration !== undefined ? `${text(b.task_duration)} ms` : '–'}</td>
                </tr>
              );
            })}
            {events.data && events.data.probes.length === 0 ? (
              <tr><td colSpan={5} class="muted">No probe results from this host's agent.</td></tr>
            ) : null}
          </tbody>
        </table>
      </div>
      <h2>Exceptions</h2>
      <div class="table-wrap">
        <table class="list" data-testid="exceptions">
          <thead>
            <tr><th>Time</th><th>What</th><th>Details</th></tr>
          </thead>
          <tbody>
            {(events.data?.exceptions ?? []).map((e) => {
              const value = Array.isArray(obj(e.body).value) ? (obj(e.body).value as unknown[]) : [];
              const extra = obj(obj(value[0]).extra);
              const { type, bizid: _b, cloudid: _c, host: _h, ...rest } = extra;
              return (
                <tr key={`${e.event_id}`}>
                  <td>{dateTime(Number(e.timestamp))}</td>
                  <td>{EXCEPTION_TYPES[Number(type)] ?? `type ${text(type)}`}</td>
                  <td class="mono small">{Object.entries(rest).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`).join(' ')}</td>
                </tr>
              );
            })}
            {events.data && events.data.exceptions.length === 0 ? (
              <tr><td colSpan={3} class="muted">No exceptions reported.</td></tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </div>
  );
}
