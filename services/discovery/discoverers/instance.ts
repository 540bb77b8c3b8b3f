/**
 * Instances (README: How it works › Discoverers): a service instance per usable `resource["bk.instance.id"]` and, on the same
 * spans, a component instance when a component rule (db, messaging) matches. Spans without a usable
 * instance id produce neither.
 */
import type { ClassifiedSpan } from '../classify.ts';
import { keyString, nullableString } from '../fields.ts';
import type { Sink } from '../records.ts';
import { predicateValue, topoKey, TOPO_COMPONENT, TOPO_SERVICE } from '../rules.ts';

/** An instance id is usable when truthy and at least one `:`-separated part is non-empty. */
export function usableInstanceId(raw: unknown): string | undefined {
  if (raw === null || raw === undefined) return undefined;
  const id = keyString(raw);
  for (let i = 0; i < id.length; i++) if (id.charCodeAt(i) !== 0x3a) return id; // a character that is not ':'
  return undefined;
}

export function discoverInstance(c: ClassifiedSpan, sink: Sink): void {
  const { span } = c;
  const instanceId = usableInstanceId(span.resource['bk.instance.id']);
  if (instanceId === undefined) return;
  const sdkName = nullableString(span.resource['telemetry.sdk.name']);
  const sdkVersion = nullableString(span.resource['telemetry.sdk.version']);
  const sdkLanguage = nullableString(span.resource['telemetry.sdk.language']);
  sink.emit('instance', span.bk_biz_id, span.app_name, {
    topo_node_key: c.service,
    instance_id: instanceId,
    instance_topo_kind: TOPO_SERVICE,
    component_instance_category: null,
    component_instance_predicate_value: null,
    sdk_name: sdkName,
    sdk_version: sdkVersion,
    sdk_language: sdkLanguage,
  }, span.end_time);

  const rule = c.component;
  if (!rule) return;
  sink.emit('instance', span.bk_biz_id, span.app_name, {
    topo_node_key: `${c.service}-${topoKey(rule, span)}`,
    instance_id: topoKey(rule, span, false),
    instance_topo_kind: TOPO_COMPONENT,
    component_instance_category: rule.categoryId,
    component_instance_predicate_value: nullableString(predicateValue(rule, span)),
    // The calling service's SDK, as the reference records it.
    sdk_name: sdkName,
    sdk_version: sdkVersion,
    sdk_language: sdkLanguage,
  }, span.end_time);
}
