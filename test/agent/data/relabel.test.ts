/**
 * Prometheus relabelling for metricbeat's `metric_relabel_configs`, on cases re-created from Prometheus'
 * own model/relabel/relabel_test.go (TestRelabel, TestRelabelValidate, TestTargetLabelValidity).
 */
import test from 'ava';
import { parseRelabelConfig, relabel } from '../../../services/agent/exposition/relabel.ts';

type Case = { input: Record<string, string>; rules: Record<string, unknown>[]; output?: Record<string, string>; drop?: boolean };

const cases: Case[] = [
  { input: { a: 'foo', b: 'bar', c: 'baz' }, rules: [{ source_labels: ['a'], regex: 'f(.*)', target_label: 'd', replacement: 'ch${1}-ch${1}' }], output: { a: 'foo', b: 'bar', c: 'baz', d: 'choo-choo' } },
  {
    input: { a: 'foo', b: 'bar', c: 'baz' },
    rules: [
      { source_labels: ['a', 'b'], regex: 'f(.*);(.*)r', target_label: 'a', replacement: 'b${1}${2}m' },
      { source_labels: ['c', 'a'], regex: '(b).*b(.*)ba(.*)', target_label: 'd', replacement: '$1$2$2$3' },
    ],
    output: { a: 'boobam', b: 'bar', c: 'baz', d: 'boooom' },
  },
  { input: { a: 'foo' }, rules: [{ source_labels: ['a'], regex: '.*o.*', action: 'drop' }, { source_labels: ['a'], regex: 'f(.*)', target_label: 'd', replacement: 'ch$1-ch$1' }], drop: true },
  { input: { a: 'foo', b: 'bar' }, rules: [{ source_labels: ['a'], regex: '.*o.*', action: 'drop' }], drop: true },
  { input: { a: 'abc' }, rules: [{ source_labels: ['a'], regex: '.*(b).*', target_label: 'd', replacement: '$1' }], output: { a: 'abc', d: 'b' } },
  { input: { a: 'foo' }, rules: [{ source_labels: ['a'], regex: 'no-match', action: 'drop' }], output: { a: 'foo' } },
  { input: { a: 'foo' }, rules: [{ source_labels: ['a'], regex: 'f|o', action: 'drop' }], output: { a: 'foo' } },
  { input: { a: 'foo' }, rules: [{ source_labels: ['a'], regex: 'no-match', action: 'keep' }], drop: true },
  { input: { a: 'foo' }, rules: [{ source_labels: ['a'], regex: 'f.*', action: 'keep' }], output: { a: 'foo' } },
  { input: { a: 'boo' }, rules: [{ source_labels: ['a'], regex: 'f', target_label: 'b', replacement: 'bar' }], output: { a: 'boo' } },
  { input: { a: 'foo', b: 'bar', c: 'baz' }, rules: [{ source_labels: ['c'], target_label: 'd', action: 'hashmod', modulus: 1000 }], output: { a: 'foo', b: 'bar', c: 'baz', d: '976' } },
  { input: { a: 'foo\nbar' }, rules: [{ source_labels: ['a'], target_label: 'b', action: 'hashmod', modulus: 1000 }], output: { a: 'foo\nbar', b: '734' } },
  { input: { a: 'foo', b1: 'bar', b2: 'baz' }, rules: [{ regex: '(b.*)', replacement: 'bar_${1}', action: 'labelmap' }], output: { a: 'foo', b1: 'bar', b2: 'baz', bar_b1: 'bar', bar_b2: 'baz' } },
  {
    input: { a: 'foo', __meta_my_bar: 'aaa', __meta_my_baz: 'bbb', __meta_other: 'ccc' },
    rules: [{ regex: '__meta_(my.*)', replacement: '${1}', action: 'labelmap' }],
    output: { a: 'foo', __meta_my_bar: 'aaa', __meta_my_baz: 'bbb', __meta_other: 'ccc', my_bar: 'aaa', my_baz: 'bbb' },
  },
  { input: { a: 'some-name-value' }, rules: [{ source_labels: ['a'], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}' }], output: { a: 'some-name-value', name: 'value' } },
  { input: { a: 'some-name-value' }, rules: [{ source_labels: ['a'], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}' }], output: { a: 'some-name-value' } },
  {
    input: { a: 'some-name-0' },
    rules: [
      { source_labels: ['a'], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}' },
      { source_labels: ['a'], regex: 'some-([^-]+)(-[^,]+)', replacement: '${1}', target_label: '${3}' },
    ],
    output: { a: 'some-name-0' },
  },
  {
    input: { __meta_sd_tags: 'path:/secret,job:some-job,label:foo=bar' },
    rules: [
      { source_labels: ['__meta_sd_tags'], regex: '(?:.+,|^)path:(/[^,]+).*', replacement: '${1}', target_label: '__metrics_path__' },
      { source_labels: ['__meta_sd_tags'], regex: '(?:.+,|^)job:([^,]+).*', replacement: '${1}', target_label: 'job' },
      { source_labels: ['__meta_sd_tags'], regex: '(?:.+,|^)label:([^=]+)=([^,]+).*', replacement: '${2}', target_label: '${1}' },
    ],
    output: { __meta_sd_tags: 'path:/secret,job:some-job,label:foo=bar', __metrics_path__: '/secret', job: 'some-job', foo: 'bar' },
  },
  {
    input: { __meta_kubernetes_pod_container_port_name: 'foo', __meta_kubernetes_pod_annotation_XXX_metrics_port: '9091' },
    rules: [
      { regex: '^__meta_kubernetes_pod_container_port_name$', action: 'labeldrop' },
      { source_labels: ['__meta_kubernetes_pod_annotation_XXX_metrics_port'], regex: '(.+)', replacement: 'metrics', target_label: '__meta_kubernetes_pod_container_port_name' },
      { source_labels: ['__meta_kubernetes_pod_container_port_name'], regex: '^metrics$', action: 'keep' },
    ],
    output: { __meta_kubernetes_pod_annotation_XXX_metrics_port: '9091', __meta_kubernetes_pod_container_port_name: 'metrics' },
  },
  { input: { a: 'foo', b1: 'bar', b2: 'baz' }, rules: [{ regex: '(b.*)', action: 'labelkeep' }], output: { b1: 'bar', b2: 'baz' } },
  { input: { a: 'foo', b1: 'bar', b2: 'baz' }, rules: [{ regex: '(b.*)', action: 'labeldrop' }], output: { a: 'foo' } },
  {
    input: { foo: 'bAr123Foo' },
    rules: [{ source_labels: ['foo'], action: 'uppercase', target_label: 'foo_uppercase' }, { source_labels: ['foo'], action: 'lowercase', target_label: 'foo_lowercase' }],
    output: { foo: 'bAr123Foo', foo_lowercase: 'bar123foo', foo_uppercase: 'BAR123FOO' },
  },
  { input: { __tmp_port: '1234', __port1: '1234', __port2: '5678' }, rules: [{ source_labels: ['__tmp_port'], action: 'keepequal', target_label: '__port1' }], output: { __tmp_port: '1234', __port1: '1234', __port2: '5678' } },
  { input: { __tmp_port: '1234', __port1: '1234', __port2: '5678' }, rules: [{ source_labels: ['__tmp_port'], action: 'dropequal', target_label: '__port1' }], drop: true },
  { input: { __tmp_port: '1234', __port1: '1234', __port2: '5678' }, rules: [{ source_labels: ['__tmp_port'], action: 'dropequal', target_label: '__port2' }], output: { __tmp_port: '1234', __port1: '1234', __port2: '5678' } },
  { input: { __tmp_port: '1234', __port1: '1234', __port2: '5678' }, rules: [{ source_labels: ['__tmp_port'], action: 'keepequal', target_label: '__port2' }], drop: true },
  // an empty replacement deletes the target (Prometheus semantics; see the README for the reference's YAML round trip)
  { input: { a: 'x', b: 'y' }, rules: [{ source_labels: ['a'], target_label: 'b', replacement: '' }], output: { a: 'x' } },
];

for (const [i, c] of cases.entries()) {
  test(`relabel_test.go TestRelabel case ${i}`, (t) => {
    const out = relabel(c.input, c.rules.map((r) => parseRelabelConfig(r)));
    if (c.drop) t.is(out, undefined);
    else t.deepEqual(out === undefined ? undefined : { ...out }, c.output);
  });
}

test('TestRelabelValidate and TestTargetLabelValidity', (t) => {
  t.throws(() => parseRelabelConfig({ action: 'replace' }), { message: /requires 'target_label' value/ });
  t.throws(() => parseRelabelConfig({ action: 'lowercase' }), { message: /requires 'target_label' value/ });
  t.throws(() => parseRelabelConfig({ action: 'lowercase', target_label: '${3}' }), { message: /"\$\{3\}" is invalid 'target_label'/ });
  t.notThrows(() => parseRelabelConfig({ source_labels: ['a'], regex: 'some-([^-]+)-([^,]+)', action: 'replace', replacement: '${1}', target_label: '${3}' }));
  t.throws(() => parseRelabelConfig({ source_labels: ['a'], regex: 'x', action: 'replace', target_label: '0${3}' }), { message: /is invalid 'target_label'/ });
  t.throws(() => parseRelabelConfig({ source_labels: ['a'], regex: 'x', action: 'replace', target_label: '-${3}' }), { message: /is invalid 'target_label' for replace action/ });
  t.throws(() => parseRelabelConfig({ action: 'hashmod', target_label: 'x' }), { message: /non-zero modulus/ });
  t.throws(() => parseRelabelConfig({ action: 'labeldrop', regex: 'x', target_label: 'y' }), { message: /requires only 'regex'/ });
  t.throws(() => parseRelabelConfig({ action: 'nope' }), { message: /unknown relabel action/ });
  t.throws(() => parseRelabelConfig({ action: 'keep', regex: '(' }), { message: /invalid regex/ });
  const valid: [string, boolean][] = [
    ['-label', false], ['label', true], ['label${1}', true], ['${1}label', true], ['${1}', true], ['${', false], ['$', false], ['${}', false],
    ['foo${', false], ['$1', true], ['asd$2asd', true], ['-foo${1}bar-', false], ['_${1}_', true], ['foo${bar}foo', true],
  ];
  for (const [target, ok] of valid) {
    const parse = (): unknown => parseRelabelConfig({ source_labels: ['a'], target_label: target });
    if (ok) t.notThrows(parse, target);
    else t.throws(parse, undefined, target);
  }
});

test('Go template expansion: $name, ${name}, $$ and named groups', (t) => {
  const rule = parseRelabelConfig({ source_labels: ['a'], regex: '(?P<first>[a-z]+)-(\\d+)', target_label: 'b', replacement: '$first/${2}$$ $2x' });
  t.deepEqual({ ...relabel({ a: 'abc-42' }, [rule]) }, { a: 'abc-42', b: 'abc/42$ ' });
});
