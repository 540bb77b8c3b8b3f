/**
 * What the command APIs (HTTP and gRPC) can do: submit a command, get a flow with its recent step log,
 * list flows, retry a failed flow, show the breakers. Errors use the taxonomy: ValidationError for bad
 * input, `not_found`, `conflict`.
 */
import type { BreakerState } from '../common/breaker.ts';
import { maskSecretKeys } from '../common/secrets.ts';
import { ConflictError, NotFoundError, ValidationError } from '../common/errors.ts';
import type { FlowType } from '../common/records.ts';
import { FAMILIES, type Family } from './bkdata-client.ts';
import type { CommandOutcome, FlowStore, ListFilter } from './flow-store.ts';
import type { CommandIntake, CommandSource } from './intake.ts';
import { FLOW_TYPES } from './kinds/index.ts';
import { flowKey, type Flow, type FlowKey, type StepRecord } from './model.ts';

/** A flow as the APIs show it. */
export interface FlowView {
  key: string;
  bk_biz_id: number;
  app_name: string;
  flow_type: FlowType;
  desired: string;
  status: string;
  step: string;
  attempt: number;
  message: string;
  waiting_on: string | null;
  command_id: string;
  operator: string;
  is_finished: boolean;
  finished_time: string | null;
  next_attempt_at: string | null;
  project_id: number | null;
  deploy_bk_biz_id: number | null;
  deploy_data_id: number | null;
  databus_clean_id: number | null;
  databus_clean_result_table_id: string | null;
  flow_id: number | null;
  config: Record<string, unknown>;
  state: Record<string, unknown>;
  process_info: string[];
  last_process_time: string | null;
  created_at: string;
  updated_at: string;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);

export function flowView(f: Flow): FlowView {
  return {
    key: flowKey(f),
    bk_biz_id: f.bk_biz_id,
    app_name: f.app_name,
    flow_type: f.flow_type,
    desired: f.desired,
    status: f.status,
    step: f.step,
    attempt: f.attempt,
    message: f.message,
    waiting_on: f.waiting_on,
    command_id: f.command_id,
    operator: f.operator,
    is_finished: f.is_finished,
    finished_time: iso(f.finished_time),
    next_attempt_at: iso(f.next_attempt_at),
    project_id: f.project_id,
    deploy_bk_biz_id: f.deploy_bk_biz_id,
    deploy_data_id: f.deploy_data_id,
    databus_clean_id: f.databus_clean_id,
    databus_clean_result_table_id: f.databus_clean_result_table_id,
    flow_id: f.flow_id,
    // Secrets (es_cluster.password, kafka.password) never leave the service, sealed or not.
    config: maskSecretKeys(f.config) as Record<string, unknown>,
    state: f.state as Record<string, unknown>,
    process_info: f.process_info,
    last_process_time: iso(f.last_process_time),
    created_at: iso(f.created_at) ?? '',
    updated_at: iso(f.updated_at) ?? '',
  };
}

/** A step-log row as the APIs show it (times as ISO strings). */
export type StepView = Omit<StepRecord, 'started_at' | 'finished_at'> & { started_at: string | null; finished_at: string | null };

function stepView(s: StepRecord): StepView {
  return { ...s, started_at: iso(s.started_at), finished_at: iso(s.finished_at) };
}

/** Parses a flow key from API input (path segments or a message). */
export function parseKey(bkBizId: unknown, appName: unknown, flowType: unknown): FlowKey {
  const biz = typeof bkBizId === 'string' && /^-?\d+$/.test(bkBizId) ? Number(bkBizId) : bkBizId;
  const problems: string[] = [];
  if (typeof biz !== 'number' || !Number.isSafeInteger(biz)) problems.push('bk_biz_id must be an integer');
  if (typeof appName !== 'string' || appName === '') problems.push('app_name is required');
  if (!(FLOW_TYPES as readonly unknown[]).includes(flowType)) problems.push(`flow_type must be one of ${FLOW_TYPES.join(', ')}`);
  if (problems.length > 0) throw new ValidationError(problems.join('; '));
  return { bk_biz_id: biz as number, app_name: appName as string, flow_type: flowType as FlowType };
}

export class FlowOperations {
  readonly #flows: FlowStore;
  readonly #intake: CommandIntake;
  readonly #breakerState: (family: Family) => BreakerState;
  readonly #onRetry: () => void;

  constructor(flows: FlowStore, intake: CommandIntake, breakerState: (family: Family) => BreakerState, onRetry: () => void) {
    this.#flows = flows;
    this.#intake = intake;
    this.#breakerState = breakerState;
    this.#onRetry = onRetry;
  }

  async submit(input: unknown, source: CommandSource): Promise<{ outcome: CommandOutcome; command_id: string; flow: FlowView | null }> {
    const { outcome, command, flow } = await this.#intake.submit(input, source);
    return { outcome, command_id: command.command_id, flow: flow ? flowView(flow) : null };
  }

  async get(key: FlowKey, stepLimit = 50): Promise<{ flow: FlowView; steps: StepView[] }> {
    const flow = await this.#flows.get(key);
    if (!flow) throw new NotFoundError(`no flow ${flowKey(key)}`);
    return { flow: flowView(flow), steps: (await this.#flows.steps(flow.id, stepLimit)).map(stepView) };
  }

  async list(filter: ListFilter): Promise<FlowView[]> {
    if (filter.flow_type !== undefined && !FLOW_TYPES.includes(filter.flow_type)) throw new ValidationError(`flow_type must be one of ${FLOW_TYPES.join(', ')}`);
    return (await this.#flows.list(filter)).map(flowView);
  }

  async retry(key: FlowKey): Promise<FlowView> {
    const { flow, retried } = await this.#flows.retry(key);
    if (!flow) throw new NotFoundError(`no flow ${flowKey(key)}`);
    if (!retried) throw new ConflictError(`flow ${flowKey(key)} is ${flow.status}; only failed or waiting flows can be retried (send a new command instead)`);
    this.#onRetry();
    return flowView(flow);
  }

  breakers(): Record<Family, BreakerState> {
    return Object.fromEntries(FAMILIES.map((f) => [f, this.#breakerState(f)])) as Record<Family, BreakerState>;
  }
}
