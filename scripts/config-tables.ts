/**
 * `npm run docs:config`: rewrites the configuration table of every service's README (between
 * `<!-- config:start -->` and `<!-- config:end -->`) from its module's spec; `--check` only says which
 * are stale (exit 1). test/services/skeleton.test.ts checks the same.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { configTable } from '../services/common/config.ts';
import type { ServiceModule } from '../services/common/service.ts';

const SERVICES = resolve(import.meta.dirname, '../services');
const MARKERS = /(<!-- config:start -->\n)[\s\S]*?(\n<!-- config:end -->)/;

async function main(): Promise<number> {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const d of readdirSync(SERVICES, { withFileTypes: true })) {
    if (!d.isDirectory() || d.name === 'common' || d.name === 'cli') continue;
    const readmePath = join(SERVICES, d.name, 'README.md');
    let readme: string;
    let module: ServiceModule | undefined;
    try {
      readme = readFileSync(readmePath, 'utf8');
      module = ((await import(join(SERVICES, d.name, 'service.ts'))) as { default?: ServiceModule }).default;
    } catch {
      continue;
    }
    if (!module || !MARKERS.test(readme)) continue;
    const next = readme.replace(MARKERS, (_, a: string, b: string) => `${a}${configTable(module.spec)}${b}`);
    if (next === readme) continue;
    stale++;
    if (check) console.log(`stale: services/${d.name}/README.md`);
    else {
      writeFileSync(readmePath, next);
      console.log(`updated services/${d.name}/README.md`);
    }
  }
  return check && stale > 0 ? 1 : 0;
}

main().then((code) => process.exit(code), (err: unknown) => {
  console.error(`config-tables: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
