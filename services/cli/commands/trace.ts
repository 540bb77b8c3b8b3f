/**
 * `bkstream trace <trace_id> [--json]`: a trace from the storage API (STORAGE_URL, default
 * http://127.0.0.1:8083) as an indented waterfall — each span's offset from the trace start, its
 * duration, a bar on the trace's time line, and its service and name, children under their parent.
 * Also the HTTP helpers and duration parsing `traces` and `metrics` share.
 */
import { parseArgs } from 'node:util';
import type { Command } from '../command.ts';
import { authHeaders, credentialsHint } from '../credentials.ts';

const USAGE = 'bkstream trace <trace_id> [--json]';

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/** GETs a storage API path; throws a clear error when the service cannot be reached. */
export async function storageGet(env: NodeJS.ProcessEnv, path: string): Promise<Reply> {
  const base = (env.STORAGE_URL ?? 'http://127.0.0.1:8083').replace(/\/+$/, '');
  const headers = authHeaders(env);
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { headers });
  } catch (err) {
    throw new Error(`cannot reach the storage service at ${base} (set STORAGE_URL): ${(err as Error).message}`);
  }
  const text = await res.text();
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { error: text.slice(0, 300) };
  }
  return { status: res.status, body };
}

/** Prints the API's error; returns the exit code 1. */
export function failed(r: Reply, print: (line: string) => void, env: NodeJS.ProcessEnv = {}): number {
  print(`error (HTTP ${r.status}): ${typeof r.body.error === 'string' ? r.body.error : JSON.stringify(r.body)}${credentialsHint(r.status, env)}`);
  return 1;
}

const UNITS: Record<string, number> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600, d: 86_400 };

/** `250ms`, `1.5s`, `30m`, `2h`, `7d`, `500us` (a bare number is `unit`) → seconds. */
export function parseDuration(text: string, unit: keyof typeof UNITS, what: string): number {
  const m = /^-?(\d+(?:\.\d+)?)(us|ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new Error(`${what}: expected a duration such as 250ms, 30m, 2h or 7d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * (UNITS[m[2] ?? unit] as number);
}

/** µs as a short human duration. */
export function formatUs(us: number): string {
  if (us < 1_000) return `${us} µs`;
  if (us < 1_000_000) return `${(us / 1_000).toFixed(us < 10_000 ? 2 : 1)} ms`;
  return `${(us / 1_000_000).toFixed(2)} s`;
}

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

export async function runTrace(args: string[], env: NodeJS.ProcessEnv, print: (line: string) => void): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean', default: false } } });
  const [id] = positionals;
  if (!id || positionals.length > 1) {
    print(`usage: ${USAGE}`);
    return 2;
  }
  const r = await storageGet(env, `/api/v1/traces/${encodeURIComponent(id)}`);
  if (r.status !== 200) return failed(r, print, env);
  if (values.json) print(JSON.stringify(r.body, null, 2));
  else for (const line of renderWaterfall(r.body)) print(line);
  return 0;
}

export const command: Command = {
  summary: 'show one trace as a waterfall (storage API at STORAGE_URL)',
  usage: USAGE,
  run: (args, env) => runTrace(args, env, (line) => console.log(line)),
};
