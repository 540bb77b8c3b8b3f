/**
 * `bkstream metrics <name> [--host H] [--match label=value]… [--since D] [--step D] [--agg A] [--json]`:
 * an agent metric's series over the last `--since` (default 1h) from the storage API (STORAGE_URL);
 * `--host` matches the agent's IP (`bk_target_ip`) or, when not an IP, its hostname.
 */
import { isIP } from 'node:net';
import { METRIC_AGGS } from '../../storage/metric-query.ts';
import { APIS, apiGet, printJson } from '../api.ts';
import { defineCommand, runCommand, type Command, type Print } from '../command.ts';
import { durationOption } from '../durations.ts';

interface Series {
  labels: Record<string, string>;
  points: [number, number][];
}

export function renderSeries(series: Series[]): string[] {
  const lines: string[] = [];
  for (const s of series) {
    lines.push(`{${Object.entries(s.labels).map(([k, v]) => `${k}="${v}"`).join(', ')}}`);
    for (const [t, v] of s.points) lines.push(`  ${new Date(t).toISOString().replace('T', ' ').slice(0, 19)}  ${Number.isInteger(v) ? v : v.toFixed(3)}`);
  }
  return lines;
}

/** `bkstream metrics`, reading the clock with `now` (ms). */
export function metricsCommand(now: () => number = Date.now): Command {
  return defineCommand({
    name: 'metrics',
    summary: 'show an agent metric\'s series (storage API at STORAGE_URL)',
    args: ['<name>'],
    options: {
      host: { type: 'string', help: 'the agent\'s IP (bk_target_ip) or, when not an IP, its hostname' },
      match: { type: 'string', multiple: true, value: 'label=value', help: 'a label matcher (=, !=, =~, !~)' },
      since: { type: 'string', value: 'duration', default: '1h', help: 'how far back from now' },
      step: { type: 'string', value: 'duration', default: '1m', help: 'one point per step' },
      agg: { type: 'string', choices: METRIC_AGGS, default: 'avg', help: 'how samples within a step combine' },
      json: { type: 'boolean', help: 'print the API\'s answer as JSON on stdout' },
    },
    notes: 'The storage API is at STORAGE_URL (default http://127.0.0.1:8083); the admin token comes from BKSTREAM_ADMIN_TOKEN\nor BKSTREAM_ADMIN_TOKEN_FILE.',
  }, async ({ values, positionals, usage }, env, print) => {
    const name = positionals[0] as string;
    const end = Math.floor(now() / 1000);
    const q = new URLSearchParams({
      name,
      start: String(Math.floor(end - durationOption('since', values.since, 's', usage))),
      end: String(end),
      step: String(Math.max(1, Math.round(durationOption('step', values.step, 's', usage)))),
      agg: values.agg,
    });
    if (values.host) q.append('match', `${isIP(values.host) ? 'bk_target_ip' : 'hostname'}=${values.host}`);
    for (const m of values.match) q.append('match', m);
    const r = await apiGet(APIS.storage, env, `/api/v1/metrics/query?${q.toString()}`);
    if (values.json) {
      printJson(print, r.body);
      return 0;
    }
    const series = r.body.series as Series[];
    if (series.length === 0) print(`no samples of ${name} in the last ${values.since}`);
    else for (const line of renderSeries(series)) print(line);
    return 0;
  });
}

export const command: Command = metricsCommand();

/** Runs `bkstream metrics ...` as the CLI does (the clock at `now`), printing with `print`; returns the exit code. */
export function runMetrics(args: string[], env: NodeJS.ProcessEnv, print: Print, now = Date.now()): Promise<number> {
  return runCommand('metrics', metricsCommand(() => now), args, env, { out: print, err: print });
}
