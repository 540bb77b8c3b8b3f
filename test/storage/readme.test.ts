/** The README's configuration table is the one storageSpec generates, under the shared headings. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { configTable } from '../../services/common/config.ts';
import { storageSpec } from '../../services/storage/config.ts';

const readme = readFileSync(resolve(import.meta.dirname, '../../services/storage/README.md'), 'utf8');

test('configuration table matches the spec', (t) => {
  const m = /<!-- config:start -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
  t.is(m?.[1], configTable(storageSpec));
});

test('the shared section headings, in order', (t) => {
  t.deepEqual([...readme.matchAll(/^## (.+)$/gm)].map((m) => m[1]), [
    'What it does', 'Interfaces', 'How it works', 'Configuration', 'Metrics', 'Failure behaviour', 'Differences from the reference', 'Benchmark', 'Known limits',
  ]);
});
