/**
 * Batch-mode pairing (the reference's round): each span whose parent is in the same list meets it.
 * The streaming core pairs across batches in the partition window instead (window.ts).
 */
import type { ClassifiedSpan } from '../classify.ts';

export function pairWithin<P, C>(
  spans: readonly ClassifiedSpan[],
  parentOf: (c: ClassifiedSpan) => P | undefined,
  childOf: (c: ClassifiedSpan) => C | undefined,
  meet: (parent: P, child: C, span: ClassifiedSpan, timeUs: number) => void,
): void {
  const parents = new Map<string, { parent: P; timeUs: number }>();
  for (const c of spans) {
    const p = parentOf(c);
    if (p !== undefined) parents.set(c.span.span_id, { parent: p, timeUs: c.span.end_time });
  }
  for (const c of spans) {
    const child = childOf(c);
    const p = child === undefined ? undefined : parents.get(c.span.parent_span_id);
    if (child !== undefined && p) meet(p.parent, child, c, Math.max(p.timeUs, c.span.end_time));
  }
}
