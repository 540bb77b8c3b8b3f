/**
 * `bkstream trace <trace_id> [--json]`: a trace from the storage API (STORAGE_URL, default
 * http://127.0.0.1:8083) as an indented waterfall — each span's offset from the trace start, its
 * duration, a bar on the trace's time line, and its service and name, children under their parent.
 */
import { APIS, apiGet, printJson } from '../api.ts';
import { defineCommand, runCommand, type Command, type Print } from '../command.ts';
import { formatUs } from '../durations.ts';

interface WaterfallSpan {
  span_id: string;
  span_name: string;
  start_time: number;
  elapsed_time: number;
  depth: number;
  kind: number;
  status: { code: number };
  resource: Record<string, unknown>;
}

const text = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

const KINDS = ['', 'internal', 'server', 'client', 'producer', 'consumer'];

/** The trace detail as text lines. */
export function renderWaterfall(detail: Record<string, unknown>, width = 30): string[] {
  const spans = detail.spans as WaterfallSpan[];
  const summary = (detail.summary ?? {}) as Record<string, unknown>;
  const t0 = Math.min(...spans.map((s) => s.start_time));
  const t1 = Math.max(...spans.map((s) => s.start_time + s.elapsed_time));
  const total = Math.max(1, t1 - t0);
  const services = new Set(spans.map((s) => text(s.resource['service.name'])));
  const errors = spans.filter((s) => s.status.code === 2).length;
  const lines = [
    `trace ${String(detail.trace_id)}  app ${String(detail.bk_biz_id)}/${String(detail.app_name)}  ${spans.length} spans, ${services.size} services, ${formatUs(total)}` +
      `${errors ? `, ${errors} error${errors > 1 ? 's' : ''}` : ''}  root ${text(summary.root_service ?? summary.root_span_service)}`,
  ];
  for (const s of spans) {
    const from = Math.floor(((s.start_time - t0) / total) * width);
    const len = Math.max(1, Math.round((s.elapsed_time / total) * width));
    const bar = `${' '.repeat(from)}${'█'.repeat(Math.min(len, width - from))}`.padEnd(width);
    const kind = KINDS[s.kind] ? ` [${KINDS[s.kind]}]` : '';
    lines.push(
      `${formatUs(s.start_time - t0).padStart(10)} ${formatUs(s.elapsed_time).padStart(10)} |${bar}| ${'  '.repeat(s.depth)}${text(s.resource['service.name']) || '?'}: ${s.span_name}${kind}${s.status.code === 2 ? '  ✗ error' : ''}`,
    );
  }
  if (detail.truncated) lines.push(`(more spans than STORAGE_MAX_TRACE_SPANS: the rest are not shown)`);
  return lines;
}

export const command: Command = defineCommand({
  name: 'trace',
  summary: 'show one trace as a waterfall (storage API at STORAGE_URL)',
  args: ['<trace_id>'],
  options: { json: { type: 'boolean', help: 'print the trace detail as JSON on stdout' } },
  notes: 'The storage API is at STORAGE_URL (default http://127.0.0.1:8083); the admin token comes from BKSTREAM_ADMIN_TOKEN\nor BKSTREAM_ADMIN_TOKEN_FILE.',
}, async ({ values, positionals }, env, print) => {
  const r = await apiGet(APIS.storage, env, `/api/v1/traces/${encodeURIComponent(positionals[0] as string)}`);
  if (values.json) printJson(print, r.body);
  else for (const line of renderWaterfall(r.body)) print(line);
  return 0;
});

/** Runs `bkstream trace ...` as the CLI does, printing output and messages with `print`; returns the exit code. */
export function runTrace(args: string[], env: NodeJS.ProcessEnv, print: Print): Promise<number> {
  return runCommand('trace', command, args, env, { out: print, err: print });
}
