/**
 * Topo nodes (README: How it works › Discoverers): per span, what it says about the nodes it touches —
 * - the remote-service node `{category}:{peer.service}` when `peer.service` is set;
 * - the matched rule's node (`service.name` for service rules, `{service}-{predicate}` for components);
 * - for a component span, the calling service too, categorised by re-matching without the component's
 *   category;
 * - on the service node, the first matching `system`, `platform` and `sdk` rule.
 * Contributions are merged commutatively (node-merge.ts), so the order spans arrive in does not matter.
 */
import type { ClassifiedSpan } from '../classify.ts';
import { jsonValue, keyString, nullableString, type DiscoverySpan } from '../fields.ts';
import type { JsonValue, NamedEntry, NodeExtra, Sink } from '../records.ts';
import { matchRule, predicateValue, topoKey, TOPO_COMPONENT, TOPO_REMOTE_SERVICE, type Rule } from '../rules.ts';

/** The vendor whose SDK entries also record `resource.target` (stored base64 by the reference). */
const GALILEO = new Set(['galileo', 'Z2FsaWxlbw==']);

/** A system or platform entry: the rule's instance-key fields with their raw typed values. */
function entry(rule: Rule, span: DiscoverySpan): NamedEntry {
  const extra: Record<string, JsonValue> = {};
  for (const f of rule.instanceKeys) extra[f.key] = jsonValue(f.get(span));
  return { name: rule.categoryId, extra_data: extra };
}

/** An SDK entry, named by the SDK name's text; its extra data holds the raw typed values. */
function sdkEntry(rule: Rule, span: DiscoverySpan): NamedEntry {
  const value = predicateValue(rule, span);
  const name = keyString(value);
  const extra: Record<string, JsonValue> = { [rule.predicate[0]?.key ?? '']: jsonValue(value) };
  if (GALILEO.has(name)) for (const f of rule.instanceKeys) extra[f.key] = jsonValue(f.get(span));
  return { name, extra_data: extra };
}

export function discoverNode(c: ClassifiedSpan, sink: Sink): void {
  const { span, rules, rule, service } = c;
  const biz = span.bk_biz_id;
  const app = span.app_name;
  const t = span.end_time;
  // null when the span has no SDK language, as on instances (and in the reference).
  const language = nullableString(span.resource['telemetry.sdk.language']);

  if (c.peerService !== undefined) {
    sink.emit('node', biz, app, {
      topo_key: `${rule.categoryId}:${c.peerService}`,
      // No SDK describes a remote service: its language stays the reference's default, ''.
      extra: { category: rule.categoryId, kind: TOPO_REMOTE_SERVICE, predicate_value: jsonValue(span.attributes['peer.service']), service_language: '' },
    }, t);
  }

  let key: string;
  let extra: NodeExtra;
  if (rule.topoKind === TOPO_COMPONENT) {
    sink.emit('node', biz, app, {
      topo_key: `${service}-${topoKey(rule, span)}`,
      extra: { category: rule.categoryId, kind: TOPO_COMPONENT, predicate_value: jsonValue(predicateValue(rule, span)), service_language: language },
    }, t);
    // The calling service, categorised by the best rule that is not this component's category. A second
    // component match (a span with both db.system and messaging.system) counts as `other` (quirk decision).
    const again = matchRule(span, rules.category, rules.other, (r) => r.categoryId !== rule.categoryId);
    const serviceRule = again.topoKind === TOPO_COMPONENT ? rules.other : again;
    key = topoKey(serviceRule, span, false);
    extra = { category: serviceRule.categoryId, kind: serviceRule.topoKind, predicate_value: null, service_language: language };
  } else {
    key = topoKey(rule, span);
    extra = { category: rule.categoryId, kind: rule.topoKind, predicate_value: jsonValue(predicateValue(rule, span)), service_language: language };
  }
  if (key === '') return; // the reference warns and skips nodes without a key

  const system = matchRule(span, rules.system);
  const platform = matchRule(span, rules.platform);
  const sdk = matchRule(span, rules.sdk);
  sink.emit('node', biz, app, {
    topo_key: key,
    extra,
    ...(system ? { system: [entry(system, span)] } : {}),
    ...(platform ? { platform: entry(platform, span) } : {}),
    ...(sdk ? { sdk: [sdkEntry(sdk, span)] } : {}),
  }, t);
}
