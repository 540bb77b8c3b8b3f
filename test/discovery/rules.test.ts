/** Field addressing and the rule model (README: How it works › Rules and field addressing). */
import test from 'ava';
import { classify } from '../../services/discovery/classify.ts';
import { accessor, keyPair, keyString, truthy } from '../../services/discovery/fields.ts';
import { buildRuleSet, BUILTIN_RULES, matchRule, nodeKey, topoKey, type RuleRow } from '../../services/discovery/rules.ts';
import { defaultRules, rulesWith, span } from './helpers.ts';

test('rule strings split once on the first dot; a dotless string addresses a top-level field', (t) => {
  t.deepEqual(keyPair('attributes.http.method'), ['attributes', 'http.method']);
  t.deepEqual(keyPair('resource.k8s.bcs.cluster.id'), ['resource', 'k8s.bcs.cluster.id']);
  t.deepEqual(keyPair('span_name'), ['', 'span_name']);
  t.deepEqual(keyPair(''), ['', '']);
  const s = span({ span_name: 'GET /x', attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'a' } });
  t.is(accessor(keyPair('attributes.http.method'))(s), 'GET');
  t.is(accessor(keyPair('span_name'))(s), 'GET /x');
  t.is(accessor(keyPair('resource.service.name'))(s), 'a');
  t.is(accessor(keyPair(''))(s), undefined, '("", "") never exists');
  t.is(accessor(keyPair('unknown.span_name'))(s), 'GET /x', 'a first part that is no span field reads the span itself');
  t.is(accessor(keyPair('attributes.constructor'))(s), undefined, 'no prototype reads through decoded maps');
});

test('matching uses Python truthiness', (t) => {
  for (const v of ['', 0, false, null, undefined, [], Buffer.alloc(0)]) t.false(truthy(v), String(v));
  for (const v of ['x', 1, -1, true, ['a'], NaN]) t.true(truthy(v), String(v));
  t.is(keyString(true), 'True');
  t.is(keyString(3306), '3306');
  t.is(keyString(null), '', 'present-but-null gives "" (deliberate: the reference gives "None")');
});

test('default rules classify spans as the reference does (README: How it works › Rules and field addressing)', (t) => {
  const cat = (attributes: Record<string, string>): string => matchRule(span({ attributes }), defaultRules.category, defaultRules.other).categoryId;
  t.is(cat({ 'db.system': 'mysql', 'http.method': 'GET' }), 'db');
  t.is(cat({ 'messaging.system': 'kafka', 'messaging.destination': 'orders' }), 'messaging');
  t.is(cat({ 'messaging.destination': 'orders' }), 'async_backend');
  t.is(cat({ 'trpc.namespace': 'Production', 'http.method': 'GET' }), 'rpc');
  t.is(cat({ 'rpc.system': 'grpc' }), 'rpc');
  t.is(cat({ 'http.method': 'GET' }), 'http');
  t.is(cat({ 'http.method': '' }), 'other', 'an empty value is absent');
  t.is(cat({}), 'other');
});

test('app rules come before global rules; the first `other` rule is the fallback', (t) => {
  const rules = rulesWith([
    { type: 'category', category_id: 'http', topo_kind: 'service', predicate_key: 'attributes.http.route', instance_key: 'resource.service.name', endpoint_key: 'attributes.http.route', sort: 9 },
  ]);
  const s = span({ span_name: 'GET', attributes: { 'http.route': '/orders/{id}', 'db.system': 'mysql' } });
  const rule = matchRule(s, rules.category, rules.other);
  t.is(rule.categoryId, 'http', 'the app rule wins even over the global db rule');
  t.is(rule.endpoint?.get(s), '/orders/{id}');
  t.is(rules.other.categoryId, 'other');
  t.is(rules.component.length, 2, 'db and messaging');
  t.deepEqual(rules.system.map((r) => r.categoryId), ['trpc', 'grpc']);
  t.deepEqual(rules.platform.map((r) => r.categoryId), ['k8s', 'node']);
});

test('without any `other` rule the built-in one is used (the reference fails the discoverer)', (t) => {
  const rows: RuleRow[] = BUILTIN_RULES.filter((r) => r.category_id !== 'other');
  const rules = buildRuleSet(rows);
  t.true(rules.fallbackOther);
  t.is(matchRule(span({}), rules.category, rules.other).categoryId, 'other');
});

test('topo keys (README: How it works › Rules and field addressing): service name, `{service}-{predicate}`, `{category}:{peer}`, component instance ids', (t) => {
  const db = span({ attributes: { 'db.system': 'mysql', 'net.peer.name': 'db.local', 'net.peer.port': 3306 }, resource: { 'service.name': 'order-svc' } });
  const dbRule = matchRule(db, defaultRules.category, defaultRules.other);
  t.is(topoKey(dbRule, db), 'mysql');
  t.is(nodeKey(dbRule, db, 'order-svc'), 'order-svc-mysql');
  t.is(topoKey(dbRule, db, false), 'mysql:db.local::3306');
  const http = span({ attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'order-svc' } });
  t.is(nodeKey(matchRule(http, defaultRules.category, defaultRules.other), http, 'order-svc'), 'order-svc');
  const remote = rulesWith([{ type: 'category', category_id: 'http', topo_kind: 'remote_service', predicate_key: 'attributes.peer.service', instance_key: 'attributes.peer.service', endpoint_key: 'span_name', sort: 0 }]);
  const peer = span({ attributes: { 'peer.service': 'payment-gw' } });
  t.is(topoKey(matchRule(peer, remote.category, remote.other), peer), 'http:payment-gw');
  const missing = span({ attributes: {} });
  t.is(topoKey(dbRule, missing), 'unknown.service-component', 'a component without its predicate value');
});

test('a span is classified once: its category rule and, apart from it, the component rule it calls', (t) => {
  const rules = rulesWith([{ type: 'category', category_id: 'http', topo_kind: 'service', predicate_key: 'attributes.http.route', instance_key: 'resource.service.name', endpoint_key: 'attributes.http.route', sort: 9 }]);
  const both = classify(span({ kind: 3, attributes: { 'http.route': '/orders', 'db.system': 'mysql' } }), rules);
  t.is(both.rule.categoryId, 'http', 'the app rule wins the category');
  t.is(both.component?.categoryId, 'db', 'the span still calls the mysql component');
  const db = classify(span({ kind: 3, attributes: { 'db.system': 'mysql' } }), defaultRules);
  t.is(db.component, db.rule, 'a component category rule is also the component');
  t.is(classify(span({ kind: 3, attributes: { 'http.method': 'GET' } }), defaultRules).component, undefined);
});
