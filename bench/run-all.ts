/**
 * `npm run bench`: every benchmark in turn (each starts what it needs), then their RESULT lines together.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');
const BENCHES = ['codec', 'discovery', 'receiver', 'orchestrator'];

async function run(name: string): Promise<string | undefined> {
  if (!existsSync(join(ROOT, 'bench', `${name}.ts`))) return undefined;
  console.log(`\n== bench:${name}`);
  return new Promise((resolve) => {
    let last = '';
    const child = spawn('npm', ['run', '-s', `bench:${name}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    child.stdout.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk);
      last = (last + chunk.toString()).slice(-4096);
    });
    child.once('exit', () => resolve(last.split('\n').reverse().find((l) => l.startsWith('RESULT ')) ?? `(bench:${name} printed no RESULT line)`));
  });
}

const results: string[] = [];
for (const name of BENCHES) {
  const line = await run(name);
  if (line) results.push(line);
}
console.log(`\n== summary\n${results.join('\n')}`);
