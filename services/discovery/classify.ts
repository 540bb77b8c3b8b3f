/**
 * What every discoverer needs to know about a span, computed once per span: its rules, service, matched
 * category rule (with the `other` fallback), matched component rule and `peer.service`.
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
  /**
   * The first component rule (db, messaging) whose predicate holds, if any: the component the span
   * calls (instances, single-span relations, a producer's middleware). It may differ from {@link rule}
   * (an app's http rule can win the category while the span also calls a database).
   */
  readonly component: Rule | undefined;
  /** `attributes["peer.service"]` as text when it is truthy. */
  readonly peerService: string | undefined;
  /** Kind SERVER, CLIENT, PRODUCER or CONSUMER: the spans the reference's "filtered" discoverers see. */
  readonly filtered: boolean;
}

function isFilteredKind(kind: number): boolean {
  return kind >= SpanKind.SERVER && kind <= SpanKind.CONSUMER;
}

export function classify(span: DiscoverySpan, rules: RuleSet): ClassifiedSpan {
  const peer = span.attributes['peer.service'];
  return {
    span,
    rules,
    service: keyString(span.resource['service.name']),
    rule: matchRule(span, rules.category, rules.other),
    component: matchRule(span, rules.component),
    peerService: truthy(peer) ? keyString(peer) : undefined,
    filtered: isFilteredKind(span.kind),
  };
}
