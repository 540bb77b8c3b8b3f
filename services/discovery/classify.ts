/**
 * What every discoverer needs to know about a span, computed once per span: its rules, service, matched
 * category rule (with the `other` fallback) and `peer.service`.
 */
import { SpanKind } from '../common/records.ts';
import { keyString, truthy, type DiscoverySpan } from './fields.ts';
import { matchRule, type Rule, type RuleSet } from './rules.ts';

export interface ClassifiedSpan {
  readonly span: DiscoverySpan;
  readonly rules: RuleSet;
  /** `resource["service.name"]` as text (`''` when absent). */
  readonly service: string;
  /** The first category rule whose predicate holds, else the `other` rule. */
  readonly rule: Rule;
  /** `attributes["peer.service"]` as text when it is truthy. */
  readonly peerService: string | undefined;
  /** Kind SERVER, CLIENT, PRODUCER or CONSUMER: the spans the reference's "filtered" discoverers see. */
  readonly filtered: boolean;
}

export function isFilteredKind(kind: number): boolean {
  return kind >= SpanKind.SERVER && kind <= SpanKind.CONSUMER;
}

export function classify(span: DiscoverySpan, rules: RuleSet): ClassifiedSpan {
  const peer = span.attributes['peer.service'];
  return {
    span,
    rules,
    service: keyString(span.resource['service.name']),
    rule: matchRule(span, rules.category, rules.other),
    peerService: truthy(peer) ? keyString(peer) : undefined,
    filtered: isFilteredKind(span.kind),
  };
}
