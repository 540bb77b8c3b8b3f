/**
 * BKData flows (admin): every flow with its status and step, its step log on demand, the breaker of each
 * BKData API family, and the two operator actions — retry a failed flow from its failed step, and stop a
 * flow (a `stop` command through the orchestrator).
 */
import { Fragment } from 'preact';
import { useState } from 'preact/hooks';
import { call } from '../api.ts';
import { dateTime } from '../format.ts';
import { usePoll } from '../poll.ts';
import { useRoute } from '../router.ts';
import type { Flow, FlowStep } from '../types.ts';

function flowPath(f: Flow): string {
  return `/flows/${f.bk_biz_id}/${encodeURIComponent(f.app_name)}/${f.flow_type}`;
}

/** Statuses a retry applies to (the orchestrator answers 409 for others). */
function retriable(f: Flow): boolean {
  return f.status.endsWith('failed') || f.status === 'waiting_dependency';
}

function StepLog({ flow }: { flow: Flow }) {
  const polled = usePoll((signal) => call<{ steps: FlowStep[] }>('orchestrator', flowPath(flow), { query: { steps: 50 }, signal }), [flow.key]);
  if (polled.error) return <p class="error">{polled.error.message}</p>;
  if (!polled.data) return <p class="muted">Loading…</p>;
  return (
    <table class="list inner" data-testid="step-log">
      <thead>
        <tr><th>Started</th><th>Step</th><th>Outcome</th><th>Attempt</th><th>Calls</th><th>Message</th></tr>
      </thead>
      <tbody>
        {polled.data.steps.map((s, i) => (
          <tr key={i}>
            <td>{dateTime(Date.parse(s.started_at))}</td>
            <td>{s.step}</td>
            <td><span class={`badge status-${s.status}`}>{s.status}</span></td>
            <td>{s.attempt}</td>
            <td>{s.api_calls}</td>
            <td class="small">{s.message}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function FlowsPage() {
  const { query } = useRoute();
  const only = query.get('app') ?? '';
  const [open, setOpen] = useState<string | undefined>(undefined);
  const [outcome, setOutcome] = useState<{ ok: boolean; text: string } | undefined>(undefined);
  const [confirmStop, setConfirmStop] = useState<string | undefined>(undefined);
  const polled = usePoll(async (signal) => {
    const [biz, app] = only.includes('/') ? [only.slice(0, only.indexOf('/')), only.slice(only.indexOf('/') + 1)] : [undefined, undefined];
    const [flows, breakers] = await Promise.all([
      call<{ flows: Flow[] }>('orchestrator', '/flows', { query: { limit: 500, bk_biz_id: biz, app_name: app }, signal }),
      call<Record<string, string>>('orchestrator', '/breakers', { signal }),
    ]);
    return { flows: flows.flows, breakers };
  }, [only]);
  const act = async (f: Flow, action: 'retry' | 'stop'): Promise<void> => {
    setOutcome(undefined);
    setConfirmStop(undefined);
    try {
      if (action === 'retry') await call('orchestrator', `${flowPath(f)}/retry`, { method: 'POST' });
      else await call('orchestrator', '/flows', { method: 'POST', body: { action: 'stop', flow_type: f.flow_type, bk_biz_id: f.bk_biz_id, app_name: f.app_name, operator: 'console' } });
      setOutcome({ ok: true, text: `${action === 'retry' ? 'Retrying' : 'Stopping'} ${f.key}.` });
    } catch (err) {
      setOutcome({ ok: false, text: err instanceof Error ? err.message : String(err) });
    }
    polled.reload();
  };
  const flows = polled.data?.flows ?? [];
  return (
    <div class="page">
      <h1>Flows{only ? ` of ${only}` : ''}</h1>
      <section class="card breakers" aria-label="breakers" data-testid="breakers">
        <h2>BKData breakers</h2>
        <div class="badges">
          {Object.entries(polled.data?.breakers ?? {}).map(([family, state]) => (
            <span key={family} class={`badge breaker-${state}`} data-breaker={family}>
              {family}: {state.replace('_', '-')}
            </span>
          ))}
        </div>
      </section>
      {outcome ? <p class={outcome.ok ? 'ok' : 'error'} role="status" data-testid="flow-outcome">{outcome.text}</p> : null}
      {polled.error ? <p class="error" role="alert">{polled.error.message}</p> : null}
      <div class="table-wrap">
        <table class="list" data-testid="flows" data-loaded={polled.data ? 'yes' : 'no'}>
          <thead>
            <tr><th>Application</th><th>Flow</th><th>Wanted</th><th>Status</th><th>Step</th><th>Message</th><th>Actions</th></tr>
          </thead>
          <tbody>
            {flows.map((f) => (
              <Fragment key={f.key}>
                <tr data-flow={f.key}>
                  <td>{f.bk_biz_id}/{f.app_name}</td>
                  <td>{f.flow_type}</td>
                  <td>{f.desired}</td>
                  <td>
                    <span class={`badge status-${f.status}`}>{f.status}</span>
                    {f.waiting_on ? <div class="muted small">waiting on {f.waiting_on}</div> : null}
                  </td>
                  <td>{f.step}{f.attempt > 1 ? <span class="muted small"> (attempt {f.attempt})</span> : null}</td>
                  <td class="small">{f.message}{f.next_attempt_at ? <div class="muted">next attempt {dateTime(Date.parse(f.next_attempt_at))}</div> : null}</td>
                  <td class="actions">
                    <button type="button" class="secondary" onClick={() => setOpen(open === f.key ? undefined : f.key)} aria-expanded={open === f.key}>Step log</button>
                    <button type="button" disabled={!retriable(f)} onClick={() => void act(f, 'retry')}>Retry</button>
                    {confirmStop === f.key ? (
                      <span class="confirm">
                        Stop {f.flow_type} of {f.app_name}?
                        <button type="button" class="danger" onClick={() => void act(f, 'stop')}>Yes, stop</button>
                        <button type="button" class="secondary" onClick={() => setConfirmStop(undefined)}>Cancel</button>
                      </span>
                    ) : (
                      <button type="button" class="danger" disabled={f.desired !== 'running'} onClick={() => setConfirmStop(f.key)}>Stop</button>
                    )}
                  </td>
                </tr>
                {open === f.key ? (
                  <tr class="expanded">
                    <td colSpan={7}>
                      <StepLog flow={f} />
                    </td>
                  </tr>
                ) : null}
              </Fragment>
            ))}
            {polled.data && flows.length === 0 ? (
              <tr><td colSpan={7} class="muted">No flows.</td></tr>
            ) : null}
          </tbody>
        </table>
      </div>
    </div>
  );
}
