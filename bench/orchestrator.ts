/**
 * `npm run bench:orchestrator`: provisioning flows through the orchestrator against bkdata-sim.
 *
 * Two runs of the same flows (half tail sampling, half virtual metric), commands sent on flow.commands:
 * 1. baseline: BKData answers at once and never fails → the calls it takes are the minimum needed
 *    (`calls_min`);
 * 2. measured: every call takes 20 ms, 10 % fail with HTTP 503, and BKData is down for 10 s once a
 *    quarter of the flows are done → every flow must still finish; `calls` counts what reached BKData,
 *    `rejected_while_open` the calls the open breakers kept from it.
 * bkdata-sim runs in its own process (BKData is a remote dependency; in-process it would share the
 * orchestrator's event loop), driven through its admin API; each run has its own store and starts with
 * a reset sim. Ends with the RESULT line (services/orchestrator/README.md, "Benchmark").
 *
 * Environment: BENCH_FLOWS (default 1000), BENCH_OUTAGE_MS (10000), BENCH_LATENCY_MS (20),
 * BENCH_ERROR_RATE (0.1), KAFKA_BROKERS (else the local broker is started), DATABASE_URL (else PGlite in
 * memory).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { brokersOf, kafkaSettings } from '../services/cli/local-kafka.ts';
import { withBroker } from '../scripts/with-broker.ts';
import { bkdataSimService, createBkdataSim } from '../services/bkdata-sim/service.ts';
import { Bus, waitForBroker } from '../services/common/bus/index.ts';
import { codecFor } from '../services/common/avro/index.ts';
import { createLogger } from '../services/common/log.ts';
import { createRegistry, type Registry } from '../services/common/metrics.ts';
import { retry } from '../services/common/retry.ts';
import { result, rssMb } from './lib.ts';
import type { FlowCommand } from '../services/common/records.ts';
import { createStore } from '../services/common/store/index.ts';
import { topicName, type TopicKey } from '../services/common/topics.ts';
import { FAMILIES } from '../services/orchestrator/bkdata-client.ts';
import { isTerminal } from '../services/orchestrator/model.ts';
import { createApplication } from '../services/collector/applications.ts';
import { createOrchestrator, orchestratorService } from '../services/orchestrator/service.ts';
import { installWarningFilter } from '../services/common/process.ts';

installWarningFilter();

const FLOWS = Number(process.env.BENCH_FLOWS ?? 1000);
const OUTAGE_MS = Number(process.env.BENCH_OUTAGE_MS ?? 10_000);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 20);
const ERROR_RATE = Number(process.env.BENCH_ERROR_RATE ?? 0.1);
/** Breakers tuned for mass provisioning: a short window so an outage opens them while it lasts. */
const BREAKER_WINDOW_MS = 5_000;
const BREAKER_RESET_MS = 3_000;
const logger = createLogger({ level: 'error' });

interface RunResult {
  ok: number;
  failed: Record<string, number>;
  calls: number;
  writes: number;
  byOutcome: Record<string, number>;
  rejected: number;
  wallS: number;
  outage?: { startedAfterS: number; callsDuring: number };
}

function commands(runId: string): FlowCommand[] {
  return Array.from({ length: FLOWS }, (_, i): FlowCommand => {
    const tail = i % 2 === 0;
    return {
      command_id: `${runId}-${i}`,
      action: 'create_or_update',
      flow_type: tail ? 'tail_sampling' : 'virtual_metric',
      bk_biz_id: 2 + (i % 7),
      app_name: `bench-app-${i}`,
      config: JSON.stringify(tail ? { data_id: 3_000_000 + i, tail_percentage: 10 + (i % 50) } : { data_id: 4_000_000 + i }),
      operator: 'bench',
      requested_at: Date.now(),
    };
  });
}

async function metricSum(registry: Registry, name: string, filter: (labels: Record<string, string | number>) => boolean): Promise<number> {
  const m = registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values.filter((v) => filter(v.labels as Record<string, string | number>)).reduce((n, v) => n + v.value, 0);
}

/** The sim's admin API. */
class SimControl {
  readonly url: string;
  constructor(url: string) {
    this.url = url.replace(/\/$/, '');
  }
  /** One admin call, tried again on connection errors (a keep-alive socket closed under it). */
  async admin(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    return retry(() => this.#admin(method, path, body), { retries: 3, retryOn: (err) => err instanceof TypeError });
  }
  async #admin(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.url}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  }
  async calls(): Promise<{ total: number; writes: number; by_outcome: Record<string, number> }> {
    return (await this.admin('GET', '/admin/calls')) as unknown as { total: number; writes: number; by_outcome: Record<string, number> };
  }
}

/** Starts `node bench/orchestrator.ts --sim` and waits for the URL it prints. */
async function startSimProcess(): Promise<{ child: ChildProcess; sim: SimControl }> {
  const child = spawn(process.execPath, [import.meta.filename, '--sim'], {
    env: { ...process.env, BKDATA_SIM_PORT: '0', BKDATA_SIM_CLEAN_START_DELAY_MS: '0', BKDATA_SIM_CALL_LOG_MAX: '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  for await (const line of lines) {
    const m = /^SIM_URL (\S+)$/.exec(line);
    if (m) return { child, sim: new SimControl(m[1] as string) };
  }
  throw new Error('bkdata-sim process exited before it listened');
}

async function run(name: string, bus: Bus, sim: SimControl, faults: Record<string, unknown>, outage: boolean): Promise<RunResult> {
  const prefix = `bench-orch-${randomBytes(4).toString('hex')}`;
  const admin = bus.admin();
  await admin.start();
  const topics = (['flowCommands', 'flowStatus', 'dlq'] as TopicKey[]).map((k) => topicName(prefix, k));
  await admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: 3, retentionMs: 3_600_000 })));

  const store = createStore({ databaseUrl: process.env.DATABASE_URL, dataDir: 'memory://', logger });
  await store.start();
  await store.migrate();
  if (process.env.DATABASE_URL) await store.exec('TRUNCATE bkdata_flow, bkdata_flow_command, bkdata_flow_outbox, apm_application CASCADE');
  // Flows belong to registered applications (the orchestrator refuses others): register them first, as the
  // collector's registry does, without flow switches (the commands below are the flows).
  const cmds = commands(prefix);
  for (const c of cmds) await createApplication(store, { bkBizId: c.bk_biz_id, appName: c.app_name });
  const registry = createRegistry();
  await sim.admin('POST', '/admin/reset');
  await sim.admin('DELETE', '/admin/outages');
  await sim.admin('PUT', '/admin/faults', { latency_ms: 0, error_rate: 0, ...faults });
  const config = orchestratorService.config({
    TOPIC_PREFIX: prefix,
    BKDATA_API_URL: sim.url,
    ORCH_HTTP_PORT: '0',
    ORCH_GRPC_PORT: '0',
    ORCH_INSTANCE_ID: `bench-${name}`,
    ORCH_CONSUMER_GROUP: `${prefix}-orchestrator`,
    ORCH_MAX_CONCURRENT_FLOWS: '64',
    ORCH_BREAKER_RESET_TIMEOUT_MS: String(BREAKER_RESET_MS),
    ORCH_BREAKER_WINDOW_MS: String(BREAKER_WINDOW_MS),
  });
  const orch = createOrchestrator({ store, bus, logger, registry }, config);
  await orch.start();

  const producer = bus.producer();
  await producer.start();
  const codec = codecFor('FlowCommand');
  const started = performance.now();
  await producer.send(topicName(prefix, 'flowCommands'), cmds.map((c) => ({ key: `${c.bk_biz_id}:${c.app_name}:${c.flow_type}`, value: codec.encode(c) })));

  let outageInfo: RunResult['outage'];
  let outageCallsBefore = 0;
  let lastReport = 0;
  for (;;) {
    const counts = await orch.flows.countByStatus();
    const done = Object.entries(counts).filter(([s]) => isTerminal(s)).reduce((n, [, c]) => n + c, 0);
    const elapsed = (performance.now() - started) / 1000;
    if (outage && !outageInfo && done >= FLOWS / 4) {
      outageCallsBefore = (await sim.calls()).by_outcome.outage ?? 0;
      await sim.admin('POST', '/admin/outages', { duration_ms: OUTAGE_MS });
      outageInfo = { startedAfterS: elapsed, callsDuring: 0 };
      console.log(`  [${name}] ${elapsed.toFixed(1)} s: ${done}/${FLOWS} done — BKData down for ${OUTAGE_MS / 1000} s`);
    }
    if (elapsed - lastReport >= 5) {
      lastReport = elapsed;
      const states = FAMILIES.map((f) => `${f}:${orch.breakers[f].state()}`).join(' ');
      console.log(`  [${name}] ${elapsed.toFixed(1)} s: ${done}/${FLOWS} done, ${(await sim.calls()).total} calls, statuses ${JSON.stringify(counts)}, breakers ${states}`);
    }
    if (done >= FLOWS) break;
    if (elapsed > 1_800) throw new Error(`${name}: flows did not finish within 30 minutes: ${JSON.stringify(counts)}`);
    await sleep(200);
  }
  const wallS = (performance.now() - started) / 1000;
  const counts = await orch.flows.countByStatus();
  const stats = await sim.calls();
  if (outageInfo) outageInfo.callsDuring = (stats.by_outcome.outage ?? 0) - outageCallsBefore;
  const rejected = await metricSum(registry, 'bkstream_breaker_calls_total', (l) => l.result === 'rejected');
  for (const f of (await orch.flows.list({ limit: 1000 })).filter((x) => x.status !== 'success').slice(0, 5)) {
    console.log(`  [${name}] not ok: ${f.app_name} ${f.status} at ${f.step}: ${f.message}`);
    for (const st of (await orch.flows.steps(f.id, 20)).reverse()) console.log(`      ${st.step} ${st.status} #${st.attempt} ${st.owner} ${st.message.slice(0, 120)}`);
  }
  await producer.stop();
  await orch.stop();
  await store.stop();
  await admin.deleteTopics(topics).catch(() => undefined);
  await admin.deleteGroup(`${prefix}-orchestrator`);
  await admin.stop();
  const failed = Object.fromEntries(Object.entries(counts).filter(([s]) => s !== 'success'));
  return { ok: counts.success ?? 0, failed, calls: stats.total, writes: stats.writes, byOutcome: stats.by_outcome, rejected, wallS, ...(outageInfo ? { outage: outageInfo } : {}) };
}

async function main(env: NodeJS.ProcessEnv): Promise<Record<string, number>> {
  const bus = new Bus({ brokers: (env.KAFKA_BROKERS ?? brokersOf(kafkaSettings()).join(',')).split(','), clientId: 'bench-orchestrator', logger });
  await waitForBroker(bus, 30_000, { coordinator: true });
  console.log(`orchestrator bench: ${FLOWS} flows (half tail sampling, half virtual metric), store ${env.DATABASE_URL ? 'PostgreSQL' : 'PGlite (memory)'}`);

  const { child, sim } = await startSimProcess();
  try {
    return await measure(bus, sim);
  } finally {
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

async function measure(bus: Bus, sim: SimControl): Promise<Record<string, number>> {
  console.log('baseline: no latency, no errors');
  const rssBefore = rssMb();
  const base = await run('baseline', bus, sim, {}, false);
  console.log(`  baseline: ${base.ok}/${FLOWS} ok in ${base.wallS.toFixed(1)} s, ${base.calls} calls (${(base.calls / FLOWS).toFixed(2)} per flow), ${base.writes} writes`);

  console.log(`measured: ${LATENCY_MS} ms latency, ${ERROR_RATE * 100} % HTTP 503, one ${OUTAGE_MS / 1000} s outage (breakers: ${BREAKER_WINDOW_MS / 1000} s window, ${BREAKER_RESET_MS / 1000} s to half-open; 64 flows at a time)`);
  const measured = await run('measured', bus, sim, { latency_ms: LATENCY_MS, error_rate: ERROR_RATE, error_mode: 'http_5xx', outage_mode: 'reset' }, true);
  const rss = rssMb();
  console.log(`  measured: ${measured.ok}/${FLOWS} ok in ${measured.wallS.toFixed(1)} s, ${measured.calls} calls, ${measured.writes} writes, outcomes ${JSON.stringify(measured.byOutcome)}`);
  if (Object.keys(measured.failed).length > 0) console.log(`  not ok: ${JSON.stringify(measured.failed)}`);
  if (measured.outage) console.log(`  outage from ${measured.outage.startedAfterS.toFixed(1)} s: ${measured.outage.callsDuring} calls reached BKData while it was down; ${measured.rejected} calls rejected by open breakers`);
  const heapMb = process.memoryUsage().heapUsed / 2 ** 20;
  console.log(`  rss ${rss.toFixed(0)} MB, heap ${heapMb.toFixed(0)} MB (rss ${rssBefore.toFixed(0)} MB before the runs${process.env.DATABASE_URL ? '' : '; the in-memory PGlite databases of both runs live in this process'})`);

  return {
    flows_total: FLOWS,
    flows_ok: measured.ok,
    calls: measured.calls,
    calls_min: base.calls,
    calls_ratio: measured.calls / base.calls,
    rejected_while_open: measured.rejected,
    wall_s: Math.round(measured.wallS * 10) / 10,
  };
}

/** `--sim`: the bkdata-sim process of the bench (memory only); prints its URL, stops on SIGTERM. */
async function simProcess(): Promise<void> {
  const sim = createBkdataSim({ config: bkdataSimService.config(process.env), logger, registry: createRegistry() });
  await sim.start();
  console.log(`SIM_URL ${sim.url()}`);
  process.once('SIGTERM', () => {
    void sim.stop().then(() => process.exit(0));
  });
}

if (process.argv.includes('--sim')) {
  await simProcess();
} else {
  // The RESULT line comes last: after the broker this bench may have started is stopped again.
  withBroker((env) => main(env)).then(
    (values) => {
      result('orchestrator', values);
      process.exit(0);
    },
    (err: unknown) => {
      console.error(`bench:orchestrator: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`, (err as { cause?: unknown }).cause ?? "");
      process.exit(1);
    },
  );
}
