/**
 * bench:probes — the agent's http and tcp uptime checks at scale, beside bare loops over the same targets.
 *
 * Targets live in a child process (so their CPU is not counted here), all on loopback: 10 HTTP servers
 * on 127.0.0.1 with 100 paths each (1 000 URLs, body "ok"), and 10 TCP ports each listened on at
 * 127.0.0.1–127.0.0.100 (1 000 host:port targets). The agent side is the real thing minus Kafka: 10 http
 * tasks of 100 URLs (response "ok" matched) and 10 tcp tasks of 100 hosts, cleaned like child files, run
 * by the daemon scheduler on real time every BENCH_PROBES_PERIOD_S (60 s) for BENCH_PROBES_SECONDS (120 s),
 * with the template's concurrency limits; outputs are counted in memory, not published (the publisher
 * has its own benchmark). Then the baseline: the same 1 000 URLs through `fetch` (body read) and the same
 * 1 000 targets through `net.connect` (connect, close), as many rounds as the agent ran, concurrently per
 * round as the agent does.
 *
 * cpu_ms_per_probe = process CPU (user + system) over the agent phase / probes completed; the baseline
 * likewise over its rounds (each side has one unmeasured warm-up round first; the agent runs first, so the
 * peak RSS is its own); ratio = baseline / agent (target ≥ 0.5); rss_mb = peak RSS at the end of the
 * agent phase. Every probe is on time when every run ended `ok` within its deadline, none was skipped, and
 * every target produced its event in every run.
 *
 * Env: BENCH_PROBES_SECONDS (120), BENCH_PROBES_PERIOD_S (60), BENCH_PROBES_TARGETS (1000 of each kind,
 * a multiple of 10).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { systemClock } from '../services/agent/clock.ts';
import type { ConfiguredTask } from '../services/agent/config-engine.ts';
import { fields, type RawMap } from '../services/agent/config-fields.ts';
import { DaemonScheduler } from '../services/agent/schedulers/daemon.ts';
import type { RunEnv, RunStatus } from '../services/agent/schedulers/runner.ts';
import { ConcurrencyLimiter } from '../services/agent/schedulers/semaphore.ts';
import { MemoryStateStore } from '../services/agent/state-store.ts';
import type { BaseTaskConfig, TaskContext, TaskOutput, TaskType } from '../services/agent/task.ts';
import { cleanTiming, readBase, readMeta, taskIdent } from '../services/agent/task-config.ts';
import { httpType } from '../services/agent/tasks/http.ts';
import { tcpType } from '../services/agent/tasks/tcp.ts';
import { socketBudget } from '../services/agent/probe/budget.ts';
import { silentLogger } from '../services/common/log.ts';
import { fmt, result } from './lib.ts';

const GROUPS = 10;

interface Targets {
  httpPorts: number[];
  tcpPorts: number[];
  perGroup: number;
}

// ---------------------------------------------------------------------------------------------- targets

async function serve(perGroup: number): Promise<void> {
  const httpPorts: number[] = [];
  for (let g = 0; g < GROUPS; g++) {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
      res.end('ok');
    });
    server.keepAliveTimeout = 1_000;
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    httpPorts.push((server.address() as net.AddressInfo).port);
  }
  const tcpPorts: number[] = [];
  const onConn = (s: net.Socket): void => {
    s.on('error', () => undefined);
    s.resume();
  };
  for (let g = 0; g < GROUPS; g++) {
    for (;;) {
      const first = net.createServer(onConn);
      await new Promise<void>((r) => first.listen(0, '127.0.0.1', () => r()));
      const port = (first.address() as net.AddressInfo).port;
      let ok = true;
      for (let h = 2; h <= perGroup && ok; h++) {
        const s = net.createServer(onConn);
        ok = await new Promise<boolean>((r) => {
          s.once('error', () => r(false));
          s.listen(port, `127.0.0.${h}`, () => r(true));
        });
      }
      if (ok) {
        tcpPorts.push(port);
        break;
      }
    }
  }
  process.stdout.write(`${JSON.stringify({ httpPorts, tcpPorts, perGroup } satisfies Targets)}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

async function startTargets(perGroup: number): Promise<{ child: ChildProcess; targets: Targets }> {
  const child = spawn(process.execPath, [import.meta.filename, '--serve', String(perGroup)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`target process exited with ${code}`)));
  });
  return { child, targets: JSON.parse(line) as Targets };
}

const urlsOf = (t: Targets, g: number): string[] => Array.from({ length: t.perGroup }, (_, i) => `http://127.0.0.1:${t.httpPorts[g]}/t/${i}`);
const hostsOf = (t: Targets): string[] => Array.from({ length: t.perGroup }, (_, i) => `127.0.0.${i + 1}`);

// ---------------------------------------------------------------------------------------------- agent

function configure<C extends BaseTaskConfig>(type: TaskType<C>, entry: RawMap, meta: RawMap): ConfiguredTask {
  const problems: { key: string; message: string }[] = [];
  const m = readMeta(fields(meta, problems, 'meta'), type.metaDefaults);
  const raw = readBase(fields(entry, problems, 'entry'));
  const timing = cleanTiming(raw, m);
  const partial = { type: type.type, taskId: raw.taskId, bkBizId: raw.bizIdField, ...timing, labels: raw.labels, tags: raw.tags };
  const base: BaseTaskConfig = { ...partial, ident: taskIdent(type.type, partial, entry) };
  const config = type.parse(entry, base, problems, meta);
  if (problems.length > 0) throw new Error(`bench config: ${JSON.stringify(problems)}`);
  return { type: type, config, scheduler: 'main', fingerprint: base.ident };
}

interface AgentPhase {
  seconds: number;
  cpuMs: number;
  probes: number;
  ok: number;
  runs: Record<RunStatus, number>;
  expected: number;
  rssMb: number;
  peakSockets: number;
}

async function agentPhase(targets: Targets, seconds: number, periodS: number): Promise<AgentPhase> {
  const meta = { dataid: 1011, max_timeout: '30s', min_period: '1s' };
  const tasks: ConfiguredTask[] = [];
  for (let g = 0; g < GROUPS; g++) {
    tasks.push(configure(httpType, { task_id: 100 + g, bk_biz_id: 2, period: `${periodS}s`, timeout: '10s', steps: [{ url_list: urlsOf(targets, g), response: 'ok', response_format: 'eq' }] }, meta));
    tasks.push(configure(tcpType, { task_id: 200 + g, bk_biz_id: 2, period: `${periodS}s`, timeout: '10s', target_host_list: hostsOf(targets), target_port: targets.tcpPorts[g] }, { ...meta, dataid: 1009 }));
  }
  const runs: Record<RunStatus, number> = { ok: 0, error: 0, timeout: 0, cancelled: 0, skipped: 0 };
  let probes = 0;
  let ok = 0;
  const count = (o: TaskOutput): void => {
    if (o.kind !== 'event') return;
    probes++;
    if ((o.body as { error_code?: number }).error_code === 0) ok++;
  };
  const limiter = new ConcurrencyLimiter({ http: { perInstance: 100_000, perTask: 1_000 }, tcp: { perInstance: 100_000, perTask: 1_000 } });
  const state = new MemoryStateStore(systemClock);
  const host = { ip: '127.0.0.1', bkCloudId: 0, bkBizId: 2, hostname: 'bench', bkHostId: 1, bkAgentId: 'bench', nodeId: '0:127.0.0.1' };
  let inflight = 0;
  const env: RunEnv = {
    clock: systemClock,
    logger: silentLogger,
    limiter,
    context: (_task, signal, runLimiter): TaskContext => {
      inflight++;
      return {
      signal,
      now: () => Date.now(),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      emit: async (o) => count(o),
      acquire: (n) => runLimiter.acquire(n, signal),
      requestReload: () => undefined,
      state,
      host,
      global: { mode: 'daemon', gatherUpDataId: 0, disableNetlink: false, keepOneDimension: false, hostIdPath: '', include: '', paths: { proc: '/proc', sys: '/sys', rootfs: '/' }, raw: {} },
      agent: { version: 'bench', startedAtMs: Date.now(), reloadTotal: () => 0, runningTasks: () => ({}) },
      logger: silentLogger,
      };
    },
    observe: (_type, status) => {
      if (status !== 'skipped') inflight--;
      runs[status]++;
    },
  };
  // warm-up (JIT), not measured: one run of the first http and tcp task, as the baseline gets one round
  for (const entry of tasks.slice(0, 2)) {
    const task = entry.type.create(entry.config);
    await task.run(env.context(task, new AbortController().signal, limiter.forRun(entry.config.type, entry.config.ident)));
    inflight--;
  }
  probes = 0;
  ok = 0;
  const scheduler = new DaemonScheduler({ env, state, checkIntervalMs: 500, logger: silentLogger });
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  scheduler.start(tasks);
  await new Promise((r) => setTimeout(r, seconds * 1_000));
  // stop between runs, so that no run is cut short by the stop
  for (let waited = 0; inflight > 0 && waited < 30_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  await scheduler.stop(15_000);
  const wall = (performance.now() - t0) / 1_000;
  const cpu = process.cpuUsage(cpu0);
  const started = runs.ok + runs.error + runs.timeout + runs.cancelled;
  return {
    seconds: wall,
    cpuMs: (cpu.user + cpu.system) / 1_000,
    probes,
    ok,
    runs,
    expected: (started / (GROUPS * 2)) * GROUPS * targets.perGroup * 2,
    rssMb: process.resourceUsage().maxRSS / 1_024,
    peakSockets: socketBudget.peak,
  };
}

// ---------------------------------------------------------------------------------------------- baseline

async function baselineRound(targets: Targets): Promise<number> {
  let ok = 0;
  const jobs: Promise<void>[] = [];
  for (let g = 0; g < GROUPS; g++) {
    for (const url of urlsOf(targets, g)) {
      jobs.push(fetch(url).then(async (res) => {
        if ((await res.text()) === 'ok') ok++;
      }, () => undefined));
    }
    for (const host of hostsOf(targets)) {
      jobs.push(new Promise<void>((resolve) => {
        const s = net.connect({ host, port: targets.tcpPorts[g] as number });
        s.once('connect', () => {
          ok++;
          s.destroy();
          resolve();
        });
        s.once('error', () => resolve());
      }));
    }
  }
  await Promise.all(jobs);
  return ok;
}

// ---------------------------------------------------------------------------------------------- main

async function main(): Promise<void> {
  if (process.argv[2] === '--serve') {
    await serve(Number(process.argv[3]));
    return;
  }
  const seconds = Number(process.env.BENCH_PROBES_SECONDS ?? 120);
  const periodS = Number(process.env.BENCH_PROBES_PERIOD_S ?? 60);
  const total = Number(process.env.BENCH_PROBES_TARGETS ?? 1_000);
  if (!(total >= GROUPS && total % GROUPS === 0 && total / GROUPS <= 250)) throw new Error('BENCH_PROBES_TARGETS must be a multiple of 10, at most 2500');
  const { child, targets } = await startTargets(total / GROUPS);
  try {
    console.log(`targets: ${total} http URLs on ports ${targets.httpPorts.join(',')}; ${total} tcp targets (127.0.0.1-${targets.perGroup} x ports ${targets.tcpPorts.join(',')})`);
    // the agent first, so its peak RSS is its own; each side gets a warm-up round first
    const agent = await agentPhase(targets, seconds, periodS);
    await baselineRound(targets);
    const rounds = Math.max(1, Math.round(agent.probes / (total * 2)));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let baselineOk = 0;
    for (let i = 0; i < rounds; i++) baselineOk += await baselineRound(targets);
    const cpu = process.cpuUsage(cpu0);
    const baselineMs = (performance.now() - t0) / 1_000;
    const baselineProbes = rounds * total * 2;
    const ours = agent.cpuMs / Math.max(1, agent.probes);
    const theirs = (cpu.user + cpu.system) / 1_000 / baselineProbes;
    const onTime = agent.runs.timeout === 0 && agent.runs.skipped === 0 && agent.runs.error === 0 && agent.probes === agent.expected && agent.ok === agent.probes;
    console.log(`agent: ${fmt(agent.seconds)} s, runs ${JSON.stringify(agent.runs)}, probes ${agent.probes} (expected ${agent.expected}, ok ${agent.ok}), cpu ${fmt(agent.cpuMs)} ms, peak sockets ${agent.peakSockets}, peak rss ${fmt(agent.rssMb)} MB`);
    console.log(`baseline: ${rounds} rounds, ${baselineProbes} probes (ok ${baselineOk}) in ${fmt(baselineMs)} s, cpu ${fmt((cpu.user + cpu.system) / 1_000)} ms`);
    console.log(`every probe on time: ${onTime ? 'yes' : 'NO'}`);
    result('probes', {
      probes_per_s: agent.probes / agent.seconds,
      cpu_ms_per_probe: ours,
      baseline_cpu_ms_per_probe: theirs,
      ratio: theirs / ours,
      rss_mb: agent.rssMb,
    });
  } finally {
    child.stdin?.end();
    child.kill();
  }
}

await main();
