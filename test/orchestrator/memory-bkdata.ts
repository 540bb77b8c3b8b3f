/**
 * Flow steps without a broker or HTTP: bkdata-sim's own route handlers on one state in memory (calls
 * recorded by API name), a flow row to run plans on, and a runner that runs a plan's steps until the last
 * one advances. Used by the kind conformance tests and the adoption tests.
 */
import type { ExecutionContext } from 'ava';
import { ROUTES, bkdataCodeOf, type SimTiming } from '../../services/bkdata-sim/api.ts';
import { defaultFaults } from '../../services/bkdata-sim/faults.ts';
import { SimState } from '../../services/bkdata-sim/state.ts';
import { BkdataApiError, type ApiName, type Params } from '../../services/orchestrator/bkdata-client.ts';
import type { FlowSettings } from '../../services/orchestrator/config.ts';
import type { FlowKind, StepContext, StepDef } from '../../services/orchestrator/kinds/kind.ts';
import type { Flow } from '../../services/orchestrator/model.ts';

/** A new flow row of `kind` for app `appName` of business 2, wanting `config` running. */
export function sampleFlow(kind: FlowKind, config: Record<string, unknown>, appName = 'conformance-app'): Flow {
  const now = new Date();
  return {
    id: 1, bk_biz_id: 2, app_name: appName, flow_type: kind.type, desired: 'running', config: structuredClone(config),
    command_id: 'c1', command_requested_at: 1, operator: 'tester', status: 'pending', step: '', attempt: 0, next_attempt_at: null,
    message: '', waiting_on: null, is_finished: false, finished_time: null, project_id: null, deploy_bk_biz_id: null,
    deploy_data_id: null, deploy_config: null, databus_clean_id: null, databus_clean_config: null,
    databus_clean_result_table_id: null, flow_id: null, state: {}, process_info: [], last_process_time: null, lease_owner: null,
    lease_expires_at: null, created_at: now, updated_at: now,
  };
}

/** BKData in memory: bkdata-sim's route handlers on one state, with calls recorded by API name. */
export function memoryBkdata() {
  const state = new SimState();
  const timing: SimTiming = { cleanStartDelayMs: 0, flowStartDelayMs: 0, flowStopDelayMs: 0 };
  const calls: ApiName[] = [];
  const call = async <T>(api: ApiName, params: Params = {}): Promise<T> => {
    const route = ROUTES.find((r) => r.name === api);
    if (!route) throw new Error(`bkdata-sim has no API ${api}`);
    calls.push(api);
    try {
      return route.handle({ state, now: Date.now(), timing, faults: defaultFaults() }, structuredClone(params)) as T;
    } catch (err) {
      const bkCode = bkdataCodeOf(err);
      if (bkCode === undefined) throw err;
      throw new BkdataApiError(api, (err as Error).message, false, { bkCode });
    }
  };
  return { state, calls, call };
}

/** Runs a plan's steps on `flow` until the last one advances; polls run again at once. */
export async function runPlan(t: ExecutionContext, plan: readonly StepDef[], kind: FlowKind, flow: Flow, call: StepContext['call'], settings: FlowSettings): Promise<void> {
  const ctx: StepContext = {
    flow,
    kind,
    settings,
    limits: { fetchStatusThreshold: 10, cleanPollIntervalMs: 0, virtualMetricCleanRetries: 3, stopPollIntervalMs: 0, stopMaxPolls: 10 },
    call,
    log: () => undefined,
    checkpoint: async () => undefined,
    reveal: (doc) => doc,
    conceal: (doc) => doc,
    now: Date.now,
  };
  for (const step of plan) {
    flow.step = step.name;
    for (let attempt = 0; ; attempt++) {
      const r = await step.run(ctx);
      if (r.kind === 'advance') break;
      if (r.kind === 'fail' || attempt > 20) return void t.fail(`${kind.type} ${step.name}: ${r.kind === 'fail' ? r.message : 'never advanced'}`);
    }
  }
}
