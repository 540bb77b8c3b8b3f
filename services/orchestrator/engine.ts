/**
 * Runs a claimed flow: one attempt of its current step at a time, each ending with a save of the flow
 * (with its step-log row and, when step/status/attempt changed, a flow.status record) under the lease.
 *
 * How an attempt ends:
 * - the step is done → the next step runs at once, in the same claim; after the last one the flow is
 *   `success` (or `stopped` / `deleted`);
 * - the step polls (clean starting, dataflow stopping) → the flow comes back after the poll delay;
 * - a retriable error (5xx, timeout, connection) while the family's breaker is closed → the attempt is
 *   retried after an exponential backoff with full jitter, up to the per-step retry budget, after which
 *   the flow fails with the step's status (a breaker of that family closing after an outage ends the
 *   backoff early);
 * - the breaker is open (the call was rejected, or its failure opened it) → `waiting_dependency`: no
 *   budget is spent; the flow is woken when the breaker lets a probe through or closes (and rechecked
 *   after `waitRecheckMs` in any case);
 * - a business error (4xx, `result=false`) → the step's reference failure status.
 */
import { BreakerOpenError, type BreakerState } from '../common/breaker.ts';
import { BkError, errorMessage, isRetriable } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { backoffDelay } from '../common/retry.ts';
import { maskText, openSecrets, sealSecrets, secretValues, type SecretBox } from '../common/secrets.ts';
import { familyOfError, type BkdataApi } from './bkdata-api.ts';
import { BKDATA_APIS, isBusinessError, type ApiName, type Family, type Params } from './bkdata-client.ts';
import type { FlowSettings } from './config.ts';
import { columnValue, FLOW_COLUMNS, statusRecord, type FlowColumn, type FlowStore, type SaveOptions, type SaveResult } from './flow-store.ts';
import { kindOf, planOf } from './kinds/index.ts';
import type { StepContext, StepLimits } from './kinds/kind.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import { DONE_STATUS, DONE_STEP, type FailureStatus, type Flow, type StepLogEntry, type StepOutcome } from './model.ts';

export interface RetryPolicy {
  /** Retries of a step after retriable errors (the budget). */
  stepRetries: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export interface EngineOptions {
  flows: FlowStore;
  api: BkdataApi;
  breakerState: (family: Family) => BreakerState;
  settings: FlowSettings;
  limits: StepLimits;
  retry: RetryPolicy;
  /** Safety net: a waiting flow is looked at again after this long even without a breaker event, ms. */
  waitRecheckMs: number;
  /** Lines of process_info kept per flow. */
  processInfoMaxLines: number;
  /** Lease owner (this instance). */
  owner: string;
  /** Opens the sealed secrets of a flow's config for its steps, and seals what steps store. */
  secrets: SecretBox;
  logger: Logger;
  metrics: Pick<OrchestratorMetrics, 'stepAttempts' | 'stepSeconds' | 'transitions'>;
  now?: () => number;
}

/** Why a run gave the flow back. */
export type RunEnd = 'idle' | 'lost' | 'superseded' | 'stopping';

type Outcome =
  | { kind: 'advance' }
  | { kind: 'poll'; delayMs: number }
  | { kind: 'retry'; delayMs: number; message: string; family: Family | undefined }
  | { kind: 'wait'; family: Family; message: string }
  | { kind: 'fail'; status: FailureStatus; message: string };

/** Thrown by a checkpoint whose save found the lease gone or the command replaced. */
class LeaseGone extends BkError {
  readonly result: SaveResult;
  constructor(result: SaveResult) {
    super('lease_gone', `flow lease ${result}`, false);
    this.result = result;
  }
}

/** Each saved column of a flow as the JSON text it would be stored as. */
function snapshot(flow: Flow): Record<FlowColumn, string> {
  const out = {} as Record<FlowColumn, string>;
  for (const c of FLOW_COLUMNS) out[c] = JSON.stringify(columnValue(flow, c) ?? null);
  return out;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `YYYY-MM-DD HH:MM` in local time, as the reference's process_info lines. */
export function processTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export class FlowEngine {
  readonly #o: EngineOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #metrics: EngineOptions['metrics'];

  constructor(options: EngineOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'engine' });
    this.#now = options.now ?? Date.now;
    this.#metrics = options.metrics;
  }

  /** Runs attempts of `claimed` until it has to wait, is finished, or `stopping()` says so. */
  async run(claimed: Flow, stopping: () => boolean): Promise<RunEnd> {
    const flow: Flow = structuredClone(claimed);
    flow.state ??= {};
    flow.process_info ??= [];
    // What the store holds: saves write only the columns that differ from it.
    let stored = snapshot(flow);
    const save = async (options: SaveOptions): Promise<SaveResult> => {
      const now = snapshot(flow);
      const columns = new Set(FLOW_COLUMNS.filter((c) => now[c] !== stored[c]));
      const r = await this.#o.flows.save(this.#o.owner, flow, { ...options, columns });
      if (r === 'ok') stored = now;
      return r;
    };
    for (;;) {
      if (stopping()) {
        // Give it back due now, so whoever runs next picks it up at once.
        const r = await save({ nextDelayMs: 0, release: true });
        return r === 'ok' ? 'stopping' : r;
      }
      const before = { status: flow.status, step: flow.step, attempt: flow.attempt };
      const startedAt = new Date(this.#now());
      let apiCalls = 0;
      const outcome = await this.#attempt(flow, () => apiCalls++, () => save({ nextDelayMs: null, release: false, keepSchedule: true }));
      if (typeof outcome === 'string') return outcome;
      const { nextDelayMs, release, logStatus } = this.#apply(flow, outcome);
      const changed = flow.status !== before.status || flow.step !== before.step || flow.attempt !== before.attempt;
      const log: StepLogEntry = { step: before.step, status: logStatus, attempt: before.attempt, message: flow.message, api_calls: apiCalls, started_at: startedAt };
      const result = await save({
        nextDelayMs,
        release,
        log,
        ...(changed ? { event: statusRecord(flow, this.#now()) } : {}),
      });
      this.#metrics.stepAttempts.inc({ step: before.step, outcome: logStatus });
      this.#metrics.stepSeconds.observe({ step: before.step }, (this.#now() - startedAt.getTime()) / 1000);
      if (result !== 'ok') {
        this.#log.warn('flow taken away while running', { flow: flow.id, result });
        return result;
      }
      if (changed && flow.status !== before.status) this.#metrics.transitions.inc({ flow_type: flow.flow_type, status: flow.status });
      if (release) return 'idle';
    }
  }

  /** One attempt of the current step; a string when the lease went away mid-step. */
  async #attempt(flow: Flow, countCall: () => void, checkpoint: () => Promise<SaveResult>): Promise<Outcome | 'lost' | 'superseded'> {
    const kind = kindOf(flow.flow_type);
    const step = flow.step === DONE_STEP || !kind ? undefined : planOf(flow.flow_type, flow.desired).find((s) => s.name === flow.step);
    if (!step || !kind) return { kind: 'fail', status: flow.desired === 'running' ? 'config_flow_failed' : 'stop_failed', message: `unknown step ${flow.step}` };
    const ctx: StepContext = {
      flow,
      kind,
      settings: this.#o.settings,
      limits: this.#o.limits,
      now: this.#now,
      call: async <T>(api: ApiName, params?: Params): Promise<T> => {
        countCall();
        try {
          return await this.#o.api.call<T>(api, params);
        } catch (err) {
          // A write that failed retriably may still have happened (its answer was lost): remember it.
          if (BKDATA_APIS[api].write && isRetriable(err) && !(err instanceof BreakerOpenError)) flow.state.uncertain = api;
          throw err;
        }
      },
      log: (text) => this.#processInfo(flow, text),
      checkpoint: async () => {
        const r = await checkpoint();
        if (r !== 'ok') throw new LeaseGone(r);
      },
      reveal: (doc, context) => openSecrets(doc, this.#o.secrets, context),
      conceal: (doc, context) => sealSecrets(doc, this.#o.secrets, context),
    };
    try {
      // The worker's copy holds the config's secrets in the clear for the steps (the config is never saved
      // by a worker: only commands write it, sealed).
      flow.config = openSecrets(flow.config, this.#o.secrets, 'config');
      const r = await step.run(ctx);
      if (r.kind === 'fail') return { kind: 'fail', status: step.failure, message: r.message };
      return r;
    } catch (err) {
      if (err instanceof LeaseGone) return err.result === 'superseded' ? 'superseded' : 'lost';
      return this.#classify(flow, step.failure, err);
    }
  }

  #classify(flow: Flow, failure: FailureStatus, err: unknown): Outcome {
    const message = errorMessage(err);
    const family = familyOfError(err);
    if (family && (err instanceof BreakerOpenError || (isRetriable(err) && this.#o.breakerState(family) === 'open'))) {
      return { kind: 'wait', family, message };
    }
    if (isRetriable(err)) {
      const attempt = flow.attempt + 1;
      if (attempt > this.#o.retry.stepRetries) return { kind: 'fail', status: failure, message: `gave up after ${attempt} attempts: ${message}` };
      return { kind: 'retry', delayMs: backoffDelay(attempt, { initialDelayMs: this.#o.retry.initialDelayMs, maxDelayMs: this.#o.retry.maxDelayMs }), message, family };
    }
    if (!isBusinessError(err)) {
      this.#log.error('step failed unexpectedly', { flow: flow.id, step: flow.step, err });
      return { kind: 'fail', status: failure, message: `internal error: ${message}` };
    }
    return { kind: 'fail', status: failure, message };
  }

  /** Applies an outcome to the flow; returns how to save it. */
  #apply(flow: Flow, outcome: Outcome): { nextDelayMs: number | null; release: boolean; logStatus: StepOutcome } {
    const now = this.#now();
    switch (outcome.kind) {
      case 'advance': {
        delete flow.state.uncertain;
        const plan = planOf(flow.flow_type, flow.desired);
        const next = plan[plan.findIndex((s) => s.name === flow.step) + 1]?.name;
        flow.attempt = 0;
        flow.message = '';
        flow.waiting_on = null;
        if (next) {
          flow.step = next;
          flow.status = 'running';
          return { nextDelayMs: 0, release: false, logStatus: 'ok' };
        }
        flow.step = DONE_STEP;
        flow.status = DONE_STATUS[flow.desired];
        flow.last_process_time = new Date(now);
        if (flow.desired === 'running' && !flow.is_finished) {
          flow.is_finished = true;
          flow.finished_time = new Date(now);
        }
        this.#processInfo(flow, `flow ${flow.status}`);
        return { nextDelayMs: null, release: true, logStatus: 'ok' };
      }
      case 'poll':
        flow.status = 'running';
        flow.waiting_on = null;
        return { nextDelayMs: outcome.delayMs, release: true, logStatus: 'poll' };
      case 'retry':
        flow.status = 'running';
        flow.attempt += 1;
        flow.message = outcome.message;
        // Remembered so that the family's breaker closing again wakes this flow from its backoff too.
        flow.waiting_on = outcome.family ?? null;
        this.#processInfo(flow, `attempt ${flow.attempt} of ${flow.step} failed, retrying in ${outcome.delayMs} ms: ${outcome.message}`);
        return { nextDelayMs: outcome.delayMs, release: true, logStatus: 'retry' };
      case 'wait':
        if (flow.status !== 'waiting_dependency') this.#processInfo(flow, `waiting for BKData ${outcome.family} (circuit breaker open): ${outcome.message}`);
        flow.status = 'waiting_dependency';
        flow.waiting_on = outcome.family;
        flow.message = outcome.message;
        return { nextDelayMs: this.#o.waitRecheckMs, release: true, logStatus: 'waiting' };
      case 'fail':
        flow.status = outcome.status;
        flow.message = outcome.message;
        flow.waiting_on = null;
        flow.last_process_time = new Date(now);
        this.#processInfo(flow, `change status to ${outcome.status}. error=${outcome.message}`);
        this.#log.warn('flow failed', { flow: flow.id, key: `${flow.bk_biz_id}:${flow.app_name}:${flow.flow_type}`, step: flow.step, status: outcome.status, message: outcome.message });
        return { nextDelayMs: null, release: true, logStatus: 'failed' };
    }
  }

  #processInfo(flow: Flow, text: string): void {
    // A BKData answer echoed into process_info may carry a password of the config: never stored, never shown.
    flow.process_info.push(`[INFO] ${processTime(this.#now())} ${maskText(text, secretValues(flow.config))}`);
    const max = this.#o.processInfoMaxLines;
    if (flow.process_info.length > max) flow.process_info.splice(0, flow.process_info.length - max);
    this.#log.debug(text, { flow: flow.id, step: flow.step });
  }
}
