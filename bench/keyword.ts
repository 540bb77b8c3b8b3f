/**
 * `npm run bench:keyword`: the keyword task's line rate while a file is appended at full speed.
 *
 * A child process appends realistic log lines (≈ 90 bytes, one in ten an `ERROR <module>: ...` line) to a
 * file as fast as it can, for KEYWORD_BENCH_SECONDS (default 10) or until KEYWORD_BENCH_LINES lines
 * (default 3 000 000) are written. Meanwhile the agent's shared file input (services/agent/tail) tails the
 * file and feeds every line to the keyword task's counter (a filter pattern and two rules, one with named
 * groups) — the same code path as the task, without publishing. On this machine the writer, not the
 * tailer, sets the wall-clock pace (the tailer waits for it), so the rate is taken on the tailer's own
 * time: `lines_per_s` = lines run through the rules / CPU seconds this process spent until it had
 * caught up with the writer (the writer is a separate process); the wall-clock rate is printed beside it.
 *
 * Baseline, same run, same file afterwards, measured the same way: a bare read-and-split (1 MiB reads,
 * UTF-8 decode, split on newlines, count) — what any tailer must at least do.
 * `ratio` = lines_per_s / baseline_lines_per_s.
 * Targets: ≥ 200 000 lines/s and ratio ≥ 0.5.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../services/common/log.ts';
import { TailInput } from '../services/agent/tail/input.ts';
import { keywordType } from '../services/agent/tasks/keyword.ts';
import type { ConfigProblem } from '../services/common/errors.ts';
import type { StateStore } from '../services/agent/task.ts';

const SECONDS = Number(process.env.KEYWORD_BENCH_SECONDS ?? 10);
const MAX_LINES = Number(process.env.KEYWORD_BENCH_LINES ?? 3_000_000);

class Memory implements StateStore {
  readonly m = new Map<string, string>();
  get(k: string): string | undefined {
    return this.m.get(k);
  }
  set(k: string, v: string): void {
    this.m.set(k, v);
  }
  delete(k: string): void {
    this.m.delete(k);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'bkstream-bench-keyword-'));
const file = join(dir, 'app.log');
writeFileSync(file, '');

const writerSource = `
const fs = require('node:fs');
const fd = fs.openSync(${JSON.stringify(file)}, 'a');
const modules = ['db', 'web', 'cache', 'auth', 'queue'];
const lines = [];
for (let i = 0; i < 4096; i++) {
  const ts = '2026-12-02T10:00:' + String(i % 60).padStart(2, '0') + '.' + String(i % 1000).padStart(3, '0') + 'Z';
  lines.push(i % 10 === 0
    ? ts + ' ERROR ' + modules[i % 5] + ': request ' + i + ' failed after 30s (upstream timeout)\\n'
    : ts + ' INFO  ' + modules[i % 5] + ': handled request ' + i + ' in 12ms status=200 bytes=5120\\n');
}
const block = Buffer.from(lines.join(''));
const deadline = Date.now() + ${SECONDS * 1000};
let written = 0;
while (written < ${MAX_LINES} && Date.now() < deadline) { fs.writeSync(fd, block); written += 4096; }
fs.closeSync(fd);
process.stdout.write(String(written));
`;

const problems: ConfigProblem[] = [];
const config = keywordType.parse(
  {
    paths: [join(dir, '*.log')],
    keywords: [
      { name: 'error', pattern: 'ERROR (?P<module>\\w+): request \\d+ failed' },
      { name: 'timeout', pattern: 'timeout' },
    ],
    filter_patterns: ['healthcheck'],
  },
  { type: 'keyword', taskId: 1, bkBizId: 2, dataId: 1, periodMs: 60_000, timeoutMs: 3_000, availableDurationMs: 3_000, labels: [], tags: {}, ident: 'bench' },
  problems,
  {},
);
if (problems.length > 0) throw new Error(JSON.stringify(problems));
const { KeywordCounter } = await import('../services/agent/tasks/keyword.ts');
const counter = new KeywordCounter(config);
const input = new TailInput({ state: new Memory(), logger: silentLogger, pollIntervalMs: 5 });
let firstLineAt = 0;
const unsubscribe = input.subscribe({
  id: 'bench',
  paths: config.paths,
  exclude: config.excludeFiles,
  encoding: config.encoding,
  closeInactiveMs: config.closeInactiveMs,
  retainFileBytes: 0,
  onLines: (f, lines) => {
    if (firstLineAt === 0) firstLineAt = performance.now();
    for (const l of lines) counter.line(f, l);
  },
});
while (input.scans === 0) await new Promise((r) => setTimeout(r, 5));

const cpuBefore = process.cpuUsage();
const writer = spawn(process.execPath, ['-e', writerSource], { stdio: ['ignore', 'pipe', 'inherit'] });
let writtenText = '';
writer.stdout.on('data', (d: Buffer) => (writtenText += d.toString()));
await new Promise<void>((r) => writer.once('exit', () => r()));
const written = Number(writtenText);
while (counter.lines < written) await new Promise((r) => setTimeout(r, 5));
const doneAt = performance.now();
const cpu = process.cpuUsage(cpuBefore);
await unsubscribe();
const seconds = (doneAt - firstLineAt) / 1000;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const linesPerS = counter.lines / cpuSeconds;
const size = statSync(file).size;
console.log(`tailed ${counter.lines} lines (${(size / 1e6).toFixed(1)} MB, ${counter.hits} rule hits) while they were written: ${seconds.toFixed(2)} s wall (${Math.round(counter.lines / seconds)} lines/s, the writer's pace), ${cpuSeconds.toFixed(2)} s tailer CPU`);

// Baseline: bare read-and-split of the same file.
const base0 = performance.now();
const baseCpu0 = process.cpuUsage();
let baseLines = 0;
const fd = openSync(file, 'r');
const buf = Buffer.allocUnsafe(1024 * 1024);
let rest = '';
for (;;) {
  const n = readSync(fd, buf, 0, buf.length, null);
  if (n === 0) break;
  const parts = (rest + buf.toString('utf8', 0, n)).split('\n');
  rest = parts.pop() ?? '';
  baseLines += parts.length;
}
closeSync(fd);
const baseSeconds = (performance.now() - base0) / 1000;
const baseCpu = process.cpuUsage(baseCpu0);
const baseCpuSeconds = (baseCpu.user + baseCpu.system) / 1e6;
const baselinePerS = baseLines / baseCpuSeconds;
console.log(`baseline read-and-split: ${baseLines} lines in ${baseSeconds.toFixed(2)} s wall, ${baseCpuSeconds.toFixed(2)} s CPU`);
rmSync(dir, { recursive: true, force: true });
console.log(`RESULT bench=keyword lines_per_s=${Math.round(linesPerS)} baseline_lines_per_s=${Math.round(baselinePerS)} ratio=${(linesPerS / baselinePerS).toFixed(3)}`);
