/**
 * Trace search of one application with the BaseQuery filters storage understands — service, endpoint
 * (span name), minimum duration, status, one attribute — over a range; the newest traces first, more on
 * demand (keyset cursor). The first page refreshes by itself.
 */
import { useEffect, useState } from 'preact/hooks';
import { appPath, call } from '../api.ts';
import { count, dateTime, duration, RANGES, rangeSeconds } from '../format.ts';
import { usePoll } from '../poll.ts';
import { href, navigate } from '../router.ts';
import { traceFilters, type TraceFilters } from '../trace-query.ts';
import type { Page, TraceItem } from '../types.ts';

function filtersOf(q: URLSearchParams): TraceFilters {
  const min = Number(q.get('min') ?? '');
  const status = q.get('status');
  return {
    service: q.get('service') ?? undefined,
    endpoint: q.get('endpoint') ?? undefined,
    minDurationMs: Number.isFinite(min) && min > 0 ? min : undefined,
    status: status === 'error' || status === 'ok' ? status : undefined,
    attribute: q.get('attr') ?? undefined,
  };
}

export function TracesPage({ bkBizId, appName, query }: { bkBizId: number; appName: string; query: URLSearchParams }) {
  const rangeKey = query.get('range') ?? '1h';
  const filters = filtersOf(query);
  const [form, setForm] = useState({ service: filters.service ?? '', endpoint: filters.endpoint ?? '', min: query.get('min') ?? '', status: query.get('status') ?? '', attr: filters.attribute ?? '', range: rangeKey });
  const [more, setMore] = useState<{ items: TraceItem[]; cursor: string | undefined; forKey: string }>({ items: [], cursor: undefined, forKey: '' });
  const key = `${bkBizId}/${appName}?${query.toString()}`;
  const base = appPath(bkBizId, appName);
  const params = (end: number): Record<string, string | number> => ({ start_time: end - rangeSeconds(rangeKey), end_time: end, filters: JSON.stringify(traceFilters(filters)), limit: 50 });

  const polled = usePoll(async (signal) => {
    const end = Math.floor(Date.now() / 1000);
    const page = await call<Page<TraceItem> & { end_time: number }>('storage', `${base}/traces`, { query: params(end), signal });
    return { ...page, end, forQuery: query.toString() };
  }, [key]);
  const options = usePoll(async (signal) => {
    const end = Math.floor(Date.now() / 1000);
    const r = await call<{ options: Record<string, { value: unknown; count: number }[]> }>('storage', `${base}/options`, { query: { start_time: end - rangeSeconds(rangeKey), end_time: end, fields: 'resource.service.name,span_name', limit: 100 }, signal });
    return r.options;
  }, [bkBizId, appName, rangeKey], { intervalMs: 60_000, enabled: polled.data !== undefined });

  const extra = more.forKey === key ? more : { items: [], cursor: undefined, forKey: key };
  const loadMore = async (): Promise<void> => {
    const cursor = extra.cursor ?? polled.data?.next_cursor;
    if (!cursor || !polled.data) return;
    const page = await call<Page<TraceItem>>('storage', `${base}/traces`, { query: { ...params(polled.data.end), cursor } });
    setMore({ items: [...extra.items, ...page.items], cursor: page.next_cursor, forKey: key });
  };
  const submit = (ev: Event): void => {
    ev.preventDefault();
    navigate(href(['apps', bkBizId, appName, 'traces'], { service: form.service, endpoint: form.endpoint, min: form.min, status: form.status, attr: form.attr, range: form.range }));
  };
  const items = [...(polled.data?.items ?? []), ...extra.items];
  const hasMore = extra.items.length > 0 ? extra.cursor !== undefined : polled.data?.next_cursor !== undefined;
  useEffect(() => {
    if (polled.data && performance.getEntriesByName('bk:first-data').length === 0) performance.mark('bk:first-data');
  }, [polled.data]);
  const set = (k: keyof typeof form) => (e: Event): void => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <div class="page">
      <h1>Traces</h1>
      <form class="card filters" onSubmit={submit} aria-label="trace search">
        <label>
          Service
          <input name="service" list="services" value={form.service} onInput={set('service')} />
        </label>
        <label>
          Endpoint
          <input name="endpoint" list="endpoints" value={form.endpoint} onInput={set('endpoint')} />
        </label>
        <label>
          Min duration (ms)
          <input name="min" inputMode="decimal" value={form.min} onInput={set('min')} />
        </label>
        <label>
          Status
          <select name="status" value={form.status} onChange={set('status')}>
            <option value="">any</option>
            <option value="error">error</option>
            <option value="ok">ok</option>
          </select>
        </label>
        <label>
          Attribute
          <input name="attr" placeholder="http.method=GET" value={form.attr} onInput={set('attr')} />
        </label>
        <label>
          Range
          <select name="range" value={form.range} onChange={set('range')}>
            {RANGES.map((r) => (
              <option key={r.key} value={r.key}>{r.label}</option>
            ))}
          </select>
        </label>
        <button type="submit">Search</button>
        <datalist id="services">{(options.data?.['resource.service.name'] ?? []).map((o) => <option key={String(o.value)} value={String(o.value)} />)}</datalist>
        <datalist id="endpoints">{(options.data?.span_name ?? []).map((o) => <option key={String(o.value)} value={String(o.value)} />)}</datalist>
      </form>
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="traces" data-loaded={polled.data ? 'yes' : 'no'} data-for={polled.data?.forQuery}>
          <thead>
            <tr>
              <th>Start</th>
              <th>Root</th>
              <th>Duration</th>
              <th>Spans</th>
              <th>Services</th>
              <th>Errors</th>
              <th>Trace id</th>
            </tr>
          </thead>
          <tbody>
            {items.map((t) => (
              <tr key={t.trace_id} data-trace={t.trace_id} class={t.error ? 'failed' : ''}>
                <td>{dateTime(Number(t.min_start_time) / 1000)}</td>
                <td>
                  <a href={href(['apps', bkBizId, appName, 'traces', t.trace_id])}>
                    {t.root_service ?? t.root_span_service}: {t.root_service_span_name ?? t.root_span_name}
                  </a>
                </td>
                <td>{duration(Number(t.trace_duration))}</td>
                <td>{count(t.span_count)}</td>
                <td>{t.service_count}</td>
                <td>{t.error_count > 0 ? <span class="badge status-failed">{t.error_count}</span> : '0'}</td>
                <td class="mono small">{t.trace_id}</td>
              </tr>
            ))}
            {polled.data && items.length === 0 ? (
              <tr>
                <td colSpan={7} class="muted">No traces match in this range.</td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
      {hasMore ? (
        <button type="button" class="secondary" onClick={() => void loadMore()}>More</button>
      ) : null}
    </div>
  );
}
