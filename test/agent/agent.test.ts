/**
 * The agent core without a broker: lifecycle (stop without start; start → a sample → stop), reload by
 * files (SIGHUP, a task asking), the heartbeat document and its ticker, gather-up and selfstats records,
 * the hostid file, and the state store.
 */
import test from 'ava';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { Agent } from '../../services/agent/agent.ts';
import { ManualClock, settle } from '../../services/agent/clock.ts';
import { HostIdentitySource, parseHostIdFile } from '../../services/agent/host-identity.ts';
import { parseMainConfig } from '../../services/agent/main-config.ts';
import { createAgentService, loadAgentServiceConfig } from '../../services/agent/service.ts';
import { FileStateStore } from '../../services/agent/state-store.ts';
import { probeResources } from '../../services/agent/probe/budget.ts';
import type { EventOutput, HostTopology, MetricsOutput, ProbeResources, TaskOutput } from '../../services/agent/task.ts';
import { Codes, gatherUpOutput } from '../../services/agent/tasks/gather-up.ts';
import { globalHeartbeat, Heartbeat } from '../../services/agent/tasks/heartbeat.ts';
import { selfstatsOutput } from '../../services/agent/tasks/selfstats.ts';
import { probeTypes, tempDir, testHost, testSelf } from './kit.ts';

const T0 = Date.UTC(2024, 0, 1, 0, 0, 0);

function writeMain(dir: string, extra = ''): string {
  const main = join(dir, 'bkmonitorbeat.conf');
  mkdirSync(join(dir, 'conf.d'), { recursive: true });
  writeFileSync(main, `
bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  include: conf.d
  host_id_path: ${join(dir, 'hostid')}
  heart_beat:
    global_dataid: 1100001
    period: 60s
${extra}`);
  return main;
}

function agentFor(dir: string, clock: ManualClock, outputs: TaskOutput[], types = probeTypes()) {
  const agent = new Agent({
    configFile: join(dir, 'bkmonitorbeat.conf'),
    types: types.types,
    clock,
    logger: silentLogger,
    state: new FileStateStore({ dir: join(dir, 'state'), logger: silentLogger, clock }),
    emit: async (o) => {
      outputs.push(o);
    },
    paths: { proc: '/proc', sys: '/sys', rootfs: '/' },
    version: 'test',
    statusCounters: () => ({ success: 3, error: 1, fail: 2 }),
  });
  return { agent, registry: types.registry };
}

test('the service: stop without start is safe; start with a bad main file fails listing every problem; a good one starts and stops', async (t) => {
  const dir = tempDir(t);
  const main = writeMain(dir);
  const env = { AGENT_CONFIG: main, AGENT_STATE_DIR: join(dir, 'state'), AGENT_ADMIN_PORT: '0', KAFKA_BROKERS: '127.0.0.1:1', AGENT_SHUTDOWN_TIMEOUT_MS: '200', LOG_LEVEL: 'silent' };
  const deps = { env, logger: silentLogger, registry: createRegistry(), common: loadConfig(commonSpec, { env }) };
  const service = await createAgentService(deps, loadAgentServiceConfig(env), { sink: { start: async () => undefined, stop: async () => undefined, sendBatch: async () => Promise.reject(new Error('down')) } });
  await service.stop();
  t.pass('stop without start');

  const bad = { ...env, AGENT_CONFIG: join(dir, 'missing.conf'), AGENT_SPOOL_MAX_BYTES: '10', AGENT_ADMIN_PORT: 'x' };
  const err = t.throws(() => loadAgentServiceConfig(bad), { instanceOf: ConfigError });
  t.deepEqual(err?.problems.map((p) => p.key).sort(), ['AGENT_ADMIN_PORT', 'AGENT_CONFIG', 'AGENT_SPOOL_MAX_BYTES']);

  t.like(loadAgentServiceConfig(env), { probeMaxSockets: 1024, probeMaxPingProcesses: 64, pingPath: 'ping' }, 'probe defaults');
  t.like(loadAgentServiceConfig({ ...env, AGENT_PROBE_MAX_SOCKETS: '64', AGENT_PROBE_MAX_PING_PROCESSES: '4', AGENT_PING_PATH: process.execPath }), { probeMaxSockets: 64, probeMaxPingProcesses: 4, pingPath: process.execPath });
  const probeErr = t.throws(() => loadAgentServiceConfig({ ...env, AGENT_PROBE_MAX_SOCKETS: '0', AGENT_PROBE_MAX_PING_PROCESSES: 'lots' }), { instanceOf: ConfigError });
  t.deepEqual(probeErr?.problems.map((p) => p.key).sort(), ['AGENT_PROBE_MAX_PING_PROCESSES', 'AGENT_PROBE_MAX_SOCKETS'], 'bad probe settings are refused, none silently replaced by its default');
  for (const path of [join(dir, 'no-such-ping'), dir]) {
    const pathErr = t.throws(() => loadAgentServiceConfig({ ...env, AGENT_PING_PATH: path }), { instanceOf: ConfigError });
    t.deepEqual(pathErr?.problems.map((p) => p.key), ['AGENT_PING_PATH'], `${path}: a ping path must be an executable file`);
  }
  t.like(loadAgentServiceConfig({ ...env, AGENT_PING_PATH: 'no-such-ping-on-path' }), { pingPath: 'no-such-ping-on-path' }, 'a bare name is looked up when a ping task runs');

  writeFileSync(join(dir, 'conf.d', 'broken.conf'), 'type: probe\nname: [\n');
  await service.start();
  const health = await fetch(`http://127.0.0.1:${service.adminPort()}/healthz`);
  t.is(health.status, 200, 'healthy while Kafka is unreachable: the agent spools');
  const metrics = await (await fetch(`http://127.0.0.1:${service.adminPort()}/metrics`)).text();
  t.regex(metrics, /bkstream_agent_child_configs\{status="skipped"[^}]*\} 1/, 'the skipped child file is counted');
  await service.stop();
  await service.stop();
  t.true(service.spool.stats().pending >= 1, 'the heartbeat stayed in the spool');
});

test('agent: every run context carries the agent\'s probe resources and the hostid file\'s topology as it is now', async (t) => {
  const dir = tempDir(t);
  writeMain(dir, '  probe_task:\n    dataid: 1\n    tasks: [{ task_id: 1, period: 10s }]\n');
  writeFileSync(join(dir, 'hostid'), JSON.stringify({ bk_host_innerip: '10.0.0.5', bk_cloud_id: 3, associations: { 1: { bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8 } } }));
  const clock = new ManualClock(T0);
  const types = probeTypes();
  const probes = probeResources({ maxSockets: 3, maxPingProcesses: 2, pingPath: '/usr/bin/ping' });
  const seen: { topology: HostTopology | undefined; probes: ProbeResources | undefined }[] = [];
  types.registry.behaviours.probe = async (ctx) => {
    seen.push({ topology: ctx.topology?.(), probes: ctx.probes });
  };
  const agent = new Agent({
    configFile: join(dir, 'bkmonitorbeat.conf'),
    types: types.types,
    clock,
    logger: silentLogger,
    state: new FileStateStore({ dir: join(dir, 'state'), logger: silentLogger, clock }),
    emit: async () => undefined,
    paths: { proc: '/proc', sys: '/sys', rootfs: '/' },
    version: 'test',
    statusCounters: () => ({ success: 0, error: 0, fail: 0 }),
    probes,
  });
  await agent.start();
  t.teardown(() => agent.stop(1_000));
  await clock.advance(40_000);
  await settle();
  t.true(seen.length >= 1);
  t.is(seen[0]?.probes, probes);
  t.deepEqual(seen[0]?.topology, { innerIp: '10.0.0.5', cloudId: '3', links: [{ bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8 }] });
  writeFileSync(join(dir, 'hostid'), JSON.stringify({ bk_host_innerip: '10.0.0.6', associations: {} }));
  const before = seen.length;
  // The hostid poll reads the file with real I/O (stat, read) between the manual clock's ticks: on a loaded
  // machine one settle() is not always enough, so the clock moves on until a run sees the new file.
  for (let i = 0; i < 100 && seen.at(-1)?.topology?.innerIp !== '10.0.0.6'; i++) {
    await clock.advance(10_000);
    await settle();
    await new Promise((r) => setTimeout(r, 20));
  }
  t.true(seen.length > before);
  t.deepEqual(seen.at(-1)?.topology, { innerIp: '10.0.0.6', cloudId: '0', links: [] }, 'a changed hostid file reaches the runs');
});

test('agent: start routes tasks; SIGHUP-style reload applies edited child files by identity; a task can ask for a reload', async (t) => {
  const dir = tempDir(t);
  writeMain(dir, '  probe_task:\n    dataid: 1\n    tasks: [{ task_id: 1, period: 1m }]\n');
  writeFileSync(join(dir, 'conf.d', 'a.conf'), 'type: probe\nname: a\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 2, period: 1m }]\n');
  const clock = new ManualClock(T0);
  const outputs: TaskOutput[] = [];
  const { agent, registry } = agentFor(dir, clock, outputs);
  let asked = false;
  registry.behaviours['probe:2'] = async (ctx) => {
    if (!asked) {
      asked = true;
      writeFileSync(join(dir, 'conf.d', 'b.conf'), 'type: probe\nname: b\nversion: "1"\ndataid: 1\ntasks: [{ task_id: 3, period: 1m }]\n');
      ctx.requestReload('wrote b.conf');
    }
  };
  await agent.start();
  t.deepEqual(agent.runningTasks(), { probe: 2 });
  await clock.advance(5_000);
  await settle();
  t.deepEqual(agent.runningTasks(), { probe: 3 }, 'the task\'s reload request added b.conf');
  t.is(agent.self.reloadTotal(), 1);

  writeFileSync(join(dir, 'conf.d', 'a.conf'), 'type: probe\nname: a\nversion: "2"\ndataid: 1\ntasks: [{ task_id: 2, period: 1m }]\n');
  const created = registry.created.length;
  const r = await agent.reload('SIGHUP');
  t.true(r.ok);
  t.is(registry.created.length, created + 1, 'only the edited file\'s task is rebuilt');

  writeFileSync(join(dir, 'bkmonitorbeat.conf'), 'bkmonitorbeat:\n  mode: [\n');
  const refused = await agent.reload('SIGHUP');
  t.false(refused.ok);
  t.deepEqual(agent.runningTasks(), { probe: 3 }, 'a broken main file keeps the running tasks');
  t.is(agent.self.reloadTotal(), 2);

  const hb = outputs.find((o) => o.eventType === 'heartbeat') as EventOutput | undefined;
  t.truthy(hb, 'the heartbeat went out at start');
  await agent.stop(1_000);
});

test('heartbeat: the global document, at start and every period; error_tasks counts skipped child files', async (t) => {
  const doc = globalHeartbeat({ dataId: 1100001, bkHostId: 12, version: '0.1.0', startedAtMs: T0, tasks: 5, configLoadAtMs: T0 + 1_000, published: 7, errors: 2, configErrorCode: 0, errorTasks: 1 }, T0 + 61_500);
  t.deepEqual(doc.body, {
    time: (T0 + 61_500) / 1_000 - 0.5,
    dataid: 1100001,
    dimensions: { status: 0, version: '0.1.0', bk_host_id: '12' },
    metrics: { uptime: 61, tasks: 5, config_load_at: (T0 + 1_000) / 1_000, published: 7, errors: 2, config_error_code: 0, error_tasks: 1 },
  });
  t.false(doc.beaterLayer);

  const clock = new ManualClock(T0);
  const sent: EventOutput[] = [];
  const hb = new Heartbeat({ clock, periodMs: 60_000, publishImmediately: true, logger: silentLogger, emit: async (o) => void sent.push(o), figures: () => ({ dataId: 1100001, bkHostId: 0, version: 'v', startedAtMs: T0, tasks: 0, configLoadAtMs: T0, published: 0, errors: 0, configErrorCode: 111, errorTasks: 0 }) });
  hb.start();
  await clock.advance(180_000);
  hb.stop();
  t.deepEqual(sent.map((o) => o.timestampMs), [T0, T0 + 60_000, T0 + 120_000, T0 + 180_000]);

  const dir = tempDir(t);
  writeMain(dir);
  writeFileSync(join(dir, 'conf.d', 'bad.conf'), 'type: nosuch\n');
  const outputs: TaskOutput[] = [];
  const { agent } = agentFor(dir, new ManualClock(T0), outputs);
  await agent.start();
  await settle();
  const first = outputs.find((o) => o.eventType === 'heartbeat') as EventOutput;
  t.like(first.body.metrics, { error_tasks: 1, config_error_code: 0, published: 3, errors: 2 });
  await agent.stop(1_000);
});

test('gather-up: the reference dimensions, label keys merged, custom ones last; nothing without a data id', (t) => {
  const task = { type: 'script', taskId: 7, bkBizId: 2, dataId: 1, periodMs: 60_000, timeoutMs: 3_000, availableDurationMs: 3_000, labels: [{ bk_target_ip: '10.0.0.1' }], tags: {}, ident: 'x' };
  const out = gatherUpOutput(1100017, task, Codes.ScriptRunTimeout, T0, { value: 0, dimensions: { extra: 'y' } }) as MetricsOutput;
  t.deepEqual(out.records, [{ timestamp: T0, metrics: { bkm_gather_up: 0 }, dimensions: { task_id: '7', bk_collect_type: 'script', bk_biz_id: '2', bkm_up_code: '2304', bkm_up_code_name: 'ScriptRunTimeout', bk_target_ip: '10.0.0.1', extra: 'y' } }]);
  t.is(out.dataId, 1100017);
  t.is(gatherUpOutput(0, task, Codes.OK, T0), undefined);
});

test('selfstats: process series under the reference names, the bkmonitorbeat_* series, host dimensions', async (t) => {
  const out = await selfstatsOutput(
    { type: 'selfstats', taskId: 88, bkBizId: 0, dataId: 1100030, periodMs: 60_000, timeoutMs: 0, availableDurationMs: 0, labels: [], tags: {}, ident: 'selfstats' },
    { now: () => T0, host: testHost, agent: { ...testSelf, startedAtMs: T0 - 5_000, runningTasks: () => ({ basereport: 1, http: 3 }) } },
    { count: 2, sumSeconds: 0.004, quantiles: () => [[0, 0.001], [1, 0.003]] },
  );
  t.is(out.target, 'selfstats');
  const byName = (n: string) => out.records.filter((r) => n in r.metrics);
  t.true((byName('process_cpu_seconds_total')[0]?.metrics.process_cpu_seconds_total ?? 0) > 0);
  t.true((byName('process_resident_memory_bytes')[0]?.metrics.process_resident_memory_bytes ?? 0) > 1e6);
  t.true((byName('process_open_fds')[0]?.metrics.process_open_fds ?? 0) > 0);
  t.is(byName('bkmonitorbeat_uptime')[0]?.metrics.bkmonitorbeat_uptime, 5);
  t.deepEqual(byName('bkmonitorbeat_running_tasks').map((r) => [r.dimensions.task_type, r.metrics.bkmonitorbeat_running_tasks]), [['basereport', 1], ['http', 3]]);
  t.deepEqual(byName('go_gc_duration_seconds').map((r) => r.dimensions.quantile), ['0', '1']);
  t.deepEqual(byName('go_gc_duration_seconds_sum')[0]?.metrics, { go_gc_duration_seconds_sum: 0.004, go_gc_duration_seconds_count: 2 });
  t.like(out.records[0]?.dimensions, { bk_target_ip: '10.0.0.1', bk_target_cloud_id: '0', bk_agent_id: 'agent-7', bk_host_id: '7', bk_biz_id: '2', node_id: '0:10.0.0.1', hostname: 'test-host' });
});

test('host identity: the hostid file wins over the main file; AGENT_HOST_IP over the main file only; a missing file keeps the configured identity', async (t) => {
  const dir = tempDir(t);
  const hostid = join(dir, 'hostid');
  const problems: { key: string; message: string }[] = [];
  const main = parseMainConfig(`bkmonitorbeat:\n  node_id: 0\n  ip: 127.0.0.1\n  bk_cloud_id: 0\n  bk_biz_id: 2\n  host_id_path: ${hostid}\n`, join(dir, 'm.conf'), problems).config;
  if (!main) throw new Error('no config');
  const clock = new ManualClock(T0);
  const src = new HostIdentitySource({ config: main, logger: silentLogger, clock, ipOverride: '10.1.1.1', hostname: 'h' });
  await src.start();
  t.like(src.current(), { ip: '10.1.1.1', bkCloudId: 0, bkBizId: 2, bkHostId: 0, nodeId: '0:10.1.1.1', hostname: 'h' });
  t.is(src.cmdbLevel(), undefined);
  t.is(src.topology(), undefined, 'no hostid file: no topology');
  writeFileSync(hostid, JSON.stringify({
    bk_host_innerip: '10.0.0.5,10.0.0.6', bk_cloud_id: 3, bk_host_id: 42, bk_agent_id: '0200000000abc', dataid: 1500,
    associations: { 1: { bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8, layer: { bk_obj_id: 'room', bk_inst_id: 4, child: { bk_obj_id: 'rack', bk_inst_id: 2 } } } },
  }));
  await clock.advance(10_000);
  await settle();
  t.like(src.current(), { ip: '10.0.0.5', bkCloudId: 3, bkBizId: 9, bkHostId: 42, bkAgentId: '0200000000abc', nodeId: '3:10.0.0.5' });
  t.deepEqual(src.cmdbLevel(), [{ bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8, room: 4, rack: 2 }]);
  t.deepEqual(src.topology(), { innerIp: '10.0.0.5', cloudId: '3', links: [{ bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8, room: 4, rack: 2 }] });
  t.is(src.topology(), src.topology(), 'the same object until the file changes');
  t.is(src.staticDataId(), 1500);
  src.stop();
  t.throws(() => parseHostIdFile('[1,2]'));
  const mustExist = parseMainConfig(`bkmonitorbeat:\n  node_id: 0\n  ip: 127.0.0.1\n  bk_cloud_id: 0\n  bk_biz_id: 2\n  must_host_id_exist: true\n  host_id_path: ${join(dir, 'none')}\n`, join(dir, 'm.conf'), problems).config;
  if (!mustExist) throw new Error('no config');
  await t.throwsAsync(new HostIdentitySource({ config: mustExist, logger: silentLogger, clock }).start(), { message: /must_host_id_exist/ });
});

test('state store: values with TTL survive a restart through the file; a corrupt file starts empty and is kept aside', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock(T0);
  const s1 = new FileStateStore({ dir, logger: silentLogger, clock, flushDelayMs: 1_000 });
  await s1.start();
  s1.set('a', '1');
  s1.set('b', '2', 5_000);
  s1.delete('missing');
  await clock.advance(1_000);
  await s1.flush();
  t.deepEqual(Object.keys(JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as object).sort(), ['a', 'b']);
  await s1.stop();
  const s2 = new FileStateStore({ dir, logger: silentLogger, clock });
  await s2.start();
  t.is(s2.get('a'), '1');
  t.is(s2.get('b'), '2');
  await clock.advance(5_000);
  t.is(s2.get('b'), undefined, 'expired');
  writeFileSync(join(dir, 'state.json'), '{"a": ');
  const s3 = new FileStateStore({ dir, logger: silentLogger, clock });
  await s3.start();
  t.is(s3.get('a'), undefined);
  t.is(readFileSync(join(dir, 'state.json.corrupt'), 'utf8'), '{"a": ');
});
