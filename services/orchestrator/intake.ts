/**
 * Flow commands, whichever way they arrive (Kafka flow.commands, HTTP, gRPC): checked (every problem
 * at once, ValidationError), then applied to the store (a repeated command id and a command older than
 * the flow's current one are ignored), then the runner is woken.
 */
import { randomUUID } from 'node:crypto';
import { ValidationError } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import { counter, type Registry } from '../common/metrics.ts';
import type { FlowAction, FlowType } from '../common/records.ts';
import { FLOW_ACTIONS, FLOW_TYPES, parseFlowConfig } from './flow-config.ts';
import type { CommandOutcome, FlowStore } from './flow-store.ts';
import type { Command, Flow } from './model.ts';

export type CommandSource = 'kafka' | 'http' | 'grpc';

const APP_NAME = /^[A-Za-z0-9_.-]{1,50}$/;

/**
 * A command from outside: `{action, flow_type, bk_biz_id, app_name, config?, operator?, command_id?,
 * requested_at?}`; `config` is an object or a JSON string. Missing ids get a UUID, missing times now.
 */
export function parseCommand(input: unknown, nowMs: number = Date.now()): Command {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new ValidationError('a flow command must be a JSON object');
  const c = input as Record<string, unknown>;
  const problems: string[] = [];
  const action = c.action;
  const flowType = c.flow_type;
  if (!(FLOW_ACTIONS as readonly unknown[]).includes(action)) problems.push(`action must be one of ${FLOW_ACTIONS.join(', ')}`);
  if (!(FLOW_TYPES as readonly unknown[]).includes(flowType)) problems.push(`flow_type must be one of ${FLOW_TYPES.join(', ')}`);
  const biz = typeof c.bk_biz_id === 'string' && /^-?\d+$/.test(c.bk_biz_id) ? Number(c.bk_biz_id) : c.bk_biz_id;
  if (typeof biz !== 'number' || !Number.isSafeInteger(biz)) problems.push('bk_biz_id must be an integer');
  else if (flowType === 'virtual_metric' && biz <= 0) problems.push('bk_biz_id must be > 0 for virtual_metric (the reference runs it only for businesses)');
  if (typeof c.app_name !== 'string' || !APP_NAME.test(c.app_name)) problems.push('app_name must be 1-50 characters of letters, digits, _ . -');
  for (const k of ['command_id', 'operator'] as const) {
    if (c[k] !== undefined && c[k] !== null && (typeof c[k] !== 'string' || (c[k]).length > 128)) problems.push(`${k} must be a string of at most 128 characters`);
  }
  const requestedAt = c.requested_at ?? nowMs;
  if (typeof requestedAt !== 'number' || !Number.isSafeInteger(requestedAt) || requestedAt < 0) problems.push('requested_at must be ms since the epoch');
  let config: Record<string, unknown> = {};
  if ((FLOW_ACTIONS as readonly unknown[]).includes(action) && (FLOW_TYPES as readonly unknown[]).includes(flowType)) {
    try {
      config = parseFlowConfig(flowType as FlowType, action as FlowAction, c.config) as unknown as Record<string, unknown>;
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new ValidationError(`invalid flow command: ${problems.join('; ')}`, { details: { problems } });
  return {
    command_id: typeof c.command_id === 'string' && c.command_id !== '' ? c.command_id : randomUUID(),
    action: action as FlowAction,
    flow_type: flowType as FlowType,
    bk_biz_id: biz as number,
    app_name: c.app_name as string,
    config,
    operator: typeof c.operator === 'string' ? c.operator : '',
    requested_at: requestedAt as number,
  };
}

export class CommandIntake {
  readonly #flows: FlowStore;
  readonly #onAccepted: () => void;
  readonly #log: Logger;
  readonly #commands;

  constructor(flows: FlowStore, onAccepted: () => void, registry: Registry, logger: Logger) {
    this.#flows = flows;
    this.#onAccepted = onAccepted;
    this.#log = logger.child({ component: 'intake' });
    this.#commands = counter(registry, { name: 'bkstream_flow_commands_total', help: 'Flow commands by source and outcome (accepted, duplicate, stale, invalid)', labelNames: ['source', 'outcome'] });
  }

  /** Validates and applies a command; throws ValidationError for bad input. */
  async submit(input: unknown, source: CommandSource): Promise<{ outcome: CommandOutcome; command: Command; flow: Flow | undefined }> {
    let command: Command;
    try {
      command = parseCommand(input);
    } catch (err) {
      this.#commands.inc({ source, outcome: 'invalid' });
      throw err;
    }
    const { outcome, flow } = await this.#flows.applyCommand(command);
    this.#commands.inc({ source, outcome });
    if (outcome === 'accepted') {
      this.#log.info('flow command accepted', { source, command_id: command.command_id, action: command.action, flow_type: command.flow_type, bk_biz_id: command.bk_biz_id, app_name: command.app_name });
      this.#onAccepted();
    } else {
      this.#log.info('flow command ignored', { source, outcome, command_id: command.command_id });
    }
    return { outcome, command, flow };
  }
}
