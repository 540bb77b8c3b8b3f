/**
 * How the orchestrator compares what it wants with what BKData holds: structural equality (node
 * configs), and the reference's order-insensitive comparison of stored configs (`_is_diff`).
 */

/** Structural equality: arrays in order, objects by key (key order ignored), like Python's `==`. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as unknown[];
    return a.length === bb.length && a.every((v, i) => deepEqual(v, bb[i]));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

/** A canonical form ignoring object key order and list order (the reference compares MD5s of such a form). */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/** Reference `_is_diff`: order-insensitive deep comparison, optionally ignoring some top-level keys. */
export function configDiffers(stored: Record<string, unknown> | null, params: Record<string, unknown>, ignore: readonly string[] = []): boolean {
  if (!stored) return true;
  const strip = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([k]) => !ignore.includes(k)));
  return !deepEqual(canonical(strip(stored)), canonical(strip(params)));
}
