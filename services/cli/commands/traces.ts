/**
 * `bkstream traces <app> [--biz N] [--service S] [--min-duration D] [--since D] [--limit N] [--json]`:
 * the newest traces of an application from the storage API (STORAGE_URL), filtered by entry service and
 * duration, `--since` back from now (default 1h).
 */
import { BkError } from '../../common/errors.ts';
import { APIS, apiGet, printJson } from '../api.ts';
import { defineCommand, runCommand, type Command, type Print } from '../command.ts';
import { durationOption, formatUs } from '../durations.ts';

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

/** `bkstream traces`, reading the clock with `now` (ms). */
export function tracesCommand(now: () => number = Date.now): Command {
  return defineCommand({
    name: 'traces',
    summary: 'list an application\'s newest traces (storage API at STORAGE_URL)',
    args: ['<app>'],
    options: {
      biz: { type: 'integer', value: 'bk_biz_id', help: 'the application\'s business (needed when the name exists in several)' },
      service: { type: 'string', help: 'only traces entering through this service' },
      'min-duration': { type: 'string', value: 'duration', help: 'only traces at least this long (250ms, 1.5s; a bare number is ms)' },
      since: { type: 'string', value: 'duration', default: '1h', help: 'how far back from now (30m, 2h, 7d)' },
      limit: { type: 'integer', value: 'n', default: 20, help: 'at most this many traces' },
      json: { type: 'boolean', help: 'print the API\'s answer as JSON on stdout' },
    },
    notes: 'The storage API is at STORAGE_URL (default http://127.0.0.1:8083); the admin token comes from BKSTREAM_ADMIN_TOKEN\nor BKSTREAM_ADMIN_TOKEN_FILE.',
  }, async ({ values, positionals, usage }, env, print) => {
    const app = positionals[0] as string;
    const sinceS = durationOption('since', values.since, 's', usage);
    const minUs = values['min-duration'] === undefined ? undefined : durationOption('min-duration', values['min-duration'], 'ms', usage) * 1e6;
    if (values.limit < 1) usage(`--limit must be at least 1 (got ${values.limit})`);
    let biz = values.biz;
    if (biz === undefined) {
      const found = (await apiGet(APIS.storage, env, `/api/v1/apps?app_name=${encodeURIComponent(app)}`)).body.items as { bk_biz_id: number }[];
      if (found.length === 0) throw new BkError('not_found', `no application named ${app} (register it with bkstream apps create)`, false);
      if (found.length > 1) usage(`${app} exists in businesses ${found.map((f) => f.bk_biz_id).join(', ')}: name one with --biz`);
      biz = (found[0] as { bk_biz_id: number }).bk_biz_id;
    }
    const filters: unknown[] = [];
    if (values.service) filters.push({ key: 'root_service', operator: 'equal', value: [values.service] });
    if (minUs !== undefined) filters.push({ key: 'trace_duration', operator: 'gte', value: [Math.round(minUs)] });
    const start = Math.floor(now() / 1000 - sinceS);
    const q = new URLSearchParams({ start_time: String(start), limit: String(values.limit), filters: JSON.stringify(filters) });
    const r = await apiGet(APIS.storage, env, `/api/v1/apps/${encodeURIComponent(String(biz))}/${encodeURIComponent(app)}/traces?${q.toString()}`);
    if (values.json) {
      printJson(print, r.body);
      return 0;
    }
    const rows = r.body.items as TraceRow[];
    if (rows.length === 0) print(`no traces of ${biz}/${app} since ${new Date(start * 1000).toISOString()}`);
    else for (const line of traceTable(rows)) print(line);
    return 0;
  });
}

export const command: Command = tracesCommand();

/** Runs `bkstream traces ...` as the CLI does (the clock at `now`), printing with `print`; returns the exit code. */
export function runTraces(args: string[], env: NodeJS.ProcessEnv, print: Print, now = Date.now()): Promise<number> {
  return runCommand('traces', tracesCommand(() => now), args, env, { out: print, err: print });
}
