/**
 * The platform's `field_normalizer/otel_mapping` (bkmonitor-datalink `processor/fieldnormalizer`; its
 * fields are the rows bk-monitor seeds in `FieldNormalizerConfig`, `apm` migration 0051, pushed while
 * `APM_FIELD_NORMALIZER_ENABLED`, on by default): the first processor of the reference's traces pipeline
 * that changes span attributes, so the feeds' spans, their `apdex_type` and their derived metrics see its
 * result. It fills the older semantic-convention keys the reference reads (`http.method`, `net.peer.ip`,
 * `db.name`, …) from the newer ones (`http.request.method`, `server.address`, `db.namespace`, …):
 *
 * - per span, twice: with the span's kind, then with the kind `""`; a kind without fields of its own uses
 *   the `""` fields' predicate keys;
 * - predicate keys in descending order, **each** one whose attribute is a non-empty **string** applies its
 *   rules (the kind's own rules for that key, or else the `""` kind's keys — which then find no function
 *   for the kind, as in the reference);
 * - `or`: when the key is absent, the value of the first present source key is copied (any type);
 *   `concat`: when the key is absent and both sources are present, `"{a}:{b}"` of their string forms.
 */
import type { AnyValue, KeyValue, OtlpSpan } from '../../common/otlp/index.ts';
import { valueString } from './reference-span.ts';

interface Rule {
  key: string;
  op: 'or' | 'concat';
  values: readonly string[];
}

interface Field {
  kind: string;
  /** Attribute keys (without `attributes.`). */
  predicateKeys: readonly string[];
  rules: readonly Rule[];
}

const or = (key: string, ...values: string[]): Rule => ({ key, op: 'or', values });
const concat = (key: string, a: string, b: string): Rule => ({ key, op: 'concat', values: [a, b] });
const HTTP = ['http.method', 'http.request.method'];
const DB = ['db.system', 'db.system.name'];
const SOCK = [or('net.sock.peer.addr', 'network.peer.address'), or('net.sock.peer.port', 'network.peer.port')];
const CLIENT_NET = [
  concat('net.peer.name', 'server.address', 'server.port'),
  or('net.peer.ip', 'server.address', 'network.peer.address'),
  or('net.peer.port', 'server.port', 'network.peer.port'),
  concat('net.host.name', 'client.address', 'client.port'),
  or('net.host.ip', 'client.address'),
  or('net.host.port', 'client.port'),
];

/** The seeded fields. */
export const PLATFORM_FIELDS: readonly Field[] = [
  {
    kind: '',
    predicateKeys: HTTP,
    rules: [
      or('http.method', 'http.request.method'), or('http.status_code', 'http.response.status_code'), or('http.url', 'url.full'),
      or('http.scheme', 'url.scheme'), or('http.client_ip', 'client.address'), or('http.target', 'url.path'), ...SOCK,
      or('net.sock.host.addr', 'network.local.address'), or('net.sock.host.port', 'network.local.port'),
    ],
  },
  {
    kind: 'SPAN_KIND_SERVER',
    predicateKeys: HTTP,
    rules: [
      concat('net.peer.name', 'client.address', 'client.port'), or('net.peer.ip', 'client.address'), or('net.peer.port', 'client.port'),
      concat('net.host.name', 'server.address', 'server.port'), or('net.host.ip', 'server.address'), or('net.host.port', 'server.port'),
    ],
  },
  { kind: 'SPAN_KIND_CLIENT', predicateKeys: HTTP, rules: CLIENT_NET },
  { kind: 'SPAN_KIND_CLIENT', predicateKeys: DB, rules: CLIENT_NET },
  { kind: '', predicateKeys: DB, rules: [...SOCK, or('db.name', 'db.namespace'), or('db.statement', 'db.query.text'), or('db.sql.table', 'db.collection.name')] },
  { kind: '', predicateKeys: ['messaging.system'], rules: [...SOCK, or('topic', 'messaging.destination.name')] },
];

const KIND_NAMES = ['SPAN_KIND_UNSPECIFIED', 'SPAN_KIND_INTERNAL', 'SPAN_KIND_SERVER', 'SPAN_KIND_CLIENT', 'SPAN_KIND_PRODUCER', 'SPAN_KIND_CONSUMER'];

function first(kvs: readonly KeyValue[], key: string): KeyValue | undefined {
  for (const kv of kvs) if (kv.key === key) return kv;
  return undefined;
}

export class FieldNormalizer {
  /** kind → predicate keys, descending. */
  readonly #predicateKeys = new Map<string, string[]>();
  /** `kind/pk` → rule keys, in order. */
  readonly #keys = new Map<string, string[]>();
  /** `pk|kind|key` → rule (a later one wins). */
  readonly #rules = new Map<string, Rule>();

  constructor(fields: readonly Field[] = PLATFORM_FIELDS) {
    for (const f of fields) {
      const pks = this.#predicateKeys.get(f.kind) ?? [];
      this.#predicateKeys.set(f.kind, pks);
      for (const pk of f.predicateKeys) {
        if (!pks.includes(pk)) pks.push(pk);
        const keys = this.#keys.get(`${f.kind}/${pk}`) ?? [];
        this.#keys.set(`${f.kind}/${pk}`, keys);
        for (const r of f.rules) {
          if (!keys.includes(r.key)) keys.push(r.key);
          this.#rules.set(`${pk}|${f.kind}|${r.key}`, r);
        }
      }
      pks.sort((x, y) => (x > y ? -1 : x < y ? 1 : 0));
    }
  }

  /** The span with the attributes the normalizer adds (the same object when it adds none). */
  normalize(span: OtlpSpan): OtlpSpan {
    const attributes = [...(span.attributes ?? [])];
    const before = attributes.length;
    this.#pass(attributes, KIND_NAMES[span.kind ?? 0] ?? String(span.kind));
    this.#pass(attributes, '');
    return attributes.length === before ? span : { ...span, attributes };
  }

  #pass(attrs: KeyValue[], kind: string): void {
    const own = this.#predicateKeys.get(kind);
    const pks = own && own.length > 0 ? own : (this.#predicateKeys.get('') ?? []);
    for (const pk of pks) {
      const v = first(attrs, pk)?.value;
      if (!v || v.value !== 'stringValue' || !v.stringValue) continue;
      const keys = this.#keys.get(`${kind}/${pk}`);
      for (const key of keys && keys.length > 0 ? keys : (this.#keys.get(`/${pk}`) ?? [])) {
        const rule = this.#rules.get(`${pk}|${kind}|${key}`);
        if (rule) apply(attrs, rule);
      }
    }
  }
}

function apply(attrs: KeyValue[], rule: Rule): void {
  if (first(attrs, rule.key)) return;
  if (rule.op === 'or') {
    for (const source of rule.values) {
      const kv = first(attrs, source);
      if (kv) {
        attrs.push({ key: rule.key, value: kv.value ?? null });
        return;
      }
    }
    return;
  }
  const [a, b] = rule.values.map((k) => first(attrs, k));
  if (!a || !b) return;
  const value: AnyValue = { value: 'stringValue', stringValue: `${valueString(a.value)}:${valueString(b.value)}` };
  attrs.push({ key: rule.key, value });
}
