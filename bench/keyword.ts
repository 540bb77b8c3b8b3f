/**
 * `npm run bench:keyword`: the keyword task's line rate while a file is appended at full speed.
 *
 * A child process appends realistic log lines (≈ 90 bytes, one in ten an `ERROR <module>: ...` line) to a
 * file as fast as it can, for KEYWORD_BENCH_SECONDS (default 10) or until KEYWORD_BENCH_LINES lines
 * (default 3 000 000) are written. Meanwhile the agent's shared file input (services/agent/tail) tails the
 * file and feeds it to the keyword task's counter through the task's own subscriber (a filter pattern and
 * two rules, one with named groups) — the same code path as the task, without publishing. On this machine
 * the writer, not the tailer, sets the wall-clock pace (the tailer waits for it), so the rate is taken on
 * the tailer's own time: `lines_per_s` = lines run through the task / CPU seconds this process spent from
 * the writer's start until it had caught up with the writer (the writer is a separate process, and its
 * spawning is left out); the wall-clock rate is printed beside it.
 *
 * Warm-up: before that, KEYWORD_BENCH_WARMUP_LINES (default 200 000) lines of the same kind are appended
 * and tailed unmeasured, and the baseline reads those same bytes once unmeasured.
 *
 * Baseline, same run, afterwards, measured the same way (CPU seconds): a bare read-and-split of exactly the
 * bytes the measured tailing read — the same file, the same lines: 1 MiB reads, each decoded (UTF-8) 64 KiB
 * at a time and split on newlines, the lines counted. Decoding in 64 KiB pieces (as the input hands them
 * out) keeps the strings young and is the cheapest simple read-and-split found; `ratio` = lines_per_s /
 * baseline_lines_per_s. For information, the same read-and-split decoding each 1 MiB read whole (the
 * first baseline of this bench: its strings go to V8's large-object space and drive full collections)
 * is printed too.
 *
 * The run fails unless the task saw every line and counted exactly the expected rule hits (each ERROR
 * line matches both rules), so the rate is for the task's complete work.
 * Targets: ≥ 200 000 lines/s and ratio ≥ 0.5.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../services/common/log.ts';
import { TailInput } from '../services/agent/tail/input.ts';
import { KeywordCounter, keywordSubscriber, keywordType } from '../services/agent/tasks/keyword.ts';
import type { ConfigProblem } from '../services/common/errors.ts';
import type { StateStore } from '../services/agent/task.ts';

const SECONDS = Number(process.env.KEYWORD_BENCH_SECONDS ?? 10);
const MAX_LINES = Number(process.env.KEYWORD_BENCH_LINES ?? 3_000_000);
const WARMUP_LINES = Number(process.env.KEYWORD_BENCH_WARMUP_LINES ?? 200_000);
const BLOCK_LINES = 4096;

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

/** 4096 log lines; every tenth an ERROR line (410 a block). Also run by the writer (as plain JavaScript). */
function makeBlock(): Buffer {
  const modules = ['db', 'web', 'cache', 'auth', 'queue'];
  const lines = [];
  for (let i = 0; i < 4096; i++) {
    const ts = '2026-12-02T10:00:' + String(i % 60).padStart(2, '0') + '.' + String(i % 1000).padStart(3, '0') + 'Z';
    lines.push(
      i % 10 === 0
        ? ts + ' ERROR ' + modules[i % 5] + ': request ' + i + ' failed after 30s (upstream timeout)\n'
        : ts + ' INFO  ' + modules[i % 5] + ': handled request ' + i + ' in 12ms status=200 bytes=5120\n',
    );
  }
  return Buffer.from(lines.join(''));
}
const ERROR_LINES_PER_BLOCK = 410;

const dir = mkdtempSync(join(tmpdir(), 'bkstream-bench-keyword-'));
const file = join(dir, 'app.log');
writeFileSync(file, '');

const writerSource = `
const fs = require('node:fs');
const fd = fs.openSync(${JSON.stringify(file)}, 'a');
const block = (${makeBlock.toString()})();
const deadline = Date.now() + ${SECONDS * 1000};
let written = 0;
while (written < ${MAX_LINES} && Date.now() < deadline) { fs.writeSync(fd, block); written += ${BLOCK_LINES}; }
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
const counter = new KeywordCounter(config);
const input = new TailInput({ state: new Memory(), logger: silentLogger, pollIntervalMs: 5 });
let firstLineAt = 0;
const sub = keywordSubscriber(config, counter, 'bench');
const unsubscribe = input.subscribe({
  ...sub,
  onBatch: (f, batch) => {
    if (firstLineAt === 0) firstLineAt = performance.now();
    sub.onBatch?.(f, batch);
  },
});
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
while (input.scans === 0) await pause(5);

// warm-up (unmeasured)
const block = makeBlock();
const warmBlocks = Math.ceil(WARMUP_LINES / BLOCK_LINES);
for (let i = 0; i < warmBlocks; i++) appendFileSync(file, block);
const warmLines = warmBlocks * BLOCK_LINES;
const warmBytes = warmBlocks * block.length;
while (counter.lines < warmLines) await pause(5);
const hitsBefore = counter.hits;
firstLineAt = 0;

const writer = spawn(process.execPath, ['-e', writerSource], { stdio: ['ignore', 'pipe', 'inherit'] });
const cpuBefore = process.cpuUsage();
let writtenText = '';
writer.stdout.on('data', (d: Buffer) => (writtenText += d.toString()));
await new Promise<void>((r) => writer.once('exit', () => r()));
const written = Number(writtenText);
while (counter.lines < warmLines + written) await pause(5);
const doneAt = performance.now();
const cpu = process.cpuUsage(cpuBefore);
await unsubscribe();
const lines = counter.lines - warmLines;
const hits = counter.hits - hitsBefore;
const expectedHits = (written / BLOCK_LINES) * ERROR_LINES_PER_BLOCK * 2;
if (lines !== written || hits !== expectedHits) {
  console.error(`the task saw ${lines} lines (written ${written}) and counted ${hits} rule hits (expected ${expectedHits})`);
  process.exit(1);
}
const seconds = (doneAt - firstLineAt) / 1000;
const cpuSeconds = (cpu.user + cpu.system) / 1e6;
const linesPerS = lines / cpuSeconds;
const size = statSync(file).size;
console.log(
  `tailed ${lines} lines (${((size - warmBytes) / 1e6).toFixed(1)} MB, ${hits} rule hits as expected) while they were written: ${seconds.toFixed(2)} s wall (${Math.round(lines / seconds)} lines/s, the writer's pace), ${cpuSeconds.toFixed(2)} s tailer CPU`,
);

/** Bare read-and-split of bytes [from, to) of the file, decoding `decodeBytes` at a time: the lines in it. */
function readAndSplit(from: number, to: number, decodeBytes: number): number {
  let n = 0;
  const fd = openSync(file, 'r');
  const buf = Buffer.allocUnsafe(1024 * 1024);
  let rest = '';
  for (let pos = from; pos < to; ) {
    const got = readSync(fd, buf, 0, Math.min(buf.length, to - pos), pos);
    if (got === 0) break;
    pos += got;
    for (let a = 0; a < got; a += decodeBytes) {
      const parts = (rest + buf.toString('utf8', a, Math.min(got, a + decodeBytes))).split('\n');
      rest = parts.pop() ?? '';
      n += parts.length;
    }
  }
  closeSync(fd);
  return n;
}

/** The baseline's rate (lines per CPU second) and lines: warm-up on the warm-up bytes, then the measured bytes. */
function baseline(decodeBytes: number): { perS: number; lines: number; wall: number; cpu: number } {
  readAndSplit(0, warmBytes, decodeBytes);
  const wall0 = performance.now();
  const cpu0 = process.cpuUsage();
  const n = readAndSplit(warmBytes, size, decodeBytes);
  const wall = (performance.now() - wall0) / 1000;
  const used = process.cpuUsage(cpu0);
  const cpu = (used.user + used.system) / 1e6;
  return { perS: n / cpu, lines: n, wall, cpu };
}

// The baseline: 64 KiB decode pieces. Then, for information only, the same decoding each 1 MiB read whole.
const base = baseline(64 * 1024);
const baselinePerS = base.perS;
console.log(`baseline read-and-split (decoding 64 KiB at a time): ${base.lines} lines in ${base.wall.toFixed(2)} s wall, ${base.cpu.toFixed(2)} s CPU`);
const whole = baseline(1024 * 1024);
console.log(`(information) read-and-split decoding each 1 MiB read whole: ${whole.lines} lines, ${whole.cpu.toFixed(2)} s CPU, ${Math.round(whole.perS)} lines/s — ours at ${(linesPerS / whole.perS).toFixed(3)} of it`);
rmSync(dir, { recursive: true, force: true });
console.log(`RESULT bench=keyword lines_per_s=${Math.round(linesPerS)} baseline_lines_per_s=${Math.round(baselinePerS)} ratio=${(linesPerS / baselinePerS).toFixed(3)}`);
