/**
 * The agent service end to end against the real broker, started with the example configuration (periods
 * shortened to 10 s so the test does not wait minutes): what it publishes decodes from the topics with the
 * reference's documents and the agent's envelope; the admin port serves /healthz, /metrics and reloads.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bearer } from '../common/auth-kit.ts';
import { brokers, testBus, uniqueName, waitFor } from '../helpers/kafka.ts';
import { agentTopics, exampleConfig, readAgentTopics, startAgent } from './service-kit.ts';
import { tempDir } from './kit.ts';

test('the agent with the example config publishes basereport, static, process, heartbeat and selfstats records to Kafka, serves its admin port and reloads', async (t) => {
  t.timeout(180_000);
  const prefix = uniqueName('agent-e2e');
  const bus = testBus();
  await agentTopics(t, bus, prefix);
  const { main, dir } = exampleConfig(t, { periodSeconds: 10 });
  const read = await readAgentTopics(t, bus, prefix);
  const agent = await startAgent(t, { main, brokers: brokers(), prefix, stateDir: tempDir(t), env: { AGENT_HOST_IP: '10.9.8.7' } });
  const { service } = agent;

  // The heartbeat goes out at start (publish_immediately).
  const hb = await waitFor('the heartbeat', () => read.events.find((e) => e.value.event_type === 'heartbeat'), 60_000);
  t.is(hb.value.data_id, 1100001);
  t.is(hb.key, `2:1100001`);
  t.like(hb.value.agent, { ip: '10.9.8.7', bk_cloud_id: 0 });
  const dims = hb.body.dimensions as Record<string, unknown>;
  const hbMetrics = hb.body.metrics as Record<string, number>;
  t.is(dims.status, 0);
  t.is(dims.bk_host_id, '0');
  t.is(hbMetrics.tasks, service.agent.loaded.tasks.length);
  t.is(hbMetrics.config_error_code, 0, 'an include directory is configured');
  t.is(hbMetrics.error_tasks, service.agent.loaded.children.filter((c) => c.status !== 'loaded').length);
  t.like(hb.body, { dataid: 1100001, ip: '10.9.8.7', cloudid: 0, bizid: 2, bk_biz_id: 2, gseindex: 1 });
  t.false('node_id' in hb.body, 'the heartbeat bypasses the beater layer');
  t.is(hb.run, service.runId);
  t.true(hb.seq >= 1);

  // selfstats: time series with the host dimensions, target selfstats.
  const self = await waitFor('selfstats', () => read.metrics.find((m) => m.value.target === 'selfstats'), 60_000);
  t.is(self.value.data_id, 1100030);
  t.is(self.key, '2:1100030:selfstats');
  const names = new Set(self.value.records.flatMap((r) => Object.keys(r.metrics)));
  for (const n of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_open_fds', 'go_threads', 'bkmonitorbeat_uptime', 'bkmonitorbeat_version', 'bkmonitorbeat_reload_total', 'bkmonitorbeat_running_tasks']) {
    t.true(names.has(n), n);
  }
  const cpu = self.value.records.find((r) => 'process_cpu_seconds_total' in r.metrics);
  t.like(cpu?.dimensions, { bk_target_ip: '10.9.8.7', bk_target_cloud_id: '0', node_id: '0:10.9.8.7', bk_biz_id: '2' });

  // Host documents: static at once, processbeat perf and port, basereport after its warm-up run.
  const stat = await waitFor('static', () => read.events.find((e) => e.value.event_type === 'static'), 60_000);
  t.is(stat.value.data_id, 1100010);
  const staticData = stat.body.data as Record<string, unknown>;
  t.like(staticData, { apiVer: 'v1.0', oper: 'add' });
  for (const k of ['cpu', 'mem', 'disk', 'net', 'system']) t.true(k in staticData, `static data.${k}`);
  t.like(stat.body, { type: 'static', dataid: 1100010, node_id: '0:10.9.8.7', ip: '10.9.8.7' });
  t.false('bk_cmdb_level' in stat.body);

  const perf = await waitFor('processbeat perf', () => read.events.find((e) => e.value.event_type === 'processbeat' && e.value.data_id === 1007), 60_000);
  const perfList = (perf.body.data as { perf: Record<string, unknown>[] }).perf;
  t.true(perfList.some((p) => p.name === 'node' && p.exists === true), 'this node process matched by name');
  t.like(perf.body, { type: 'processbeat', dataid: 1007 });
  const port = await waitFor('processbeat port', () => read.events.find((e) => e.value.event_type === 'processbeat' && e.value.data_id === 1013), 60_000);
  t.true((port.body.data as { processes: { name: string }[] }).processes.some((p) => p.name === 'node'));

  const base = await waitFor('basereport', () => read.events.find((e) => e.value.event_type === 'basereport'), 90_000);
  t.is(base.value.data_id, 1001);
  t.is(base.key, '2:1001');
  const baseData = base.body.data as Record<string, unknown>;
  for (const k of ['cpu', 'mem', 'net', 'disk', 'load', 'system', 'env']) t.true(k in baseData, `basereport data.${k}`);
  t.like(base.body, { type: 'basereport', dataid: 1001 });

  // Admin port: health, metrics, reload.
  const health = await fetch(`${agent.adminUrl}/healthz`);
  t.is(health.status, 200);
  t.like(await health.json(), { status: 'ok', checks: { mode: 'daemon', kafka: 'up' } });
  const metricsText = await (await fetch(`${agent.adminUrl}/metrics`)).text();
  t.regex(metricsText, /bkstream_task_run_total\{[^}]*task_type="selfstats"[^}]*status="ok"[^}]*\} [1-9]/);
  t.regex(metricsText, /bkstream_agent_records_published_total\{[^}]*kind="events"[^}]*\} [1-9]/);
  t.regex(metricsText, /bkstream_agent_spool_bytes/);
  t.regex(metricsText, /bkstream_agent_queue_depth/);

  t.is((await fetch(`${agent.adminUrl}/-/reload`, { method: 'POST' })).status, 401, 'a reload needs the admin token');
  t.is(service.agent.self.reloadTotal(), 0);
  const ok = await fetch(`${agent.adminUrl}/-/reload`, { method: 'POST', headers: bearer() });
  t.is(ok.status, 200);
  t.like(await ok.json(), { ok: true, tasks: service.agent.loaded.tasks.length });
  t.is(service.agent.self.reloadTotal(), 1);

  // A broken main file: the reload is refused with every problem, the agent keeps running.
  writeFileSync(join(dir, 'bkmonitorbeat.yaml'), 'bkmonitorbeat:\n  mode: sometimes\n');
  const bad = await fetch(`${agent.adminUrl}/-/reload`, { method: 'POST', headers: bearer() });
  t.is(bad.status, 400);
  const body = (await bad.json()) as { ok: boolean; problems: { key: string }[] };
  t.false(body.ok);
  t.true(body.problems.some((p) => p.key === 'bkmonitorbeat.mode'));
  t.true(body.problems.some((p) => p.key === 'bkmonitorbeat.ip'));
  t.is(service.agent.self.reloadTotal(), 1);
  const before = read.metrics.filter((m) => m.value.target === 'selfstats').length;
  await waitFor('selfstats still running after the refused reload', () => read.metrics.filter((m) => m.value.target === 'selfstats').length > before, 30_000);

  await service.stop();
  t.is(service.spool.stats().pending, 0, 'everything was delivered before the stop finished');
  // No record twice within this run.
  const seqs = [...read.events, ...read.metrics].map((r) => `${r.run}:${r.seq}`);
  t.is(new Set(seqs).size, seqs.length);
});
