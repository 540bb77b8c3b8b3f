/**
 * `npm test`: the whole suite (unit and integration) against the real broker and databases.
 *
 * Starts the local Kafka broker unless KAFKA_BROKERS is set (scripts/with-broker.ts), runs ava (extra
 * arguments pass through: `npm test -- test/common/bus.test.ts`), and ends with one plain summary line
 * `N passed, N failed` that CI reads. PostgreSQL comes from TEST_DATABASE_URL
 * (default postgres://postgres@127.0.0.1:5432/postgres).
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { installWarningFilter } from '../services/common/process.ts';
import { reportSetupError, run, withBroker } from './with-broker.ts';

installWarningFilter();

// ava's CLI entry (its package exports do not expose it; the path is its `bin`).
const ava = join(dirname(createRequire(import.meta.url).resolve('ava')), 'cli.mjs');

/** Counts from ava's closing lines ("12 tests passed", "1 test failed", "2 uncaught exceptions", ...). */
export function summarize(output: string): { passed: number; failed: number } {
  const count = (re: RegExp): number => [...output.matchAll(re)].reduce((n, m) => n + Number(m[1]), 0);
  const passed = count(/^\s*(\d+) tests? passed/gm);
  const failed =
    count(/^\s*(\d+) tests? failed/gm) +
    count(/^\s*(\d+) known failures?/gm) +
    count(/^\s*(\d+) uncaught exceptions?/gm) +
    count(/^\s*(\d+) unhandled rejections?/gm) +
    count(/^\s*(\d+) tests? remained pending/gm);
  return { passed, failed };
}

withBroker(async (env) => {
  let tail = '';
  // ava prints "N tests passed" only when nothing failed; otherwise the passes are counted from its ✔ lines.
  let line = '';
  let ticks = 0;
  const code = await run(process.execPath, [ava, ...process.argv.slice(2)], { ...env, NODE_ENV: 'test' }, (chunk) => {
    process.stdout.write(chunk);
    const text = chunk.toString('utf8');
    tail = (tail + text).slice(-20_000);
    const lines = (line + text).split('\n');
    line = lines.pop() ?? '';
    ticks += lines.filter((l) => /^\s*✔/.test(l)).length;
  });
  const summary = summarize(tail);
  const passed = Math.max(summary.passed, ticks);
  const failed = summary.failed;
  // ava exits non-zero on timeouts and crashed workers even when no test line says "failed"
  console.log(`${passed} passed, ${code !== 0 && failed === 0 ? 1 : failed} failed`);
  return code;
}).then((code) => process.exit(code), (err: unknown) => reportSetupError('test', err));
