/**
 * `bkstream metrics <name> [--host H] [--match label=value]… [--since D] [--step D] [--agg A] [--json]`:
 * an agent metric's series over the last `--since` (default 1h) from the storage API (STORAGE_URL);
 * `--host` matches the agent's IP (`bk_target_ip`) or, when not an IP, its hostname.
 */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { failed, parseDuration, storageGet } from './trace.ts';

const USAGE = 'bkstream metrics <name> [--host H] [--match label=value] [--since 1h] [--step 1m] [--agg avg|min|max|sum|count|last] [--json]';

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

export async function runMetrics(args: string[], env: NodeJS.ProcessEnv, print: (line: string) => void, now = Date.now()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      host: { type: 'string' },
      match: { type: 'string', multiple: true },
      since: { type: 'string', default: '1h' },
      step: { type: 'string', default: '1m' },
      agg: { type: 'string', default: 'avg' },
      json: { type: 'boolean', default: false },
    },
  });
  const [name] = positionals;
  if (!name || positionals.length > 1) {
    print(`usage: ${USAGE}`);
    return 2;
  }
  const end = Math.floor(now / 1000);
  const q = new URLSearchParams({
    name,
    start: String(Math.floor(end - parseDuration(values.since, 's', '--since'))),
    end: String(end),
    step: String(Math.max(1, Math.round(parseDuration(values.step, 's', '--step')))),
    agg: values.agg,
  });
  if (values.host) q.append('match', `${isIP(values.host) ? 'bk_target_ip' : 'hostname'}=${values.host}`);
  for (const m of values.match ?? []) q.append('match', m);
  const r = await storageGet(env, `/api/v1/metrics/query?${q.toString()}`);
  if (r.status !== 200) return failed(r, print, env);
  if (values.json) {
    print(JSON.stringify(r.body, null, 2));
    return 0;
  }
  const series = r.body.series as Series[];
  if (series.length === 0) print(`no samples of ${name} in the last ${values.since}`);
  else for (const line of renderSeries(series)) print(line);
  return 0;
}

export const command: Command = {
  summary: 'show an agent metric\'s series (storage API at STORAGE_URL)',
  usage: USAGE,
  run: (args, env) => runMetrics(args, env, (line) => console.log(line)),
};
