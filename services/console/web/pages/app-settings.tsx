/**
 * An application's settings (admin): its trace retention, the data ids its flows run on, tail sampling
 * (switch, percentage, session gap, mark timeout, conditions) and virtual metrics. Saving PATCHes the
 * changed fields to the collector admin API, which queues the flow commands the change calls for; the
 * collector's 400 messages are shown next to the fields they name. Below, the application's flows and
 * their status from the orchestrator, live.
 */
import { useEffect, useState } from 'preact/hooks';
import { ApiError, appPath, call } from '../api.ts';
import { CONDITION_METHODS, fieldErrors, FORM, formOf, newCondition, patchOf, TAIL_NUMBER_KEYS, type ConditionRow, type SettingsForm, type TailNumberKey } from '../app-settings.ts';
import { dateTime } from '../format.ts';
import { usePoll } from '../poll.ts';
import { href } from '../router.ts';
import type { Application, Flow } from '../types.ts';

interface Saved {
  application: Application;
  flowCommands: { action: string; flow_type: string }[];
}

const TAIL_LABELS: Record<TailNumberKey, string> = {
  tail_percentage: 'Keep at random (%)',
  tail_trace_session_gap_min: 'Session gap (min)',
  tail_trace_mark_timeout: 'Mark timeout (min)',
};

function Problems({ errors, field }: { errors: Record<string, string[]>; field: string }) {
  const list = errors[field];
  if (!list) return null;
  return (
    <span class="error small field-error" data-error-for={field} role="alert">
      {list.join('; ')}
    </span>
  );
}

const value = (e: Event): string => (e.target as HTMLInputElement).value;

function Conditions({ rows, errors, onChange }: { rows: ConditionRow[]; errors: Record<string, string[]>; onChange: (rows: ConditionRow[]) => void }) {
  const set = (i: number, patch: Partial<ConditionRow>): void => onChange(rows.map((r, j) => (j === i ? { ...r, ...patch } : r)));
  return (
    <div class="conditions" data-testid="conditions">
      <h3>Conditions <span class="muted small">(a trace with a span matching them is kept)</span></h3>
      <Problems errors={errors} field="tail_conditions" />
      {rows.length === 0 ? <p class="muted small">No conditions: only the random share is kept.</p> : null}
      {rows.map((r, i) => (
        <div class="row wrap condition" key={i} data-condition={i}>
          {i === 0 ? (
            <span class="connector muted">where</span>
          ) : (
            <label>
              Join
              <select name={`condition-${i}-connector`} value={r.connector} onChange={(e) => set(i, { connector: value(e) === 'or' ? 'or' : 'and' })}>
                <option value="and">and</option>
                <option value="or">or</option>
              </select>
              <Problems errors={errors} field={`tail_conditions.${i}.connector`} />
            </label>
          )}
          <label>
            Key
            <input name={`condition-${i}-key`} value={r.key} placeholder="attributes.http.status_code" onInput={(e) => set(i, { key: value(e) })} />
            <Problems errors={errors} field={`tail_conditions.${i}.key`} />
          </label>
          <label>
            Method
            <select name={`condition-${i}-method`} value={r.method} onChange={(e) => set(i, { method: value(e) })}>
              {CONDITION_METHODS.map((m) => (
                <option key={m} value={m}>{m}</option>
              ))}
            </select>
            <Problems errors={errors} field={`tail_conditions.${i}.method`} />
          </label>
          <label class="grow">
            Values (comma separated)
            <input name={`condition-${i}-values`} value={r.values} onInput={(e) => set(i, { values: value(e) })} />
            <Problems errors={errors} field={`tail_conditions.${i}.values`} />
          </label>
          <button type="button" class="secondary" aria-label={`remove condition ${i + 1}`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>Remove</button>
          <Problems errors={errors} field={`tail_conditions.${i}`} />
        </div>
      ))}
      <button type="button" class="secondary" data-testid="add-condition" onClick={() => onChange([...rows, newCondition()])}>Add condition</button>
    </div>
  );
}

function SettingsEditor({ app, onSaved }: { app: Application; onSaved: (s: Saved) => void }) {
  const [form, setForm] = useState<SettingsForm>(() => formOf(app));
  const [errors, setErrors] = useState<Record<string, string[]>>({});
  const [busy, setBusy] = useState(false);
  const [note, setNote] = useState<string | undefined>(undefined);
  const key = `${app.bkBizId}/${app.appName}`;
  // Another application, or the one the collector answered a save with: start from what the collector has.
  useEffect(() => setForm(formOf(app)), [app]);
  const set = (patch: Partial<SettingsForm>): void => {
    setForm((f) => ({ ...f, ...patch }));
    setNote(undefined);
  };
  const body = patchOf(app, form);
  const changed = Object.keys(body).length > 0;
  const submit = async (ev: Event): Promise<void> => {
    ev.preventDefault();
    setErrors({});
    setNote(undefined);
    setBusy(true);
    try {
      const r = await call<Saved>('collector', appPath(app.bkBizId, app.appName), { method: 'PATCH', body });
      setNote(r.flowCommands.length > 0 ? `Saved; flow commands queued: ${r.flowCommands.map((c) => `${c.action} ${c.flow_type}`).join(', ')}.` : 'Saved; no flow needed a change.');
      onSaved(r);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      setErrors(err instanceof ApiError && err.status === 400 ? fieldErrors(message) : { [FORM]: [message] });
    } finally {
      setBusy(false);
    }
  };
  const numberField = (name: 'trace_retention_days' | 'traces_data_id' | 'metrics_data_id' | TailNumberKey, label: string, disabled = false) => (
    <label>
      {label}
      <input name={name} inputMode="numeric" value={form[name]} disabled={disabled} onInput={(e) => set({ [name]: value(e) })} />
      <Problems errors={errors} field={name} />
    </label>
  );
  return (
    <form class="card settings" onSubmit={(e) => void submit(e)} aria-label="application settings" data-testid="app-settings" data-app={key}>
      <h2>Settings</h2>
      <div class="row wrap">
        {numberField('trace_retention_days', 'Trace retention (days)')}
        {numberField('traces_data_id', 'Traces data id')}
        {numberField('metrics_data_id', 'Metrics data id')}
      </div>
      <fieldset class="switch-group">
        <legend>Tail sampling</legend>
        <label class="inline">
          <input type="checkbox" name="tail_sampling" checked={form.tail_sampling} onChange={(e) => set({ tail_sampling: (e.target as HTMLInputElement).checked })} />
          On (its BKData flow keeps whole traces by the conditions below)
        </label>
        <Problems errors={errors} field="tail_sampling" />
      </fieldset>
      <div class={`row wrap${form.tail_sampling ? '' : ' dim'}`}>
        {TAIL_NUMBER_KEYS.map((k) => numberField(k, TAIL_LABELS[k]))}
      </div>
      <p class="muted small">Empty: the flow's default.</p>
      <Conditions rows={form.conditions} errors={errors} onChange={(conditions) => set({ conditions })} />
      <fieldset class="switch-group">
        <legend>Virtual metrics</legend>
        <label class="inline">
          <input type="checkbox" name="virtual_metric" checked={form.virtual_metric} onChange={(e) => set({ virtual_metric: (e.target as HTMLInputElement).checked })} />
          On (its BKData flow derives RED metrics from the spans)
        </label>
        <Problems errors={errors} field="virtual_metric" />
      </fieldset>
      <div class="row">
        <button type="submit" disabled={busy || !changed}>Save</button>
        <button type="button" class="secondary" disabled={busy || !changed} onClick={() => { setForm(formOf(app)); setErrors({}); }}>Undo changes</button>
        {note ? <span class="ok" role="status" data-testid="settings-outcome">{note}</span> : null}
      </div>
      <Problems errors={errors} field={FORM} />
    </form>
  );
}

function AppFlows({ bkBizId, appName, reloadKey }: { bkBizId: number; appName: string; reloadKey: number }) {
  const polled = usePoll((signal) => call<{ flows: Flow[] }>('orchestrator', '/flows', { query: { bk_biz_id: bkBizId, app_name: appName, limit: 100 }, signal }), [bkBizId, appName, reloadKey]);
  const flows = polled.data?.flows ?? [];
  return (
    <section class="card" aria-label="flows of the application">
      <div class="row between">
        <h2>Flows</h2>
        <a href={href(['flows'], { app: `${bkBizId}/${appName}` })}>Step logs, retry, stop</a>
      </div>
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="app-flows" data-loaded={polled.data ? 'yes' : 'no'}>
          <thead>
            <tr><th>Flow</th><th>Wanted</th><th>Status</th><th>Step</th><th>Message</th><th>Finished</th></tr>
          </thead>
          <tbody>
            {flows.map((f) => (
              <tr key={f.key} data-flow-type={f.flow_type} data-status={f.status}>
                <td>{f.flow_type}</td>
                <td>{f.desired}</td>
                <td><span class={`badge status-${f.status}`}>{f.status}</span>{f.waiting_on ? <div class="muted small">waiting on {f.waiting_on}</div> : null}</td>
                <td>{f.step}{f.attempt > 1 ? <span class="muted small"> (attempt {f.attempt})</span> : null}</td>
                <td class="small">{f.message}</td>
                <td>{f.finished_time ? dateTime(Date.parse(f.finished_time)) : ''}</td>
              </tr>
            ))}
            {polled.data && flows.length === 0 ? (
              <tr><td colSpan={6} class="muted">No flows: switch tail sampling or virtual metrics on.</td></tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </section>
  );
}

export function AppSettingsPage({ bkBizId, appName }: { bkBizId: number; appName: string }) {
  const [saves, setSaves] = useState(0);
  const [saved, setSaved] = useState<Application | undefined>(undefined);
  useEffect(() => setSaved(undefined), [bkBizId, appName]);
  // Read once, not polled: a form that changed under the user's hands would lose their edits. After a
  // save the form starts from the application the collector answered with.
  const polled = usePoll((signal) => call<{ application: Application }>('collector', appPath(bkBizId, appName), { signal }), [bkBizId, appName], { intervalMs: 2 ** 31 - 1 });
  const app = saved ?? polled.data?.application;
  return (
    <div class="page">
      <h1>Settings of {bkBizId}/{appName}</h1>
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      {app ? (
        <SettingsEditor
          app={app}
          onSaved={(r) => {
            setSaved(r.application);
            setSaves((n) => n + 1);
          }}
        />
      ) : polled.error ? null : (
        <p class="muted">Loading…</p>
      )}
      <AppFlows bkBizId={bkBizId} appName={appName} reloadKey={saves} />
    </div>
  );
}
