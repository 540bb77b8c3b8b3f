/**
 * `bkstream flows`: the orchestrator's flows through its HTTP API (ORCHESTRATOR_URL, default
 * http://127.0.0.1:8082), with the admin token of the environment (credentials.ts). Passwords in flow
 * configs are never printed (masked).
 *
 *   bkstream flows list [--status S] [--type tail_sampling|virtual_metric] [--biz N] [--app NAME]
 *   bkstream flows get <bk_biz_id> <app_name> <flow_type>
 *   bkstream flows submit <create_or_update|stop|delete> <flow_type> <bk_biz_id> <app_name> [--config JSON] [--operator NAME]
 *   bkstream flows retry <bk_biz_id> <app_name> <flow_type>
 *   bkstream flows breakers
 */
import { maskSecretKeys } from '../../common/secrets.ts';
import type { Command } from '../command.ts';
import { authHeaders, credentialsHint } from '../credentials.ts';

const USAGE = `bkstream flows list [--status S] [--type T] [--biz N] [--app NAME]
             bkstream flows get|retry <bk_biz_id> <app_name> <flow_type>
             bkstream flows submit <create_or_update|stop|delete> <flow_type> <bk_biz_id> <app_name> [--config JSON] [--operator NAME]
             bkstream flows breakers`;

interface FlowRow {
  key: string;
  status: string;
  step: string;
  attempt: number;
  message: string;
  updated_at: string;
}

/** `--name value` pairs and the remaining positional arguments. */
function parseArgs(args: string[]): { flags: Record<string, string>; positional: string[] } {
  const flags: Record<string, string> = {};
  const positional: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a.startsWith('--')) {
      const value = args[i + 1];
      if (value === undefined) throw new Error(`${a} needs a value`);
      flags[a.slice(2)] = value;
      i++;
    } else {
      positional.push(a);
    }
  }
  return { flags, positional };
}

function table(rows: FlowRow[]): string[] {
  const header = ['FLOW', 'STATUS', 'STEP', 'ATTEMPT', 'UPDATED', 'MESSAGE'];
  const cells = rows.map((r) => [r.key, r.status, r.step, String(r.attempt), r.updated_at, r.message.slice(0, 80)]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] as number))).join('  ').trimEnd());
}

/** Runs `bkstream flows ...`, printing with `print`; returns the exit code. */
export async function runFlows(args: string[], env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  const base = (env.ORCHESTRATOR_URL ?? 'http://127.0.0.1:8082').replace(/\/+$/, '');
  const [sub, ...rest] = args;
  const { flags, positional } = parseArgs(rest);
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    // Read before anything is sent: a token file other users may read stops the command (ConfigError).
    const headers = { 'content-type': 'application/json', ...authHeaders(env) };
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    } catch (err) {
      throw new Error(`cannot reach the orchestrator at ${base} (set ORCHESTRATOR_URL): ${(err as Error).message}`);
    }
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const fail = (r: { status: number; body: Record<string, unknown> }): number => {
    print(`error (HTTP ${r.status}): ${typeof r.body.error === 'string' ? r.body.error : JSON.stringify(maskSecretKeys(r.body))}${credentialsHint(r.status, env)}`);
    return 1;
  };
  const keyPath = (): string => {
    const [biz, app, type] = positional;
    if (!biz || !app || !type) throw new Error(`usage: ${USAGE}`);
    return `/api/v1/flows/${encodeURIComponent(biz)}/${encodeURIComponent(app)}/${encodeURIComponent(type)}`;
  };
  switch (sub) {
    case 'list': {
      const q = new URLSearchParams();
      for (const [flag, param] of [['status', 'status'], ['type', 'flow_type'], ['biz', 'bk_biz_id'], ['app', 'app_name']] as const) {
        if (flags[flag] !== undefined) q.set(param, flags[flag]);
      }
      const r = await call('GET', `/api/v1/flows${q.size > 0 ? `?${q.toString()}` : ''}`);
      if (r.status !== 200) return fail(r);
      for (const line of table(r.body.flows as FlowRow[])) print(line);
      return 0;
    }
    case 'get': {
      const r = await call('GET', keyPath());
      if (r.status !== 200) return fail(r);
      // The API masks secrets already; masked here too, so no password reaches a terminal from any orchestrator version.
      print(JSON.stringify(maskSecretKeys(r.body), null, 2));
      return 0;
    }
    case 'retry': {
      const r = await call('POST', `${keyPath()}/retry`, {});
      if (r.status !== 200) return fail(r);
      print(`retrying ${(r.body.flow as FlowRow).key} from step ${(r.body.flow as FlowRow).step}`);
      return 0;
    }
    case 'submit': {
      const [action, flowType, biz, app] = positional;
      if (!action || !flowType || !biz || !app) throw new Error(`usage: ${USAGE}`);
      let config: unknown = {};
      if (flags.config !== undefined) {
        try {
          config = JSON.parse(flags.config) as unknown;
        } catch {
          throw new Error('--config must be JSON');
        }
      }
      const r = await call('POST', '/api/v1/flows', { action, flow_type: flowType, bk_biz_id: Number(biz), app_name: app, config, operator: flags.operator ?? env.USER ?? '' });
      if (r.status !== 202) return fail(r);
      print(`${String(r.body.outcome)}: command ${String(r.body.command_id)}`);
      return 0;
    }
    case 'breakers': {
      const r = await call('GET', '/api/v1/breakers');
      if (r.status !== 200) return fail(r);
      for (const [family, state] of Object.entries(r.body)) print(`${family.padEnd(16)} ${String(state)}`);
      return 0;
    }
    default:
      print(`usage: ${USAGE}`);
      return 2;
  }
}

export const command: Command = {
  summary: 'list, inspect, submit and retry BKData flows (orchestrator HTTP API at ORCHESTRATOR_URL)',
  usage: USAGE,
  run: (args, env) => runFlows(args, env, (line) => console.log(line)),
};
