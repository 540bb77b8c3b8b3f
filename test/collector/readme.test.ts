/** The collector README's configuration table is the one the spec generates. */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { configTable } from '../../services/common/config.ts';
import { receiverSpec } from '../../services/collector/config.ts';

test('README configuration table matches the config spec', (t) => {
  const readme = readFileSync(resolve(import.meta.dirname, '../../services/collector/README.md'), 'utf8');
  const m = /<!-- config:start -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
  t.truthy(m, 'the README has a config table between markers');
  t.is(m?.[1], configTable(receiverSpec));
});
