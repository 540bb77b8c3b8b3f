/**
 * What a flow kind is (README, How it works): one BKData provisioning flow type — tail sampling, virtual
 * metric — as the strategy the shared steps consult wherever the two types differ (project, business,
 * deploy plan, clean, result table, dataflow name, node graph), with the steps it runs for
 * `create_or_update`. Also the contract of those steps (what a step gets and returns), and the helpers
 * kinds share: names, maintainers and checks of a command's config.
 *
 * Adding a flow type is one file exporting a {@link FlowKind} and one line in the registry (index.ts);
 * the wire format lists flow types too (the `FlowType` enum of schemas/flow-command and flow-status).
 */
import type { FlowType } from '../../common/records.ts';
import type { ApiName, Params } from '../bkdata-client.ts';
import type { FlowSettings } from '../config.ts';
import type { FailureStatus, Flow, FlowState } from '../model.ts';
import type { NodeDef } from '../nodes.ts';

// ---------------------------------------------------------------------------------------------------------
// the contract of a step

/** Limits of the polling loops (reference values as defaults). */
export interface StepLimits {
  /** [APM_APP_BKDATA_FETCH_STATUS_THRESHOLD] iterations of the tail-sampling clean start loop. Default 10. */
  fetchStatusThreshold: number;
  /** Pause between clean status polls, ms (reference: 1 s). */
  cleanPollIntervalMs: number;
  /** Retries of the virtual-metric clean start after the first start. Default 3. */
  virtualMetricCleanRetries: number;
  /** Pause between dataflow status polls while waiting for a stop, ms (reference: 1 s). */
  stopPollIntervalMs: number;
  /** Polls before giving up waiting for a stop (reference: 300). */
  stopMaxPolls: number;
}

/** What a step attempt gets. */
export interface StepContext {
  /** The worker's copy of the flow; steps change it, the engine saves it. */
  flow: Flow;
  /** The flow's kind (by its flow_type). */
  kind: FlowKind;
  settings: FlowSettings;
  limits: StepLimits;
  call<T = unknown>(api: ApiName, params?: Params): Promise<T>;
  /** Appends a line to the flow's process_info (and the log). */
  log(text: string): void;
  /** Saves progress now (before a write whose effect must not be forgotten). */
  checkpoint(): Promise<void>;
  /** A stored document (e.g. `deploy_config`) with its sealed secrets opened, to compare with a request. */
  reveal<T>(doc: T, context: string): T;
  /** A request to store (e.g. as `deploy_config`) with its secrets sealed: no password is kept in plain text. */
  conceal<T>(doc: T, context: string): T;
  now(): number;
}

/** How a step attempt ends: the next step runs, the step runs again after a pause, or the flow fails. */
export type StepResult = { kind: 'advance' } | { kind: 'poll'; delayMs: number } | { kind: 'fail'; message: string };

/** One step of a plan. Its name is what the flow row, the step log and flow.status show. */
export interface StepDef {
  name: string;
  /** Status a business error (or a give-up) of this step sets. */
  failure: FailureStatus;
  run(ctx: StepContext): Promise<StepResult>;
}

// ---------------------------------------------------------------------------------------------------------
// the flow kind

/** The app a flow provisions: its business and name. */
export interface FlowIdentity {
  bkBizId: number;
  appName: string;
}

export function identityOf(flow: Pick<Flow, 'bk_biz_id' | 'app_name'>): FlowIdentity {
  return { bkBizId: flow.bk_biz_id, appName: flow.app_name };
}

/** One BKData request: the client name and its parameters. */
export interface BkdataRequest {
  api: ApiName;
  params: Params;
}

/** The clean start_clean starts: its result table, the progress kept on the flow, and the start call. */
export interface CleanStart {
  rt: string;
  progress: NonNullable<FlowState['clean']>;
  start: () => Promise<unknown>;
}

export interface FlowKind {
  /** The `flow_type` of its commands, rows and statuses. */
  readonly type: FlowType;
  /** Config keys of a `create_or_update` command besides the ones every kind has (`data_id`, `app_creator`). */
  readonly configKeys: readonly string[];
  /** Adds the problems of this kind's own config keys to `problems` (every problem at once). */
  checkConfig(config: Record<string, unknown>, problems: string[]): void;
  /** Why this kind cannot run for a business (the problem's text), or undefined. */
  checkBiz(bkBizId: number): string | undefined;
  /** The steps of `create_or_update`, in order (stop and delete are the same for every kind). */
  readonly createPlan: readonly StepDef[];

  /** BKData project of the dataflow (and of the clean's grant). */
  projectId(settings: FlowSettings): number;
  /** The business BKData objects are created in. */
  bkdataBizId(id: FlowIdentity, settings: FlowSettings): number;
  /**
   * Whether an existing raw data is kept up to date (updated when its config differs, and after it was
   * adopted); otherwise it is created once and never updated.
   */
  readonly updatesDeployPlan: boolean;
  /** The request of `access_deploy_plan` / `update_deploy_plan`. */
  deployParams(flow: Flow, settings: FlowSettings): Params;
  /** The request of `databus_cleans` / `update_databus_cleans`. */
  cleanParams(id: FlowIdentity, settings: FlowSettings, rawDataId: number): Params;
  /** Whether a clean whose stored config is `stored` must be updated to `wanted`. */
  cleanDiffers(stored: Params | null, wanted: Params): boolean;
  /** The calls that update an existing clean, in order. */
  cleanUpdate(flow: Flow, rt: string, params: Params, settings: FlowSettings): BkdataRequest[];
  /** The clean's result table: known in advance, or the one the create returned (null before). */
  cleanResultTableId(flow: Flow): string | null;
  /** Starts the clean and waits (by polls) until it runs; the loops differ per flow type in the reference. */
  startClean(ctx: StepContext, clean: CleanStart): Promise<StepResult>;
  /** The dataflow's name, unique in its project: how it is found again. */
  flowName(id: FlowIdentity, settings: FlowSettings): string;
  /** The dataflow's nodes, or why they cannot be built yet. */
  nodeDefs(flow: Flow, settings: FlowSettings): NodeDef[] | string;
}

// ---------------------------------------------------------------------------------------------------------
// helpers kinds share

/** `strip`, `-`/`.` → `_`, lower case (reference `normalize_app_name`). */
export function normalizeAppName(app: string): string {
  return app.trim().replace(/[-.]/g, '_').toLowerCase();
}

/**
 * Maintainers: operator + configured maintainers + app creator, unique, comma-joined. Sorted, unlike the
 * reference whose set order is random and can trigger needless `update_deploy_plan` calls.
 */
export function maintainers(settings: Pick<FlowSettings, 'operator' | 'maintainers'>, creator: string | undefined): string {
  return [...new Set([settings.operator, ...settings.maintainers, ...(creator ? [creator] : [])])].sort().join(',');
}

const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A positive integer (a data id). */
export function isPositiveInt(v: unknown): v is number {
  return isInt(v) && v > 0;
}

/** `config.<key>`, when set, must be an integer in [min, max]. */
export function optionalInt(obj: Record<string, unknown>, key: string, problems: string[], min: number, max = Number.MAX_SAFE_INTEGER): void {
  const v = obj[key];
  if (v === undefined || v === null) return;
  if (!isInt(v) || v < min || v > max) problems.push(`config.${key} must be an integer in [${min}, ${max}]`);
}

/** `config.<key>`, when set, must be a string. */
export function optionalString(obj: Record<string, unknown>, key: string, problems: string[]): void {
  const v = obj[key];
  if (v !== undefined && v !== null && typeof v !== 'string') problems.push(`config.${key} must be a string`);
}

/** `config.<key>`, when set, must be an object of the given fields (integers are non-negative). */
export function optionalObject(v: unknown, key: string, fields: Record<string, 'int' | 'string' | 'boolean'>, problems: string[]): void {
  if (v === undefined || v === null) return;
  if (typeof v !== 'object' || Array.isArray(v)) {
    problems.push(`config.${key} must be an object`);
    return;
  }
  for (const [k, val] of Object.entries(v)) {
    const type = fields[k];
    if (!type) problems.push(`config.${key}.${k}: unknown field (${Object.keys(fields).join(', ')})`);
    else if (type === 'int' ? !isInt(val) || val < 0 : typeof val !== type) problems.push(`config.${key}.${k} must be ${type === 'int' ? 'a non-negative integer' : `a ${type}`}`);
  }
}
