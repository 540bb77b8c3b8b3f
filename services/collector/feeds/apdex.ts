/**
 * `apdex_calculator/standard` on traces (bkmonitor-datalink `processor/apdexcalculator`), which runs before
 * the converter and the traces deriver: each span gets the attribute `apdex_type` from its duration in ns
 * against its rule's threshold `T` (ms): `satisfied` ≤ T < `tolerating` ≤ 4T < `frustrated`. So the trace
 * feed's spans carry it, and the derived metrics have it as a dimension.
 *
 * The rules are an application's as the reference registers it (bk-monitor apm_web `Application`
 * `set_init_apdex_config` and `APDEX_RULE_MAPPING`, pushed to bk-collector as the application's apdex
 * config, which replaces the platform's 800 ms for its token): by span kind and predicate key — HTTP
 * (`attributes.http.method`, server and client) 800 ms, DB (`attributes.db.system`, client) 800 ms,
 * messaging (`attributes.messaging.system` or `.destination`, producer and consumer; the "backend" value,
 * 800 ms, is the one the reference keeps of the two it writes for those keys) 800 ms, RPC
 * (`attributes.rpc.system`) 2 000 ms, any other span of kind 0–5 2 000 ms. A kind's predicate keys are tried
 * in descending order; one matches when the span's attribute has a non-empty string form; none → the
 * kind's rule without a predicate.
 */

/** The attribute the calculator writes (the rules' `destination`). */
export const APDEX_ATTRIBUTE = 'apdex_type';

export interface ApdexRule {
  /** `SPAN_KIND_*`. */
  kind: string;
  /** `attributes.<key>`, or `''` for the kind's fallback. */
  predicateKey: string;
  /** Threshold, ms. */
  apdexTMs: number;
}

const HTTP = 'attributes.http.method';
const DB = 'attributes.db.system';
const RPC = 'attributes.rpc.system';
const MESSAGING = ['attributes.messaging.system', 'attributes.messaging.destination'];
const KINDS = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'] as const;

/** An application's default apdex rules (apm_web `DefaultApdex`: default 2 000, http 800, db 800, rpc 2 000, backend 800). */
export const APPLICATION_APDEX_RULES: readonly ApdexRule[] = [
  ...['SPAN_KIND_CLIENT', 'SPAN_KIND_SERVER'].map((kind) => ({ kind, predicateKey: HTTP, apdexTMs: 800 })),
  ...KINDS.map((kind) => ({ kind, predicateKey: '', apdexTMs: 2000 })),
  { kind: 'SPAN_KIND_CLIENT', predicateKey: DB, apdexTMs: 800 },
  ...['SPAN_KIND_CLIENT', 'SPAN_KIND_SERVER', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'].map((kind) => ({ kind, predicateKey: RPC, apdexTMs: 2000 })),
  ...['SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'].flatMap((kind) => MESSAGING.map((predicateKey) => ({ kind, predicateKey, apdexTMs: 800 }))),
];

const ATTRIBUTES = 'attributes.';

export class ApdexCalculator {
  /** By kind: predicate keys, descending, and the threshold of each. */
  readonly #kinds = new Map<string, { keys: string[]; thresholds: Map<string, number> }>();

  constructor(rules: readonly ApdexRule[] = APPLICATION_APDEX_RULES) {
    for (const r of rules) {
      let k = this.#kinds.get(r.kind);
      if (!k) this.#kinds.set(r.kind, (k = { keys: [], thresholds: new Map() }));
      if (!k.thresholds.has(r.predicateKey)) k.keys.push(r.predicateKey);
      k.thresholds.set(r.predicateKey, r.apdexTMs); // a later rule for the same keys wins
      k.keys.sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
    }
  }

  /**
   * The `apdex_type` of a span of OTLP kind `kind` lasting `durationNs`; `attribute` gives a span
   * attribute's string form (undefined when absent). Undefined when no rule applies (kinds outside 0–5).
   */
  apdexType(kind: number, durationNs: number, attribute: (key: string) => string | undefined): string | undefined {
    const rules = this.#kinds.get(KINDS[kind] ?? '');
    if (!rules) return undefined;
    let found = '';
    for (const pk of rules.keys) {
      if (!pk.startsWith(ATTRIBUTES)) continue;
      const v = attribute(pk.slice(ATTRIBUTES.length));
      if (v !== undefined && v !== '') {
        found = pk;
        break;
      }
    }
    const t = rules.thresholds.get(found);
    if (t === undefined) return undefined;
    const threshold = t * 1e6; // ms → ns
    if (durationNs <= threshold) return 'satisfied';
    if (durationNs <= 4 * threshold) return 'tolerating';
    return 'frustrated';
  }
}
