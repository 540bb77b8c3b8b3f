/**
 * Applications (admin): the registry from the collector's admin API with each application's flows from
 * the orchestrator; create (the token is shown once, with a copy button and the SDK snippet), rotate the
 * token, delete — both asked for again before they happen.
 */
import { useState } from 'preact/hooks';
import { appPath, call } from '../api.ts';
import { copyText } from '../copy.ts';
import { dateTime } from '../format.ts';
import { usePoll } from '../poll.ts';
import { href } from '../router.ts';
import type { Settings } from '../settings.ts';
import type { Application, Flow } from '../types.ts';

interface Issued {
  application: Application;
  token: string;
  /** `created` or `rotated` */
  how: string;
}

export function sdkSnippet(settings: Settings, token: string): string {
  return `# Any OpenTelemetry SDK, through the standard environment variables (OTLP/HTTP):
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=${settings.otlpHttpUrl}
OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf
OTEL_EXPORTER_OTLP_TRACES_HEADERS=x-bk-token=${token}

// Node.js, in code (OTLP/gRPC: url ${settings.otlpGrpcUrl} with metadata x-bk-token)
import { NodeTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
const exporter = new OTLPTraceExporter({ url: '${settings.otlpHttpUrl}', headers: { 'x-bk-token': '${token}' } });
new NodeTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter)] }).register();`;
}

function TokenPanel({ issued, settings, onClose }: { issued: Issued; settings: Settings; onClose: () => void }) {
  const [copied, setCopied] = useState<string | undefined>(undefined);
  const copy = async (what: string, text: string): Promise<void> => setCopied((await copyText(text)) ? what : 'nothing (copy by hand)');
  const snippet = sdkSnippet(settings, issued.token);
  const a = issued.application;
  return (
    <section class="card token-panel" aria-label="new token" data-testid="token-panel">
      <h2>
        Token of {a.bkBizId}/{a.appName} {issued.how}
      </h2>
      <p class="warn">It is shown this once: the collector keeps only its hash. Copy it now.</p>
      <div class="row">
        <input class="mono grow" readOnly value={issued.token} data-testid="token" aria-label="token" />
        <button type="button" onClick={() => void copy('the token', issued.token)}>Copy token</button>
      </div>
      <h3>SDK settings</h3>
      <pre class="snippet" data-testid="sdk-snippet">{snippet}</pre>
      <div class="row">
        <button type="button" onClick={() => void copy('the snippet', snippet)}>Copy snippet</button>
        <button type="button" class="secondary" onClick={onClose}>Done</button>
        {copied ? <span class="muted" role="status">Copied {copied}.</span> : null}
      </div>
    </section>
  );
}

function CreateForm({ onCreated }: { onCreated: (i: Issued) => void }) {
  const [biz, setBiz] = useState('2');
  const [name, setName] = useState('');
  const [alias, setAlias] = useState('');
  const [days, setDays] = useState('7');
  const [error, setError] = useState<string | undefined>(undefined);
  const [busy, setBusy] = useState(false);
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      const body = { bk_biz_id: Number(biz), app_name: name.trim(), ...(alias.trim() ? { app_alias: alias.trim() } : {}), trace_retention_days: Number(days) };
      const r = await call<{ application: Application; token: string }>('collector', '/apps', { method: 'POST', body });
      onCreated({ ...r, how: 'created' });
      setName('');
      setAlias('');
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="card create" onSubmit={(e) => void submit(e)} aria-label="new application">
      <h2>New application</h2>
      <div class="row wrap">
        <label>
          Business id
          <input name="bk_biz_id" inputMode="numeric" value={biz} onInput={(e) => setBiz((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          Name
          <input name="app_name" value={name} pattern="[A-Za-z0-9_\-]{1,50}" onInput={(e) => setName((e.target as HTMLInputElement).value)} required />
        </label>
        <label>
          Alias
          <input name="app_alias" value={alias} onInput={(e) => setAlias((e.target as HTMLInputElement).value)} />
        </label>
        <label>
          Trace retention (days)
          <input name="trace_retention_days" inputMode="numeric" value={days} onInput={(e) => setDays((e.target as HTMLInputElement).value)} />
        </label>
        <button type="submit" disabled={busy}>Create</button>
      </div>
      {error ? <p class="error" role="alert">{error}</p> : null}
    </form>
  );
}

function FlowBadges({ flows }: { flows: Flow[] }) {
  if (flows.length === 0) return <span class="muted">none</span>;
  return (
    <span class="badges">
      {flows.map((f) => (
        <a key={f.key} class={`badge status-${f.status}`} href={href(['flows'], { app: `${f.bk_biz_id}/${f.app_name}` })} title={f.message || f.step}>
          {f.flow_type}: {f.status}
        </a>
      ))}
    </span>
  );
}

export function AppsPage({ settings }: { settings: Settings }) {
  const [issued, setIssued] = useState<Issued | undefined>(undefined);
  const [confirming, setConfirming] = useState<{ key: string; action: 'rotate' | 'delete' } | undefined>(undefined);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const polled = usePoll(async (signal) => {
    const [apps, flows] = await Promise.all([
      call<{ applications: Application[] }>('collector', '/apps', { signal }),
      call<{ flows: Flow[] }>('orchestrator', '/flows', { query: { limit: 1000 }, signal }).catch(() => ({ flows: [] as Flow[] })),
    ]);
    return { apps: apps.applications, flows: flows.flows };
  }, []);
  const act = async (a: Application, action: 'rotate' | 'delete'): Promise<void> => {
    setConfirming(undefined);
    setOutcome(undefined);
    try {
      if (action === 'rotate') {
        const r = await call<{ application: Application; token: string }>('collector', `${appPath(a.bkBizId, a.appName)}/rotate-token`, { method: 'POST' });
        setIssued({ ...r, how: 'rotated (the old token stops working)' });
      } else {
        await call('collector', appPath(a.bkBizId, a.appName), { method: 'DELETE' });
        setOutcome({ ok: true, text: `Deleted ${a.bkBizId}/${a.appName}.` });
      }
    } catch (err) {
      setOutcome({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
    polled.reload();
  };
  const apps = polled.data?.apps ?? [];
  const flowsOf = (a: Application): Flow[] => (polled.data?.flows ?? []).filter((f) => f.bk_biz_id === a.bkBizId && f.app_name === a.appName);
  return (
    <div class="page">
      <h1>Applications</h1>
      {issued ? <TokenPanel issued={issued} settings={settings} onClose={() => setIssued(undefined)} /> : null}
      <CreateForm
        onCreated={(i) => {
          setIssued(i);
          polled.reload();
        }}
      />
      {outcome ? <p class={outcome.ok ? 'ok' : 'error'} role="status" data-testid="app-outcome">{outcome.text}</p> : null}
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="apps" data-loaded={polled.data ? 'yes' : 'no'}>
          <thead>
            <tr>
              <th>Application</th>
              <th>Retention</th>
              <th>Token</th>
              <th>Created</th>
              <th>Flows</th>
              <th>Actions</th>
            </tr>
          </thead>
          <tbody>
            {apps.map((a) => {
              const key = `${a.bkBizId}/${a.appName}`;
              return (
                <tr key={key} data-app={key}>
                  <td>
                    <a href={href(['apps', a.bkBizId, a.appName, 'map'])}>{key}</a>
                    {a.appAlias ? <div class="muted">{a.appAlias}</div> : null}
                  </td>
                  <td>{a.traceRetentionDays} d</td>
                  <td class="mono">{a.tokenHint}…</td>
                  <td>{dateTime(Date.parse(a.createdAt))}</td>
                  <td>
                    <FlowBadges flows={flowsOf(a)} />
                  </td>
                  <td class="actions">
                    <a href={href(['apps', a.bkBizId, a.appName, 'traces'])}>Traces</a>
                    <a href={href(['apps', a.bkBizId, a.appName, 'settings'])}>Settings</a>
                    {confirming?.key === key ? (
                      <span class="confirm" role="group" aria-label="confirm">
                        {confirming.action === 'delete' ? `Delete ${key} and its token?` : `New token for ${key}? The old one stops working.`}
                        <button type="button" class={confirming.action === 'delete' ? 'danger' : ''} onClick={() => void act(a, confirming.action)}>
                          {confirming.action === 'delete' ? 'Yes, delete' : 'Yes, rotate'}
                        </button>
                        <button type="button" class="secondary" onClick={() => setConfirming(undefined)}>Cancel</button>
                      </span>
                    ) : (
                      <>
                        <button type="button" class="secondary" onClick={() => setConfirming({ key, action: 'rotate' })}>Rotate token</button>
                        <button type="button" class="danger" onClick={() => setConfirming({ key, action: 'delete' })}>Delete</button>
                      </>
                    )}
                  </td>
                </tr>
              );
            })}
            {polled.data && apps.length === 0 ? (
              <tr>
                <td colSpan={6} class="muted">No applications yet: create one above.</td>
              </tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </div>
  );
}
