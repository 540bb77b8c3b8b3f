/**
 * Flow commands, whichever way they arrive (Kafka flow.commands, HTTP, gRPC): checked (every problem
 * at once, ValidationError), then applied to the store (a repeated command id and a command older than
 * the flow's current one are ignored; the flow starts its kind's plan for the action), then the runner
 * is woken. README, Interfaces, lists the config keys of each flow type.
 */
import { randomUUID } from 'node:crypto';
import { ValidationError } from '../common/errors.ts';
import { SecretError, sealSecrets, type SecretBox } from '../common/secrets.ts';
import type { Logger } from '../common/log.ts';
import type { FlowAction, FlowType } from '../common/records.ts';
import { checkApplication, UnknownApplicationError, type ApplicationRegistry } from './applications.ts';
import type { CommandOutcome, FlowStore } from './flow-store.ts';
import { FLOW_KINDS, FLOW_TYPES, kindOf, planOf } from './kinds/index.ts';
import { isPositiveInt, optionalString } from './kinds/kind.ts';
import type { OrchestratorMetrics } from './metrics.ts';
import { DESIRED_OF, DONE_STEP, FLOW_ACTIONS, type Command, type Flow } from './model.ts';

export type CommandSource = 'kafka' | 'http' | 'grpc';

const APP_NAME = /^[A-Za-z0-9_.-]{1,50}$/;

/** Config keys every flow kind has: the data source's id (required) and the app's creator. */
const COMMON_CONFIG_KEYS = ['data_id', 'app_creator'];

/**
 * Parses and checks a command's config (a JSON string or an object) for `flowType`. `action` other than
 * create_or_update needs no config (an empty object is accepted). Throws one ValidationError listing
 * every problem: the keys every kind has, unknown keys, then the kind's own checks.
 */
export function parseFlowConfig(flowType: FlowType, action: FlowAction, raw: unknown): Record<string, unknown> {
  let value: unknown = raw;
  if (typeof raw === 'string') {
    try {
      value = raw.trim() === '' ? {} : (JSON.parse(raw) as unknown);
    } catch {
      throw new ValidationError('config is not valid JSON');
    }
  }
  if (value === undefined || value === null) value = {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new ValidationError('config must be a JSON object');
  const obj = value as Record<string, unknown>;
  if (action !== 'create_or_update') return obj;
  const kind = FLOW_KINDS[flowType];
  const problems: string[] = [];
  if (!isPositiveInt(obj.data_id)) problems.push('config.data_id must be a positive integer (the bk_data_id of the data source)');
  optionalString(obj, 'app_creator', problems);
  const known = new Set([...COMMON_CONFIG_KEYS, ...kind.configKeys]);
  for (const k of Object.keys(obj)) if (!known.has(k)) problems.push(`config.${k}: unknown key for ${flowType}`);
  kind.checkConfig(obj, problems);
  if (problems.length > 0) throw new ValidationError(`invalid ${flowType} config: ${problems.join('; ')}`, { details: { problems } });
  return obj;
}

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
  const bizProblem = typeof biz !== 'number' || !Number.isSafeInteger(biz) ? 'bk_biz_id must be an integer' : kindOf(String(flowType))?.checkBiz(biz);
  if (bizProblem) problems.push(bizProblem);
  if (typeof c.app_name !== 'string' || !APP_NAME.test(c.app_name)) problems.push('app_name must be 1-50 characters of letters, digits, _ . -');
  for (const k of ['command_id', 'operator'] as const) {
    if (c[k] !== undefined && c[k] !== null && (typeof c[k] !== 'string' || (c[k]).length > 128)) problems.push(`${k} must be a string of at most 128 characters`);
  }
  const requestedAt = c.requested_at ?? nowMs;
  if (typeof requestedAt !== 'number' || !Number.isSafeInteger(requestedAt) || requestedAt < 0) problems.push('requested_at must be ms since the epoch');
  let config: Record<string, unknown> = {};
  if ((FLOW_ACTIONS as readonly unknown[]).includes(action) && (FLOW_TYPES as readonly unknown[]).includes(flowType)) {
    try {
      config = parseFlowConfig(flowType as FlowType, action as FlowAction, c.config);
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

/**
 * The config of a command with its secrets sealed (`password` / `secret` keys: es_cluster.password,
 * kafka.password), as it is stored. A value already sealed with this instance's keys (a producer that
 * has the key may send one) is kept; one that does not open is bad input.
 */
export function sealCommandConfig(config: Record<string, unknown>, box: SecretBox): Record<string, unknown> {
  try {
    return sealSecrets(config, box, 'config');
  } catch (err) {
    if (err instanceof SecretError) throw new ValidationError(`invalid flow command: ${err.message}`);
    throw err;
  }
}

export class CommandIntake {
  readonly #flows: FlowStore;
  readonly #onAccepted: () => void;
  readonly #log: Logger;
  readonly #commands: OrchestratorMetrics['commands'];
  readonly #secrets: SecretBox;
  readonly #applications: ApplicationRegistry | undefined;

  /** `applications`: refuse flows of applications it does not hold (applications.ts); undefined = no check. */
  constructor(flows: FlowStore, onAccepted: () => void, metrics: Pick<OrchestratorMetrics, 'commands'>, logger: Logger, secrets: SecretBox, applications?: ApplicationRegistry) {
    this.#flows = flows;
    this.#onAccepted = onAccepted;
    this.#log = logger.child({ component: 'intake' });
    this.#commands = metrics.commands;
    this.#secrets = secrets;
    this.#applications = applications;
  }

  /**
   * Validates and applies a command (its secrets sealed); throws ValidationError for bad input and
   * UnknownApplicationError (`not_found`) for a flow of an application that is not registered.
   */
  async submit(input: unknown, source: CommandSource): Promise<{ outcome: CommandOutcome; command: Command; flow: Flow | undefined }> {
    let command: Command;
    try {
      command = parseCommand(input);
      command = { ...command, config: sealCommandConfig(command.config, this.#secrets) };
    } catch (err) {
      this.#commands.inc({ source, outcome: 'invalid' });
      throw err;
    }
    if (this.#applications) {
      const cmd = command;
      try {
        await checkApplication(this.#applications, cmd, async () => (await this.#flows.get(cmd)) !== undefined);
      } catch (err) {
        if (err instanceof UnknownApplicationError) {
          this.#commands.inc({ source, outcome: 'unknown_application' });
          this.#log.warn('flow command refused: unknown application', { source, command_id: cmd.command_id, action: cmd.action, flow_type: cmd.flow_type, bk_biz_id: cmd.bk_biz_id, app_name: cmd.app_name });
        }
        throw err;
      }
    }
    const first = planOf(command.flow_type, DESIRED_OF[command.action])[0]?.name ?? DONE_STEP;
    const { outcome, flow } = await this.#flows.applyCommand(command, first);
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
