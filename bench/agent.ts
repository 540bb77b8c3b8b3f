/**
 * bench/agent — the host agent's own cost: the agent process with the default task set (the example
 * configuration `bkstream up` runs: selfstats, static, basereport, exceptionbeat, the processbeat and
 * proccustom child files, the heartbeat) publishing to a real broker, beside an idle Node process
 * measured the same way in the same run.
 *
 *   npm run bench:agent            (starts the local broker unless KAFKA_BROKERS is set)
 *
 * - The agent runs as it is deployed: the bundle (services/agent/build.ts, built fresh here) with the Node
 *   flags deploy/k8s/agent.yaml gives it (AGENT_NODE_FLAGS of build.ts: a 1 MB young generation, no
 *   optimizing compilers) and the environment the image sets (MALLOC_ARENA_MAX=2,
 *   MALLOC_MMAP_THRESHOLD_=131072), its own state directory, topics of a fresh prefix, admin on a free port.
 *   The baseline is an idle Node process started the same way: same flags, same environment, a script
 *   that only waits. For information the agent is also run from its TypeScript sources beside an idle
 *   TypeScript entry (both pay Node's type stripping, ~18 MB); BENCH_AGENT_FROM=sources makes that pair
 *   the measured one.
 * - CPU: user + system seconds of each process from /proc/<pid>/stat over the measured window of
 *   BENCH_SECONDS (60), which starts after the agent answered /healthz and a warm-up of
 *   BENCH_WARMUP_SECONDS (60) in which every task of the set runs once (first runs compile their code;
 *   basereport's first run only takes its baseline samples). Start-up and warm-up CPU are printed apart.
 *   `cpu_pct` is the agent's share of one core.
 * - Memory: the kernel's peak resident set (VmHWM of /proc/<pid>/status) of each process at the end,
 *   start-up included.
 * - What the agent did in the window (task runs, records published) is read from its /metrics.
 *
 * Ends with `RESULT bench=agent cpu_pct=… rss_mb=… baseline_rss_mb=… seconds=…`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Bus } from '../services/common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../services/common/config.ts';
import { silentLogger } from '../services/common/log.ts';
import { installWarningFilter } from '../services/common/process.ts';
import { topicPlan } from '../services/common/topics.ts';
import { AGENT_NODE_FLAGS, buildAgent } from '../services/agent/build.ts';
import { fmt, result } from './lib.ts';

installWarningFilter();

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 60);
const ROOT = resolve(import.meta.dirname, '..');
const CLK_TCK = 100; // USER_HZ on Linux
/** Node flags of the agent process, as deploy/k8s/agent.yaml runs it (BENCH_AGENT_NODE_FLAGS overrides, space separated). */
const NODE_FLAGS = process.env.BENCH_AGENT_NODE_FLAGS ? process.env.BENCH_AGENT_NODE_FLAGS.split(' ').filter(Boolean) : [...AGENT_NODE_FLAGS];
/** `bundle` (as deployed, the default) or `sources` (the TypeScript entry, as tests and `bkstream up` run it). */
const FROM = process.env.BENCH_AGENT_FROM === 'sources' ? 'sources' : 'bundle';

/** user + system CPU seconds of a process (fields 14 and 15 of /proc/<pid>/stat). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

/** Resident set size in MB now (VmRSS). */
function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Peak resident set size in MB (VmHWM). */
function peakRssMb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => done(port));
    });
  });
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((done) => {
    if (child.exitCode !== null || child.signalCode !== null) done();
    else child.once('exit', () => done());
  });
}

async function metricsText(url: string): Promise<string> {
  return (await fetch(url)).text();
}

function sumOf(text: string, name: string, label?: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (label && !line.includes(label)) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

async function main(): Promise<void> {
  const env = { ...process.env };
  const common = loadConfig(commonSpec, { env });
  const brokers = brokersOrLocal(common.kafkaBrokers, env);
  const prefix = `bench-agent-${Date.now().toString(36)}`;
  const admin = new Bus({ brokers, clientId: 'bench-agent', logger: silentLogger }).admin();
  await admin.start();
  // Every topic of the default install (`npm run topics`), so the agent runs as deployed: it follows
  // `<prefix>.gse.routes` (GSE routing, on by default) besides publishing to events and metrics.
  const plan = topicPlan(prefix);
  const topics = plan.map((p) => p.topic);
  await admin.ensureTopics(plan);
  const stateDir = mkdtempSync(join(tmpdir(), 'bench-agent-'));
  const port = await freePort();
  const otherPort = await freePort();
  const bundle = await buildAgent();
  console.log(`agent bundle: ${(bundle.bytes / 1024).toFixed(0)} KiB from ${bundle.inputs} files; node flags: ${NODE_FLAGS.join(' ')}`);
  const children: ChildProcess[] = [];
  try {
    const childEnv = { ...env, MALLOC_ARENA_MAX: env.MALLOC_ARENA_MAX ?? '2', MALLOC_MMAP_THRESHOLD_: env.MALLOC_MMAP_THRESHOLD_ ?? '131072' };
    const agentEnv = (dir: string, adminPort: number): NodeJS.ProcessEnv => ({ ...childEnv, KAFKA_BROKERS: brokers.join(','), TOPIC_PREFIX: prefix, AGENT_STATE_DIR: dir, AGENT_ADMIN_PORT: String(adminPort), LOG_LEVEL: 'warn' });
    const entries = { bundle: bundle.file, sources: 'services/agent/main.ts' };
    const other = FROM === 'bundle' ? 'sources' : 'bundle';
    const agent = spawn(process.execPath, [...NODE_FLAGS, entries[FROM]], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: agentEnv(join(stateDir, 'a'), port) });
    const otherAgent = spawn(process.execPath, [...NODE_FLAGS, entries[other]], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'], env: agentEnv(join(stateDir, 'b'), otherPort) });
    const idleJs = spawn(process.execPath, [...NODE_FLAGS, '-e', 'setInterval(() => {}, 2 ** 30)'], { stdio: 'ignore', env: childEnv });
    const idleTs = spawn(process.execPath, [...NODE_FLAGS, join(import.meta.dirname, 'idle-node.ts')], { stdio: 'ignore', env: childEnv });
    const idle = FROM === 'bundle' ? idleJs : idleTs;
    children.push(agent, otherAgent, idleJs, idleTs);
    const url = `http://127.0.0.1:${port}`;
    const spawnedAt = Date.now();
    for (;;) {
      if (agent.exitCode !== null) throw new Error(`the agent exited with code ${agent.exitCode}`);
      const ok = await fetch(`${url}/healthz`).then((r) => r.ok, () => false);
      if (ok) break;
      if (Date.now() - spawnedAt > 60_000) throw new Error('the agent did not answer /healthz within 60 s');
      await sleep(100);
    }
    const agentPid = agent.pid as number;
    const idlePid = idle.pid as number;
    const startupCpu = cpuSeconds(agentPid);
    const startupMs = Date.now() - spawnedAt;
    console.log(`agent ready after ${startupMs} ms (${fmt(startupCpu)} CPU s of start-up, RSS ${fmt(rssMb(agentPid))} MB); warming up for ${WARMUP_SECONDS} s`);
    // The agent's RSS every 10 s until the end (where the peak is reached, and whether it settles).
    const series: string[] = [];
    const sampler = setInterval(() => series.push(fmt(rssMb(agentPid))), 10_000);
    await sleep(WARMUP_SECONDS * 1_000);
    console.log(`warm-up: ${fmt(cpuSeconds(agentPid) - startupCpu)} CPU s`);
    const before = { agent: cpuSeconds(agentPid), idle: cpuSeconds(idlePid), at: performance.now() };
    const metricsBefore = await metricsText(`${url}/metrics`);
    console.log(`measuring for ${SECONDS} s`);
    await sleep(SECONDS * 1_000);
    const seconds = (performance.now() - before.at) / 1_000;
    const after = { agent: cpuSeconds(agentPid), idle: cpuSeconds(idlePid) };
    const metricsAfter = await metricsText(`${url}/metrics`);
    clearInterval(sampler);
    console.log(`agent RSS every 10 s from ready (MB): ${series.join(' ')}`);
    const rss = peakRssMb(agentPid);
    const baselineRss = peakRssMb(idlePid);
    const otherRss = peakRssMb(otherAgent.pid as number);
    const otherBaseline = peakRssMb((FROM === 'bundle' ? idleTs : idleJs).pid as number);
    const agentCpu = after.agent - before.agent;
    const idleCpu = after.idle - before.idle;
    const runs = sumOf(metricsAfter, 'bkstream_task_run_total') - sumOf(metricsBefore, 'bkstream_task_run_total');
    const published = sumOf(metricsAfter, 'bkstream_agent_records_published_total') - sumOf(metricsBefore, 'bkstream_agent_records_published_total');
    for (const line of metricsAfter.split('\n')) if (line.startsWith('bkstream_task_run_total{')) console.log(`  ${line.replace(/,?service="[^"]*"/, '')}`);
    console.log(`agent: ${fmt(agentCpu)} CPU s in ${fmt(seconds)} s (${fmt((agentCpu / seconds) * 100)} % of a core), peak RSS ${fmt(rss)} MB; ${runs} task runs, ${published} records published in the window`);
    console.log(`idle node (${FROM === 'bundle' ? 'a script' : 'a TypeScript entry'}, same flags): ${fmt(idleCpu)} CPU s, peak RSS ${fmt(baselineRss)} MB`);
    console.log(`for information, the agent from its ${other}: peak RSS ${fmt(otherRss)} MB beside an idle ${other === 'bundle' ? 'script' : 'TypeScript entry'} at ${fmt(otherBaseline)} MB (+${fmt(otherRss - otherBaseline)} MB)`);
    for (const c of children) c.kill('SIGTERM');
    await Promise.all(children.map(exited));
    result('agent', { cpu_pct: (agentCpu / seconds) * 100, rss_mb: rss, baseline_rss_mb: baselineRss, seconds: Math.round(seconds) });
  } finally {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(`bench agent: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
