/**
 * `bkstream flows`: the orchestrator's flows through its HTTP API (ORCHESTRATOR_URL, default
 * http://127.0.0.1:8082), with the admin token of the environment (credentials.ts). Passwords in flow
 * configs are never printed (masked).
 *
 *   bkstream flows list [--status S] [--type tail_sampling|virtual_metric] [--biz N] [--app NAME] [--limit N] [--offset N] [--json]
 *   bkstream flows get <bk_biz_id> <app_name> <flow_type>
 *   bkstream flows submit <create_or_update|stop|delete> <flow_type> <bk_biz_id> <app_name> [--config JSON] [--operator NAME]
 *   bkstream flows retry <bk_biz_id> <app_name> <flow_type>
 *   bkstream flows breakers [--json]
 */
import type { FlowType } from '../../common/records.ts';
import { maskSecretKeys } from '../../common/secrets.ts';
import { FAILURE_STATUSES, FLOW_ACTIONS, type FlowStatusName } from '../../orchestrator/model.ts';
import { APIS, apiCall, expectStatus, printJson } from '../api.ts';
import { defineCommand, defineGroup, runCommand, type Command, type Print } from '../command.ts';

/** Every status a flow can be in (the orchestrator's FlowStatusName). */
export const FLOW_STATUSES = ['pending', 'running', 'waiting_dependency', 'success', 'stopped', 'deleted', ...FAILURE_STATUSES] as const satisfies readonly FlowStatusName[];
const FLOW_TYPES = ['tail_sampling', 'virtual_metric'] as const satisfies readonly FlowType[];
// Both lists are complete: a status or flow type added to the orchestrator fails the type check here.
const statusesComplete: [Exclude<FlowStatusName, (typeof FLOW_STATUSES)[number]>] extends [never] ? true : false = true;
const typesComplete: [Exclude<FlowType, (typeof FLOW_TYPES)[number]>] extends [never] ? true : false = true;
void statusesComplete;
void typesComplete;

const API = APIS.orchestrator;
const NOTES = 'The orchestrator HTTP API is at ORCHESTRATOR_URL (else http://127.0.0.1:ORCH_HTTP_PORT, default 8082); the admin token comes from\nBKSTREAM_ADMIN_TOKEN or BKSTREAM_ADMIN_TOKEN_FILE.';
const JSON_OPTION = { type: 'boolean', help: 'print the API\'s answer as JSON on stdout' } as const;

interface FlowRow {
  key: string;
  status: string;
  step: string;
  attempt: number;
  message: string;
  updated_at: string;
}

function table(rows: FlowRow[]): string[] {
  const header = ['FLOW', 'STATUS', 'STEP', 'ATTEMPT', 'UPDATED', 'MESSAGE'];
  const cells = rows.map((r) => [r.key, r.status, r.step, String(r.attempt), r.updated_at, r.message.slice(0, 80)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] as number))).join('  ').trimEnd());
}

/** `/api/v1/flows/<biz>/<app>/<type>` of the positionals `<bk_biz_id> <app_name> <flow_type>`. */
function keyPath(positionals: string[], usage: (m: string) => never): string {
  const [biz, app, type] = positionals as [string, string, string];
  if (!/^-?\d+$/.test(biz)) usage(`<bk_biz_id> must be an integer (got ${JSON.stringify(biz)})`);
  if (!(FLOW_TYPES as readonly string[]).includes(type)) usage(`<flow_type> must be one of ${FLOW_TYPES.join(', ')} (got ${JSON.stringify(type)})`);
  return `/api/v1/flows/${encodeURIComponent(biz)}/${encodeURIComponent(app)}/${encodeURIComponent(type)}`;
}

const list = defineCommand({
  name: 'flows list',
  summary: 'list flows and their status, step, attempt and last message',
  options: {
    status: { type: 'string', choices: FLOW_STATUSES, help: 'only flows in this status' },
    type: { type: 'string', choices: FLOW_TYPES, help: 'only flows of this type' },
    biz: { type: 'integer', value: 'bk_biz_id', help: 'only flows of this business' },
    app: { type: 'string', value: 'app_name', help: 'only flows of this application' },
    limit: { type: 'integer', value: 'n', default: 100, help: 'at most this many flows (up to 1000)' },
    offset: { type: 'integer', value: 'n', default: 0, help: 'skip this many first' },
    json: JSON_OPTION,
  },
  notes: NOTES,
}, async ({ values, usage }, env, print) => {
  if (values.limit < 1 || values.limit > 1000) usage(`--limit must be from 1 to 1000 (got ${values.limit})`);
  if (values.offset < 0) usage(`--offset must not be negative (got ${values.offset})`);
  const q = new URLSearchParams({ limit: String(values.limit), offset: String(values.offset) });
  if (values.status !== undefined) q.set('status', values.status);
  if (values.type !== undefined) q.set('flow_type', values.type);
  if (values.biz !== undefined) q.set('bk_biz_id', String(values.biz));
  if (values.app !== undefined) q.set('app_name', values.app);
  const r = expectStatus(API, await apiCall(API, env, 'GET', `/api/v1/flows?${q.toString()}`), env);
  if (values.json) printJson(print, r.body);
  else for (const line of table(r.body.flows as FlowRow[])) print(line);
  return 0;
});

const get = defineCommand({
  name: 'flows get',
  summary: 'one flow and its recent steps, as JSON (passwords masked)',
  args: ['<bk_biz_id>', '<app_name>', '<flow_type>'],
  options: { json: { type: 'boolean', help: 'accepted for symmetry: the answer is always JSON' } },
  notes: NOTES,
}, async ({ positionals, usage }, env, print) => {
  const r = expectStatus(API, await apiCall(API, env, 'GET', keyPath(positionals, usage)), env);
  // The API masks secrets already; masked here too, so no password reaches a terminal from any orchestrator version.
  printJson(print, maskSecretKeys(r.body));
  return 0;
});

const retry = defineCommand({
  name: 'flows retry',
  summary: 'retry a failed flow from the step it failed at',
  args: ['<bk_biz_id>', '<app_name>', '<flow_type>'],
  options: { json: JSON_OPTION },
  notes: NOTES,
}, async ({ positionals, values, usage }, env, print) => {
  const r = expectStatus(API, await apiCall(API, env, 'POST', `${keyPath(positionals, usage)}/retry`, {}), env);
  const flow = r.body.flow as FlowRow;
  if (values.json) printJson(print, maskSecretKeys(r.body));
  else print(`retrying ${flow.key} from step ${flow.step}`);
  return 0;
});

const submit = defineCommand({
  name: 'flows submit',
  summary: 'submit a command (create_or_update, stop or delete) for a flow',
  args: ['<action>', '<flow_type>', '<bk_biz_id>', '<app_name>'],
  options: {
    config: { type: 'string', value: 'json', help: 'the flow\'s config as a JSON object' },
    operator: { type: 'string', value: 'name', help: 'who asks (default $USER)' },
    json: JSON_OPTION,
  },
  notes: `<action> is one of ${FLOW_ACTIONS.join(', ')}; <flow_type> one of ${FLOW_TYPES.join(', ')}.\n${NOTES}`,
}, async ({ positionals, values, usage }, env, print) => {
  const [action, flowType, biz, app] = positionals as [string, string, string, string];
  if (!(FLOW_ACTIONS as readonly string[]).includes(action)) usage(`<action> must be one of ${FLOW_ACTIONS.join(', ')} (got ${JSON.stringify(action)})`);
  if (!(FLOW_TYPES as readonly string[]).includes(flowType)) usage(`<flow_type> must be one of ${FLOW_TYPES.join(', ')} (got ${JSON.stringify(flowType)})`);
  if (!/^-?\d+$/.test(biz)) usage(`<bk_biz_id> must be an integer (got ${JSON.stringify(biz)})`);
  let config: unknown = {};
  if (values.config !== undefined) {
    try {
      config = JSON.parse(values.config) as unknown;
    } catch {
      usage('--config must be JSON');
    }
  }
  const body = { action, flow_type: flowType, bk_biz_id: Number(biz), app_name: app, config, operator: values.operator ?? env.USER ?? '' };
  const r = expectStatus(API, await apiCall(API, env, 'POST', '/api/v1/flows', body), env, 202);
  if (values.json) printJson(print, r.body);
  else print(`${String(r.body.outcome)}: command ${String(r.body.command_id)}`);
  return 0;
});

const breakers = defineCommand({
  name: 'flows breakers',
  summary: 'the state of the circuit breaker of each BKData API family',
  options: { json: JSON_OPTION },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const r = expectStatus(API, await apiCall(API, env, 'GET', '/api/v1/breakers'), env);
  if (values.json) printJson(print, r.body);
  else for (const [family, state] of Object.entries(r.body)) print(`${family.padEnd(16)} ${String(state)}`);
  return 0;
});

export const command: Command = defineGroup('flows', 'list, inspect, submit and retry BKData flows (orchestrator HTTP API at ORCHESTRATOR_URL)', { list, get, submit, retry, breakers });

/** Runs `bkstream flows ...` as the CLI does, printing output and messages with `print`; returns the exit code. */
export function runFlows(args: string[], env: NodeJS.ProcessEnv, print: Print): Promise<number> {
  return runCommand('flows', command, args, env, { out: print, err: print });
}
