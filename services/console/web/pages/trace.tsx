/**
 * One trace as a waterfall: every span a bar on the trace's time axis, nested under its parent (fold a
 * subtree with its caret); a click shows the span's attributes, resource, events and links.
 */
import { useState } from 'preact/hooks';
import { appPath, call } from '../api.ts';
import { dateTime, duration, SPAN_KINDS } from '../format.ts';
import { usePoll } from '../poll.ts';
import { href } from '../router.ts';
import { serviceColour, serviceOf, ticks, visibleBars, waterfall, type SpanRow } from '../waterfall.ts';

interface TraceDetail {
  trace_id: string;
  summary?: Record<string, unknown>;
  spans: SpanRow[];
  truncated: boolean;
}

function Attributes({ title, values }: { title: string; values: Record<string, unknown> | undefined }) {
  const entries = Object.entries(values ?? {});
  if (entries.length === 0) return null;
  return (
    <section>
      <h3>{title}</h3>
      <table class="kv">
        <tbody>
          {entries.sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td class="mono">{typeof v === 'string' ? v : JSON.stringify(v)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function SpanDetail({ span, start }: { span: SpanRow; start: number }) {
  return (
    <aside class="card span-detail" data-testid="span-detail" aria-label={`span ${span.span_id}`}>
      <h2>
        {serviceOf(span)}: {span.span_name}
      </h2>
      <p class="muted">
        {SPAN_KINDS[span.kind] ?? span.kind} · {duration(span.elapsed_time)} · starts at +{duration(span.start_time - start)} · span {span.span_id}
        {span.parent_span_id ? ` · parent ${span.parent_span_id}` : ''}
      </p>
      {span.status.code === 2 ? <p class="error">error{span.status.message ? `: ${span.status.message}` : ''}</p> : null}
      <Attributes title="Attributes" values={span.attributes} />
      <Attributes title="Resource" values={span.resource} />
      {span.events && span.events.length > 0 ? (
        <section>
          <h3>Events</h3>
          <ul class="plain" data-testid="span-events">
            {span.events.map((e, i) => (
              <li key={i}>
                <span class="mono">+{duration(e.timestamp - start)}</span> <strong>{e.name}</strong> <span class="mono small">{e.attributes ? JSON.stringify(e.attributes) : ''}</span>
              </li>
            ))}
          </ul>
        </section>
      ) : null}
      {span.links && span.links.length > 0 ? (
        <section>
          <h3>Links</h3>
          <ul class="plain">
            {span.links.map((l, i) => (
              <li key={i} class="mono small">
                {l.trace_id} / {l.span_id}
              </li>
            ))}
          </ul>
        </section>
      ) : null}
    </aside>
  );
}

export function TracePage({ bkBizId, appName, traceId }: { bkBizId: number; appName: string; traceId: string }) {
  const [selected, setSelected] = useState<string | undefined>(undefined);
  const [collapsed, setCollapsed] = useState<Set<string>>(new Set());
  const polled = usePoll((signal) => call<TraceDetail>('storage', `${appPath(bkBizId, appName)}/traces/${encodeURIComponent(traceId)}`, { signal }), [bkBizId, appName, traceId]);
  const d = polled.data;
  const w = waterfall(d?.spans ?? []);
  const bars = visibleBars(w.bars, collapsed);
  const sel = w.bars.find((b) => b.span.span_id === selected)?.span;
  const toggle = (id: string): void => {
    const next = new Set(collapsed);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setCollapsed(next);
  };
  const errors = (d?.spans ?? []).filter((s) => s.status.code === 2).length;
  return (
    <div class="page">
      <p>
        <a href={href(['apps', bkBizId, appName, 'traces'])}>← Traces</a>
      </p>
      <h1 class="mono small-title">Trace {traceId}</h1>
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      {d ? (
        <p class="summary" data-testid="trace-summary">
          {d.spans.length} spans · {w.services.length} services · {duration(w.total)} · {errors} errors · started {dateTime(w.start / 1000)}
          {d.truncated ? ' · truncated: more spans than the storage limit' : ''}
        </p>
      ) : (
        <p class="muted">Loading…</p>
      )}
      {d ? (
        <div class="waterfall" data-testid="waterfall" data-spans={d.spans.length}>
          <div class="wf-axis" aria-hidden="true">
            <div class="wf-name" />
            <div class="wf-track">
              {ticks(w.total).map((t) => (
                <span key={t} class="wf-tick" style={{ left: `${(t / w.total) * 100}%` }}>
                  {duration(t)}
                </span>
              ))}
            </div>
          </div>
          {bars.map((b) => {
            const s = b.span;
            const service = serviceOf(s);
            return (
              <div key={s.span_id} class={`wf-row${s.span_id === selected ? ' selected' : ''}${s.status.code === 2 ? ' failed' : ''}`} data-span={s.span_id} data-depth={s.depth} onClick={() => setSelected(s.span_id === selected ? undefined : s.span_id)}>
                <div class="wf-name" style={{ paddingLeft: `${s.depth * 14 + 4}px` }}>
                  {b.hasChildren ? (
                    <button type="button" class="caret" aria-label={collapsed.has(s.span_id) ? 'expand' : 'collapse'} onClick={(e) => {
                      e.stopPropagation();
                      toggle(s.span_id);
                    }}>
                      {collapsed.has(s.span_id) ? '▸' : '▾'}
                    </button>
                  ) : (
                    <span class="caret" />
                  )}
                  <span class="svc" style={{ borderColor: serviceColour(service) }}>{service}</span> {s.span_name}
                </div>
                <div class="wf-track">
                  <div class="wf-bar" style={{ left: `${b.left}%`, width: `${b.width}%`, background: s.status.code === 2 ? '#dc2626' : serviceColour(service) }} />
                  <span class="wf-dur" style={{ left: `${Math.min(b.left + b.width, 92)}%` }}>{duration(s.elapsed_time)}</span>
                </div>
              </div>
            );
          })}
        </div>
      ) : null}
      {sel ? <SpanDetail span={sel} start={w.start} /> : null}
    </div>
  );
}
