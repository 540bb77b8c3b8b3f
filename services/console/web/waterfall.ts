/** A trace's waterfall (pure): bars on a shared time axis, in the depth-first order storage returns. */

export interface SpanRow {
  trace_id: string;
  span_id: string;
  parent_span_id: string;
  span_name: string;
  kind: number;
  /** µs */
  start_time: number;
  end_time: number;
  elapsed_time: number;
  status: { code: number; message: string };
  resource: Record<string, unknown>;
  attributes?: Record<string, unknown>;
  events?: { name: string; timestamp: number; attributes?: Record<string, unknown> }[];
  links?: { trace_id: string; span_id: string; attributes?: Record<string, unknown> }[];
  depth: number;
}

export interface Bar {
  span: SpanRow;
  /** Start, % of the trace's duration from its first start. */
  left: number;
  /** Width, % (at least a sliver, so instant spans stay visible). */
  width: number;
  /** Whether other spans follow as its children. */
  hasChildren: boolean;
}

export interface Waterfall {
  /** µs of the earliest start */
  start: number;
  /** µs from the earliest start to the latest end */
  total: number;
  bars: Bar[];
  services: string[];
}

export function serviceOf(s: SpanRow): string {
  const name = s.resource['service.name'];
  return typeof name === 'string' && name !== '' ? name : 'unknown';
}

export function waterfall(spans: readonly SpanRow[]): Waterfall {
  if (spans.length === 0) return { start: 0, total: 0, bars: [], services: [] };
  const start = Math.min(...spans.map((s) => Number(s.start_time)));
  const end = Math.max(...spans.map((s) => Number(s.end_time)));
  const total = Math.max(1, end - start);
  const bars = spans.map((span, i) => ({
    span,
    left: ((Number(span.start_time) - start) / total) * 100,
    width: Math.max(0.2, (Number(span.elapsed_time) / total) * 100),
    hasChildren: (spans[i + 1]?.depth ?? -1) > span.depth,
  }));
  return { start, total, bars, services: [...new Set(spans.map(serviceOf))] };
}

/** The bars left visible when the subtrees under `collapsed` span ids are folded. */
export function visibleBars(bars: readonly Bar[], collapsed: ReadonlySet<string>): Bar[] {
  const out: Bar[] = [];
  let foldDepth = Infinity;
  for (const b of bars) {
    if (b.span.depth > foldDepth) continue;
    foldDepth = collapsed.has(b.span.span_id) ? b.span.depth : Infinity;
    out.push(b);
  }
  return out;
}

/** About `target` round tick values from 0 to `total` (µs). */
export function ticks(total: number, target = 5): number[] {
  if (total <= 0) return [0];
  const raw = total / target;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let t = 0; t <= total + 1e-9; t += step) out.push(t);
  return out;
}

const PALETTE = ['#2f6fde', '#d9822b', '#2a9d8f', '#7a4fd1', '#c2410c', '#0e7490', '#a21caf', '#4d7c0f', '#b45309', '#1d4ed8'];

/** The `i`-th colour of the palette (lines of one chart). */
export function colourAt(i: number): string {
  return PALETTE[i % PALETTE.length] as string;
}

/** A stable colour per service name. */
export function serviceColour(service: string): string {
  let h = 0;
  for (let i = 0; i < service.length; i++) h = (h * 31 + service.charCodeAt(i)) >>> 0;
  return PALETTE[h % PALETTE.length] as string;
}
