/**
 * A flow as the orchestrator persists it (table bkdata_flow: the reference's columns plus the state
 * machine; README, How it works), its statuses and its step log. The steps each flow type runs are its
 * kind's plan (kinds/index.ts).
 */
import type { FlowAction, FlowType } from '../common/records.ts';
import type { Family } from './bkdata-client.ts';

/** What the last command asked for. */
export type Desired = 'running' | 'stopped' | 'deleted';

export const DESIRED_OF: Record<FlowAction, Desired> = { create_or_update: 'running', stop: 'stopped', delete: 'deleted' };

/** The actions a command may ask for. */
export const FLOW_ACTIONS = Object.keys(DESIRED_OF) as readonly FlowAction[];

/** The reference's failure statuses plus the two of the stop/delete paths the reference lacks. */
export const FAILURE_STATUSES = [
  'config_deploy_failed',
  'config_cleans_failed',
  'config_cleans_start_failed',
  'auth_failed',
  'config_flow_failed',
  'stop_failed',
  'delete_failed',
] as const;
export type FailureStatus = (typeof FAILURE_STATUSES)[number];

export type FlowStatusName = 'pending' | 'running' | 'waiting_dependency' | 'success' | 'stopped' | 'deleted' | FailureStatus;

export const DONE_STATUS: Record<Desired, FlowStatusName> = { running: 'success', stopped: 'stopped', deleted: 'deleted' };

export function isFailure(status: string): status is FailureStatus {
  return (FAILURE_STATUSES as readonly string[]).includes(status);
}

/** Statuses after which nothing runs until a new command or a retry. */
export function isTerminal(status: string): boolean {
  return (Object.values(DONE_STATUS) as string[]).includes(status) || isFailure(status);
}

/** The step name of a flow with nothing left to do. */
export const DONE_STEP = 'done';

/** Run-scoped progress kept in bkdata_flow.state (jsonb). */
export interface FlowState {
  /** Dataflow nodes changed and not yet (re)started; survives new commands until start_dataflow. */
  restart?: { modified: boolean; sql_changed: boolean };
  /** start_clean progress: loop iterations done, last status read, whether the first start was sent. */
  clean?: { polls: number; status?: string | null; started?: boolean };
  /** The ES resource set register_storage settled on. */
  es_cluster?: string;
  /** Node ids of the graph, by node key, after sync_nodes. */
  node_ids?: Record<string, number>;
  /** wait_dataflow_stopped progress. */
  stop_polls?: number;
  /** A write call of this step failed in a way that leaves its effect unknown (timeout, connection lost). */
  uncertain?: string;
  /**
   * The create a step sent last (its API and a digest of its request, secrets masked), saved before the
   * call: an object adopted after a lost answer was created by that request, so when the request is the
   * same now it needs no update.
   */
  creating?: { api: string; digest: string };
}

export interface Flow {
  id: number;
  bk_biz_id: number;
  app_name: string;
  flow_type: FlowType;
  desired: Desired;
  config: Record<string, unknown>;
  command_id: string;
  command_requested_at: number;
  operator: string;
  status: FlowStatusName;
  step: string;
  attempt: number;
  next_attempt_at: Date | null;
  message: string;
  waiting_on: Family | null;
  is_finished: boolean;
  finished_time: Date | null;
  project_id: number | null;
  deploy_bk_biz_id: number | null;
  deploy_data_id: number | null;
  deploy_config: Record<string, unknown> | null;
  databus_clean_id: number | null;
  databus_clean_config: Record<string, unknown> | null;
  databus_clean_result_table_id: string | null;
  flow_id: number | null;
  state: FlowState;
  process_info: string[];
  last_process_time: Date | null;
  lease_owner: string | null;
  lease_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface FlowKey {
  bk_biz_id: number;
  app_name: string;
  flow_type: FlowType;
}

/** `bk_biz_id:app_name:flow_type`, the Kafka key of flow commands and statuses. */
export function flowKey(f: FlowKey): string {
  return `${f.bk_biz_id}:${f.app_name}:${f.flow_type}`;
}

/** A validated command, from Kafka, HTTP or gRPC. */
export interface Command extends FlowKey {
  command_id: string;
  action: FlowAction;
  config: Record<string, unknown>;
  operator: string;
  requested_at: number;
}

/** How a step attempt ended, as the step log (and `bkstream_flow_step_attempts_total{outcome}`) says. */
export type StepOutcome = 'ok' | 'poll' | 'retry' | 'waiting' | 'failed';

/** One row of the step log (table bkdata_flow_step). */
export interface StepRecord {
  step: string;
  status: StepOutcome;
  attempt: number;
  message: string;
  /** BKData calls the attempt made. */
  api_calls: number;
  /** The instance that ran it. */
  owner: string;
  command_id: string;
  started_at: Date;
  finished_at: Date | null;
}

/** What the engine writes of a step-log row; the store adds owner, command and finish time. */
export type StepLogEntry = Pick<StepRecord, 'step' | 'status' | 'attempt' | 'message' | 'api_calls' | 'started_at'>;
