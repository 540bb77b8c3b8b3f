/**
 * `mode: check` in the service (reference §A2.2): every main-scheduler task runs once, the report is
 * printed (the lines `bkstream agent check` prints), long-running tasks are listed and not started, and the
 * agent's own process ends — in process (the report callback) and as a real process (`main.ts`).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { formatCheckReport, type CheckReport } from '../../services/agent/check-mode.ts';
import { createAgentService, loadAgentServiceConfig } from '../../services/agent/service.ts';
import { probeTypes, tempDir } from './kit.ts';

const ROOT = resolve(import.meta.dirname, '../..');

function checkConfig(dir: string, tasks: string): string {
  const main = join(dir, 'bkmonitorbeat.conf');
  mkdirSync(join(dir, 'conf.d'), { recursive: true });
  writeFileSync(main, `bkmonitorbeat:\n  node_id: 0\n  ip: 127.0.0.1\n  bk_cloud_id: 0\n  bk_biz_id: 2\n  mode: check\n  include: conf.d\n  host_id_path: ${join(dir, 'hostid')}\n${tasks}`);
  return main;
}

test('in the service: each main task once, the report handed over, long-running tasks listed and never started', async (t) => {
  const dir = tempDir(t);
  const main = checkConfig(dir, '  probe_task:\n    dataid: 1\n    tasks: [{ task_id: 1, period: 1m }, { task_id: 2, period: 1m }]\n  listener_task:\n    dataid: 2\n    tasks: [{ task_id: 3 }]\n  words_task:\n    dataid: 3\n    tasks: [{ task_id: 4 }]\n');
  const env = { AGENT_CONFIG: main, AGENT_STATE_DIR: join(dir, 'state'), AGENT_ADMIN_PORT: '0', KAFKA_BROKERS: '127.0.0.1:1', AGENT_SHUTDOWN_TIMEOUT_MS: '200', LOG_LEVEL: 'silent' };
  const { types, registry } = probeTypes();
  registry.behaviours['probe:2'] = async () => Promise.reject(new Error('broken'));
  let done: (r: CheckReport) => void = () => undefined;
  const reported = new Promise<CheckReport>((r) => (done = r));
  const service = await createAgentService(
    { env, logger: silentLogger, registry: createRegistry(), common: loadConfig(commonSpec, { env }) },
    loadAgentServiceConfig(env, types),
    { types, listenRestartDelayMs: 0, onCheckDone: (r) => done(r), sink: { start: async () => undefined, stop: async () => undefined, sendBatch: async () => Promise.reject(new Error('down')) } },
  );
  await service.start();
  t.teardown(() => service.stop());
  const report = await reported;
  t.deepEqual(report.results.map((r) => [r.entry.config.type, r.entry.config.taskId, r.status]), [['probe', 1, 'ok'], ['probe', 2, 'error'], ['listener', 3, 'not_run'], ['words', 4, 'not_run']]);
  t.is(report.results[0]?.outputs.length, 1, 'what the task emitted is in the report');
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(registry.created.map((c) => c.config.type).sort(), ['probe', 'probe'], 'the listener and the keyword task were never created');
  const { lines, failed } = formatCheckReport(report);
  t.is(failed, 1);
  t.is(lines.at(-1), '2 tasks run, 1 failed');
  t.true(lines.some((l) => l.startsWith('task    listener #3') && l.endsWith('not run in check mode')));
  t.is(service.agent.runningTasks().probe, 2);
});

test('as a process: `node services/agent/main.ts` with mode: check prints the report and exits 0', async (t) => {
  const dir = tempDir(t);
  const main = checkConfig(dir, '  selfstats_task:\n    dataid: 1100030\n    task_id: 88\n    period: 1m\n');
  const child = spawn(process.execPath, ['services/agent/main.ts'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, AGENT_CONFIG: main, AGENT_STATE_DIR: join(dir, 'state'), AGENT_ADMIN_PORT: '0', KAFKA_BROKERS: '127.0.0.1:1', AGENT_SHUTDOWN_TIMEOUT_MS: '300', LOG_LEVEL: 'error' },
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.resume();
  const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  clearTimeout(killer);
  t.is(code, 0, out);
  t.regex(out, /^task {4}selfstats #88 \(main:selfstats_task\): ok in [\d.]+ s, 1 output$/m);
  t.regex(out, /"eventType":"selfstats"/);
  t.regex(out, /^1 task run, 0 failed$/m);
});
