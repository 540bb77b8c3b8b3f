/**
 * `bkstream traces <app> [--biz N] [--service S] [--min-duration D] [--since D] [--limit N] [--json]`:
 * the newest traces of an application from the storage API (STORAGE_URL), filtered by entry service and
 * duration, `--since` back from now (default 1h).
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { failed, formatUs, parseDuration, storageGet } from './trace.ts';

const USAGE = 'bkstream traces <app> [--biz N] [--service S] [--min-duration 250ms] [--since 1h] [--limit N] [--json]';

interface TraceRow {
  trace_id: string;
  root_service: string | null;
  root_span_service: string;
  root_service_span_name: string | null;
  root_span_name: string;
  min_start_time: number;
  trace_duration: number;
  span_count: number;
  service_count: number;
  error: boolean;
}

export function traceTable(rows: TraceRow[]): string[] {
  const header = ['TRACE ID', 'START', 'DURATION', 'SPANS', 'SERVICES', 'ERROR', 'ENTRY'];
  const cells = rows.map((r) => [
    r.trace_id,
    new Date(r.min_start_time / 1000).toISOString().replace('T', ' ').slice(0, 23),
    formatUs(r.trace_duration),
    String(r.span_count),
    String(r.service_count),
    r.error ? 'yes' : '',
    `${r.root_service ?? r.root_span_service}: ${r.root_service_span_name ?? r.root_span_name}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)));
  return [header, ...cells].map((c) => c.map((v, i) => (i === c.length - 1 ? v : v.padEnd(widths[i] as number))).join('  ').trimEnd());
}

export async function runTraces(args: string[], env: NodeJS.ProcessEnv, print: (line: string) => void, now = Date.now()): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      biz: { type: 'string' },
      service: { type: 'string' },
      'min-duration': { type: 'string' },
      since: { type: 'string', default: '1h' },
      limit: { type: 'string', default: '20' },
      json: { type: 'boolean', default: false },
    },
  });
  const [app] = positionals;
  if (!app || positionals.length > 1) {
    print(`usage: ${USAGE}`);
    return 2;
  }
  let biz = values.biz;
  if (biz === undefined) {
    const r = await storageGet(env, `/api/v1/apps?app_name=${encodeURIComponent(app)}`);
    if (r.status !== 200) return failed(r, print, env);
    const found = r.body.items as { bk_biz_id: number }[];
    if (found.length === 0) {
      print(`error: no application named ${app} (register it with bkstream apps create)`);
      return 1;
    }
    if (found.length > 1) {
      print(`error: ${app} exists in businesses ${found.map((f) => f.bk_biz_id).join(', ')}: name one with --biz`);
      return 2;
    }
    biz = String(found[0]?.bk_biz_id);
  }
  const filters: unknown[] = [];
  if (values.service) filters.push({ key: 'root_service', operator: 'equal', value: [values.service] });
  if (values['min-duration']) filters.push({ key: 'trace_duration', operator: 'gte', value: [Math.round(parseDuration(values['min-duration'], 'ms', '--min-duration') * 1e6)] });
  const start = Math.floor(now / 1000 - parseDuration(values.since, 's', '--since'));
  const q = new URLSearchParams({ start_time: String(start), limit: values.limit, filters: JSON.stringify(filters) });
  const r = await storageGet(env, `/api/v1/apps/${encodeURIComponent(biz)}/${encodeURIComponent(app)}/traces?${q.toString()}`);
  if (r.status !== 200) return failed(r, print, env);
  if (values.json) {
    print(JSON.stringify(r.body, null, 2));
    return 0;
  }
  const rows = r.body.items as TraceRow[];
  if (rows.length === 0) print(`no traces of ${biz}/${app} since ${new Date(start * 1000).toISOString()}`);
  else for (const line of traceTable(rows)) print(line);
  return 0;
}

export const command: Command = {
  summary: 'list an application\'s newest traces (storage API at STORAGE_URL)',
  usage: USAGE,
  run: (args, env) => runTraces(args, env, (line) => console.log(line)),
};
