/**
 * Every service has the same skeleton (README "Project layout"): main.ts, service.ts (the only
 * composition root, exporting a ServiceModule), config.ts, metrics.ts and a README with the same
 * section headings, whose configuration table is the one the module's spec generates.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configTable } from '../../services/common/config.ts';
import type { ServiceModule } from '../../services/common/service.ts';

const SERVICES_DIR = resolve(import.meta.dirname, '../../services');
/** Folders under services/ that are not services: the plumbing and the command line. */
const NOT_SERVICES = new Set(['common', 'cli']);
const FILES = ['main.ts', 'service.ts', 'config.ts', 'metrics.ts', 'README.md'];
export const README_HEADINGS = [
  'What it does',
  'Interfaces',
  'How it works',
  'Configuration',
  'Metrics',
  'Failure behaviour',
  'Differences from the reference',
  'Benchmark',
  'Known limits',
];

const services = readdirSync(SERVICES_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && !NOT_SERVICES.has(d.name))
  .map((d) => d.name)
  .sort();

async function moduleOf(name: string): Promise<ServiceModule> {
  const mod = (await import(join(SERVICES_DIR, name, 'service.ts'))) as { default?: ServiceModule };
  if (!mod.default) throw new Error(`services/${name}/service.ts has no default export`);
  return mod.default;
}

test('there are services to check', (t) => {
  t.true(services.length >= 4, services.join(', '));
});

for (const name of services) {
  test(`${name}: has ${FILES.join(', ')}`, (t) => {
    const missing = FILES.filter((f) => !existsSync(join(SERVICES_DIR, name, f)));
    t.deepEqual(missing, []);
  });

  test(`${name}: service.ts exports a ServiceModule named after its folder that declares what it needs`, async (t) => {
    const module = await moduleOf(name);
    t.is(module.name, name);
    t.true(module.needs.every((n) => n === 'store' || n === 'bus'), `needs: ${module.needs.join(', ')}`);
    t.is(typeof module.config, 'function');
    t.is(typeof module.create, 'function');
    t.true(Object.keys(module.spec).length > 0);
  });

  test(`${name}: main.ts only runs the module`, (t) => {
    const main = readFileSync(join(SERVICES_DIR, name, 'main.ts'), 'utf8');
    t.regex(main, /runService\(/);
    t.notRegex(main, /new [A-Z]\w+\(/, 'no wiring in main.ts');
  });

  test(`${name}: README has the shared section headings, in order`, (t) => {
    const readme = readFileSync(join(SERVICES_DIR, name, 'README.md'), 'utf8');
    const headings = [...readme.matchAll(/^## (.+)$/gm)].map((m) => (m[1] as string).trim());
    t.deepEqual(headings, README_HEADINGS);
  });

  test(`${name}: README configuration table is the one its spec generates`, async (t) => {
    const readme = readFileSync(join(SERVICES_DIR, name, 'README.md'), 'utf8');
    const m = /<!-- config:start -->\n([\s\S]*?)\n<!-- config:end -->/.exec(readme);
    t.truthy(m, 'the README has a config table between <!-- config:start --> and <!-- config:end -->');
    t.is(m?.[1], configTable((await moduleOf(name)).spec));
  });
}
