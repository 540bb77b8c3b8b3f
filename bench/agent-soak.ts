/**
 * bench/agent-soak — every task type of the agent at once, for minutes, against local inputs only:
 *
 *   npm run bench:agent-soak           (starts the local broker unless KAFKA_BROKERS is set)
 *
 * The agent runs as its own process, started the way deploy/k8s/agent.yaml starts it (the DaemonSet's
 * node flags and the image's malloc settings, read from the manifest), with one configuration holding:
 * - host tasks: selfstats, static, basereport, exceptionbeat (main-file sections), processbeat and
 *   proccustom (child files), procconf (writes a processbeat child file from a hostid file's processes) and
 *   procsync (turns a legacy processbeat/*.yaml into a proccustom child file);
 * - probes against servers of this process on 127.0.0.1: http (200 + body match), tcp (echo), udp (echo),
 *   ping (127.0.0.1, the system `ping`);
 * - script (a shell script printing Prometheus text), metricbeat (a prom-client registry served here),
 *   keyword (a log file this process appends to, rotated by rename halfway), snmptrap (traps sent by
 *   net-snmp from here), kubeevent (a watch server here with the API server's list/watch wire format).
 *
 * Every BENCH_SOAK_SAMPLE_SECONDS (10) it prints the agent's RSS and CPU and its task runs; at the end what
 * reached Kafka per kind (decoded from the topics), the agent's error log lines, and the verdict:
 * - no errors: no task run ended `error` or `timeout`, no error line in the agent's log, no record
 *   dropped, every task type's records on the topics;
 * - no task skipped (`bkstream_task_run_total{status="skipped"}` 0);
 * - RSS flat after the warm-up (BENCH_SOAK_WARMUP_SECONDS, 60): the mean of the last third of the samples
 *   at most 2 MB above the first third's, and a least-squares slope under 1 MB a minute.
 *
 * Runs BENCH_SOAK_SECONDS (300) and ends with
 * `RESULT bench=agent-soak seconds=… errors=… skipped=… rss_first_mb=… rss_last_mb=… rss_slope_mb_per_min=…`;
 * exit code 1 when a check fails. Not a test (too long for CI).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import snmp from 'net-snmp';
import { codecFor } from '../services/common/avro/index.ts';
import { Bus, rawDecoder } from '../services/common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../services/common/config.ts';
import { silentLogger } from '../services/common/log.ts';
import { counter, createRegistry, gauge } from '../services/common/metrics.ts';
import { installWarningFilter } from '../services/common/process.ts';
import { fmt, result } from './lib.ts';

installWarningFilter();

const SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 300);
const WARMUP_SECONDS = Number(process.env.BENCH_SOAK_WARMUP_SECONDS ?? 60);
const SAMPLE_SECONDS = Number(process.env.BENCH_SOAK_SAMPLE_SECONDS ?? 10);
const ROOT = resolve(import.meta.dirname, '..');
const CLK_TCK = 100;

/** The node flags and malloc settings the agent is deployed with (deploy/k8s/agent.yaml, deploy/Dockerfile). */
function deployedAgent(): { flags: string[]; env: Record<string, string> } {
  const manifest = readFileSync(join(ROOT, 'deploy/k8s/agent.yaml'), 'utf8');
  const m = /command: \[("node"[^\]]*"services\/agent\/main\.ts")\]/.exec(manifest);
  if (!m) throw new Error('deploy/k8s/agent.yaml: no `command: ["node", …, "services/agent/main.ts"]`');
  const words = JSON.parse(`[${m[1] as string}]`) as string[];
  const env: Record<string, string> = {};
  for (const [, k, v] of readFileSync(join(ROOT, 'deploy/Dockerfile'), 'utf8').matchAll(/^ENV (MALLOC_\w+)=(\S+)$/gm)) env[k as string] = v as string;
  for (const [, k, v] of manifest.matchAll(/- name: (MALLOC_\w+)\n\s+value: "([^"]*)"/g)) env[k as string] = v as string;
  return { flags: words.slice(1, -1), env };
}

function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** The child's exit code so far (a call, so that the compiler does not narrow it across awaits). */
function exitCode(child: ChildProcess): number | null {
  return child.exitCode;
}

function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

function listen(server: Server | http.Server): Promise<number> {
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done((server.address() as AddressInfo).port)));
}

async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Sums of a series from a Prometheus text, by one label's value. */
function byLabel(text: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const v = new RegExp(`${label}="([^"]*)"`).exec(line)?.[1] ?? '';
    out[v] = (out[v] ?? 0) + Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return out;
}

function runsOf(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const m = /^bkstream_task_run_total\{(.*)\} (\S+)$/.exec(line);
    if (!m) continue;
    const type = /task_type="([^"]*)"/.exec(m[1] as string)?.[1] ?? '';
    const status = /status="([^"]*)"/.exec(m[1] as string)?.[1] ?? '';
    (out[type] ??= {})[status] = Number(m[2]);
  }
  return out;
}

/** Least-squares slope of y over x. */
function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += ((xs[i] as number) - mx) * ((ys[i] as number) - my);
    den += ((xs[i] as number) - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The local inputs: servers, files, a trap sender, a watch server; `stop()` ends them all. */
async function inputs(dir: string): Promise<{ config: Record<string, string | number>; stop(): Promise<void>; sent: { traps: number; lines: number; kubeEvents: number } }> {
  const sent = { traps: 0, lines: 0, kubeEvents: 0 };
  const servers: (Server | http.Server)[] = [];
  const timers: NodeJS.Timeout[] = [];
  // http probe target
  const web = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/plain' }).end('soak ok'));
  servers.push(web);
  // tcp echo
  const echo = createServer((s) => s.on('data', (d) => s.end(d)).on('error', () => undefined));
  servers.push(echo);
  // udp echo
  const udp = createSocket('udp4');
  udp.on('message', (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  // metricbeat endpoint: a prom-client registry whose values move
  const registry = createRegistry();
  const orders = counter(registry, { name: 'soak_orders_total', help: 'orders', labelNames: ['state'] });
  const queue = gauge(registry, { name: 'soak_queue_depth', help: 'queue' });
  const prom = http.createServer((_req, res) => {
    orders.inc({ state: 'paid' }, 3);
    queue.set(Math.round(Math.random() * 100));
    void registry.metrics().then((b) => res.writeHead(200, { 'content-type': registry.contentType }).end(b));
  });
  servers.push(prom);
  // kubeevent: list, then a watch stream that gets an event every 5 s
  let version = 1;
  const watches = new Set<http.ServerResponse>();
  const kube = http.createServer((req, res) => {
    if (!(req.url ?? '').includes('watch=true')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: String(version) }, items: [] }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    watches.add(res);
    res.on('close', () => watches.delete(res));
  });
  servers.push(kube);
  timers.push(setInterval(() => {
    version++;
    sent.kubeEvents++;
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const ev = { metadata: { uid: `u${version}`, resourceVersion: String(version) }, involvedObject: { kind: 'Pod', namespace: 'soak', name: `web-${version % 3}`, apiVersion: 'v1' }, reason: 'BackOff', message: 'Back-off restarting failed container', source: { component: 'kubelet', host: 'n1' }, firstTimestamp: now, lastTimestamp: now, count: 1, type: 'Warning' };
    for (const w of watches) w.write(`${JSON.stringify({ type: 'ADDED', object: ev })}\n`);
  }, 5_000));
  const [webPort, echoPort, promPort, kubePort] = await Promise.all([listen(web), listen(echo), listen(prom), listen(kube)]);
  // snmptrap: a trap every 3 s
  const trapPort = await freeUdpPort();
  const session = snmp.createSession('127.0.0.1', 'public', { port: 0, trapPort, version: snmp.Version2c });
  timers.push(setInterval(() => {
    session.trap('1.3.6.1.6.3.1.1.5.3', [{ oid: '1.3.6.1.2.1.2.2.1.1.3', type: snmp.ObjectType.Integer, value: sent.traps % 4 }], () => undefined);
    sent.traps++;
  }, 3_000));
  // keyword: a line every 200 ms, every fifth an ERROR; the file is rotated by rename halfway
  const logFile = join(dir, 'logs', 'app.log');
  mkdirSync(join(dir, 'logs'));
  writeFileSync(logFile, '');
  timers.push(setInterval(() => {
    sent.lines++;
    appendFileSync(logFile, sent.lines % 5 === 0 ? `${new Date().toISOString()} ERROR ${500 + (sent.lines % 3)} upstream failed\n` : `${new Date().toISOString()} INFO request served\n`);
  }, 200));
  timers.push(setTimeout(() => renameSync(logFile, `${logFile}.1`), (SECONDS * 1_000) / 2));
  // script
  const scriptPath = join(dir, 'metrics.sh');
  writeFileSync(scriptPath, '#!/bin/sh\necho "soak_disk_used{mount=\\"/data\\"} $(date +%s)"\necho \'soak_up 1\'\n');
  chmodSync(scriptPath, 0o755);
  return {
    sent,
    config: { webPort, echoPort, udpPort: udp.address().port, promPort, kubePort, trapPort, scriptPath, logDir: join(dir, 'logs') },
    async stop() {
      for (const t of timers) clearInterval(t);
      session.close();
      for (const w of watches) w.end();
      udp.close();
      for (const s of servers) {
        if (s instanceof http.Server) s.closeAllConnections();
        s.close();
      }
    },
  };
}

function writeConfig(dir: string, c: Record<string, string | number>): string {
  const confd = join(dir, 'conf.d');
  mkdirSync(confd);
  mkdirSync(join(dir, 'processbeat'));
  const hostid = join(dir, 'hostid');
  writeFileSync(hostid, JSON.stringify({
    bk_host_innerip: '127.0.0.1',
    bk_cloud_id: 0,
    bk_host_id: 7,
    associations: { 1: { bk_biz_id: 2, bk_set_id: 5, bk_module_id: 8 } },
    process: [{ bk_func_name: 'node', bk_process_name: 'node', bind_ip: '1', port: '', protocol: '1', bk_start_param_regex: '' }],
  }));
  const labels = '    labels:\n      - bk_target_ip: "127.0.0.1"\n        bk_target_cloud_id: "0"\n        bk_collect_config_id: "9"\n';
  const main = join(dir, 'bkmonitorbeat.yaml');
  writeFileSync(main, `bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  include: ${confd}
  host_id_path: ${hostid}
  heart_beat:
    global_dataid: 1100001
    period: 60s
  gather_up_beat:
    dataid: 1100017
  selfstats_task:
    dataid: 1100030
    task_id: 88
    period: 30s
  static_task:
    dataid: 1100010
    tasks:
    - task_id: 100
      period: 1m
      check_period: 1m
      report_period: 6h
  basereport_task:
    task_id: 101
    dataid: 1001
    period: 30s
    cpu: { stat_times: 4, info_period: 1m, info_timeout: 30s }
    disk: { stat_times: 1, collect_all_device: true }
    mem: { info_times: 1 }
    net: { stat_times: 4, revert_protect_number: 100 }
  exceptionbeat_task:
    task_id: 102
    dataid: 1000
    check_bit: "C_DISK_SPACE|C_DISKRO|C_CORE|C_OOM"
    check_disk_ro_interval: 60
    check_disk_space_interval: 60
    check_oom_interval: 10
    used_max_disk_space_percent: 99
  procconf_task:
    task_id: 103
    period: 30s
    perfdataid: 1007
    portdataid: 1013
    hostfilepath: ${hostid}
    dst_dir: ${confd}
  procsync_task:
    task_id: 104
    period: 30s
    dst_dir: ${confd}
  http_task:
    dataid: 1011
    max_timeout: 30s
    min_period: 1s
    tasks:
    - task_id: 201
      bk_biz_id: 2
      period: 10s
      timeout: 5s
      steps:
      - url: http://127.0.0.1:${c.webPort}/
        method: GET
        response_code: "200"
        response: soak
        response_format: in
  tcp_task:
    dataid: 1009
    max_timeout: 30s
    min_period: 1s
    tasks:
    - task_id: 202
      bk_biz_id: 2
      period: 10s
      timeout: 5s
      target_host_list: ["127.0.0.1"]
      target_port: ${c.echoPort}
      request: ping
      response: ping
      response_format: eq
  udp_task:
    dataid: 1010
    max_timeout: 30s
    min_period: 1s
    tasks:
    - task_id: 203
      bk_biz_id: 2
      period: 10s
      timeout: 5s
      target_host_list: ["127.0.0.1"]
      target_port: ${c.udpPort}
      request: hello
      response: hello
      response_format: eq
      times: 2
  ping_task:
    dataid: 1100003
    max_timeout: 30s
    min_period: 1s
    tasks:
    - task_id: 204
      bk_biz_id: 2
      period: 10s
      timeout: 5s
      max_rtt: 1s
      total_num: 2
      ping_size: 56
      targets:
      - { target: 127.0.0.1, target_type: ip }
  kubeevent_task:
    task_id: 90
    dataid: 1100020
    period: 60s
    interval: 10s
    api_server: http://127.0.0.1:${c.kubePort}
    upmetrics_dataid: 1100021
`);
  writeFileSync(join(confd, 'script.conf'), `type: script\nname: script_task\nversion: 1.0.0\ndataid: 1500010\nmax_timeout: 30s\nmin_period: 1s\ntasks:\n  - task_id: 11\n    bk_biz_id: 2\n    period: 10s\n    timeout: 10s\n    command: ${c.scriptPath}\n`);
  writeFileSync(join(confd, 'prometheus.conf'), `type: metricbeat\nname: prom_task\nversion: 1.0.0\ndataid: 1500011\nmax_timeout: 30s\nmin_period: 1s\ntasks:\n  - task_id: 12\n    bk_biz_id: 2\n    period: 10s\n    timeout: 5s\n    module:\n      module: prometheus\n      metricsets: ["collector"]\n      enabled: true\n      hosts: ["http://127.0.0.1:${c.promPort}/metrics"]\n      metrics_path: ''\n      namespace: soak\n`);
  writeFileSync(join(confd, 'keyword.conf'), `type: keyword\nname: keyword_task\nversion: 1.0.0\ndataid: 1500012\ntasks:\n  - task_id: 13\n    bk_biz_id: 2\n    dataid: 1500012\n    paths: ["${c.logDir}/*.log"]\n    report_period: 10s\n    keywords:\n      - name: error\n        pattern: 'ERROR (?P<code>\\d+)'\n${labels}`);
  writeFileSync(join(confd, 'snmptrap.conf'), `type: snmptrap\nname: snmptrap_task\nversion: 1.0.0\ndataid: 1500013\ntasks:\n  - task_id: 14\n    bk_biz_id: 2\n    listen_ip: 127.0.0.1\n    listen_port: ${c.trapPort}\n    community: public\n    aggregate: true\n    period: 10s\n    oids:\n      "1.3.6.1.6.3.1.1.5.3": linkDown\n      "1.3.6.1.2.1.2.2.1.1": ifIndex\n${labels}`);
  const examples = join(ROOT, 'services/agent/examples/conf.d');
  writeFileSync(join(confd, 'monitor_process_agent.conf'), readFileSync(join(examples, 'monitor_process_agent.conf'), 'utf8').replace(/^period: 60$/m, 'period: 30'));
  writeFileSync(join(dir, 'processbeat', 'monitor_process_soak.yaml'), 'type: proccustom\nperiod: 30s\ndataid: 1100014\nport_dataid: 1100015\nconfig:\n  match_pattern: agent-soak\n  process_name: (node)\n  port_detect: false\nlabels:\n- bk_target_cloud_id: "0"\n  bk_target_ip: 127.0.0.1\n  bk_biz_id: "2"\n');
  return main;
}

async function main(): Promise<void> {
  const env = { ...process.env };
  const brokers = brokersOrLocal(loadConfig(commonSpec, { env }).kafkaBrokers, env);
  const prefix = `bench-soak-${Date.now().toString(36)}`;
  const bus = new Bus({ brokers, clientId: 'bench-agent-soak', logger: silentLogger });
  const admin = bus.admin();
  await admin.start();
  const topics = [`${prefix}.events`, `${prefix}.metrics`];
  await admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: 3, retentionMs: 3_600_000 })));
  const dir = mkdtempSync(join(tmpdir(), 'bench-agent-soak-'));
  const local = await inputs(dir);
  const configFile = writeConfig(dir, local.config);
  const deployed = deployedAgent();

  // What reaches Kafka, by kind: events by event type, metrics by data id.
  const events: Record<string, number> = {};
  const metrics: Record<string, number> = {};
  const eventCodec = codecFor('AgentEvent');
  const metricCodec = codecFor('MetricBatch');
  const consumer = bus.consumer<Buffer>({
    groupId: `${prefix}-reader`,
    topics,
    codec: rawDecoder,
    dlqTopic: `${prefix}.unused-dlq`,
    maxWaitTimeMs: 500,
    handler: async (batch) => {
      for (const r of batch.records) {
        if (batch.topic.endsWith('.events')) {
          const t = eventCodec.decode(r.value).event_type;
          events[t] = (events[t] ?? 0) + 1;
        } else {
          const id = String(metricCodec.decode(r.value).data_id);
          metrics[id] = (metrics[id] ?? 0) + 1;
        }
      }
    },
  });
  await consumer.start();

  const port = await new Promise<number>((done) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port;
      s.close(() => done(p));
    });
  });
  const errorLines: string[] = [];
  const warnings = new Map<string, number>();
  let agent: ChildProcess | undefined;
  let failed = false;
  try {
    console.log(`agent: node ${deployed.flags.join(' ')} services/agent/main.ts (${Object.entries(deployed.env).map(([k, v]) => `${k}=${v}`).join(' ')}); ${SECONDS} s, samples every ${SAMPLE_SECONDS} s, warm-up ${WARMUP_SECONDS} s`);
    agent = spawn(process.execPath, [...deployed.flags, 'services/agent/main.ts'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...env, ...deployed.env, KAFKA_BROKERS: brokers.join(','), TOPIC_PREFIX: prefix, AGENT_CONFIG: configFile, AGENT_STATE_DIR: join(dir, 'state'), AGENT_ADMIN_PORT: String(port), LOG_LEVEL: 'warn' },
    });
    let tail = '';
    agent.stderr?.setEncoding('utf8').on('data', (d: string) => {
      tail += d;
      const lines = tail.split('\n');
      tail = lines.pop() ?? '';
      for (const line of lines) {
        if (line.includes('"level":"error"') || !line.startsWith('{')) errorLines.push(line);
        else if (line.includes('"level":"warn"')) {
          const msg = /"message":"([^"]*)"/.exec(line)?.[1] ?? line;
          warnings.set(msg, (warnings.get(msg) ?? 0) + 1);
        }
      }
    });
    const url = `http://127.0.0.1:${port}`;
    const started = Date.now();
    for (;;) {
      if (agent.exitCode !== null) throw new Error(`the agent exited with code ${agent.exitCode}`);
      if (await fetch(`${url}/healthz`).then((r) => r.ok, () => false)) break;
      if (Date.now() - started > 60_000) throw new Error('the agent did not answer /healthz within 60 s');
      await sleep(100);
    }
    const pid = agent.pid as number;
    const samples: { t: number; rss: number; cpu: number }[] = [];
    console.log('     t   rss MB  cpu s   runs (ok) so far');
    while (Date.now() - started < SECONDS * 1_000) {
      await sleep(SAMPLE_SECONDS * 1_000 - ((Date.now() - started) % (SAMPLE_SECONDS * 1_000)));
      const code = exitCode(agent);
      if (code !== null) throw new Error(`the agent exited with code ${code}`);
      const t = (Date.now() - started) / 1_000;
      const s = { t, rss: rssMb(pid), cpu: cpuSeconds(pid) };
      samples.push(s);
      const runs = runsOf(await (await fetch(`${url}/metrics`)).text());
      const ok = Object.values(runs).reduce((a, r) => a + (r.ok ?? 0), 0);
      console.log(`${fmt(t).padStart(6)} ${fmt(s.rss).padStart(8)} ${fmt(s.cpu).padStart(6)}   ${ok}`);
    }
    const text = await (await fetch(`${url}/metrics`)).text();
    await sleep(3_000); // the last records reach the reader
    const runs = runsOf(text);
    const dropped = byLabel(text, 'bkstream_agent_records_dropped_total', 'reason');
    console.log('\ntask runs by type and outcome:');
    for (const [type, by] of Object.entries(runs).sort()) console.log(`  ${type.padEnd(14)} ${Object.entries(by).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    console.log(`events on Kafka by type: ${JSON.stringify(events)}`);
    console.log(`metric batches on Kafka by data id: ${JSON.stringify(metrics)}`);
    console.log(`inputs sent: ${JSON.stringify(local.sent)}`);
    console.log(`dropped by reason: ${JSON.stringify(dropped)}`);
    if (warnings.size > 0) console.log(`agent warnings: ${[...warnings].map(([m, n]) => `${n}× ${m}`).join('; ')}`);
    if (errorLines.length > 0) console.log(`agent error lines (${errorLines.length}):\n  ${errorLines.slice(0, 20).join('\n  ')}`);

    const problems: string[] = [];
    const errors = Object.values(runs).reduce((a, r) => a + (r.error ?? 0) + (r.timeout ?? 0), 0);
    const skipped = Object.values(runs).reduce((a, r) => a + (r.skipped ?? 0), 0);
    if (errors > 0) problems.push(`${errors} task runs ended in error or timeout`);
    if (skipped > 0) problems.push(`${skipped} task runs skipped`);
    if (errorLines.length > 0) problems.push(`${errorLines.length} error lines in the agent's log`);
    const droppedTotal = Object.values(dropped).reduce((a, b) => a + b, 0);
    if (droppedTotal > 0) problems.push(`${droppedTotal} records dropped`);
    for (const type of ['selfstats', 'static', 'basereport', 'procconf', 'procsync', 'processbeat', 'proccustom', 'http', 'tcp', 'udp', 'ping', 'script']) {
      if (!(runs[type]?.ok ?? 0)) problems.push(`no ok run of ${type}`);
    }
    for (const type of ['heartbeat', 'basereport', 'static', 'processbeat', 'http', 'tcp', 'udp', 'ping', 'keyword', 'snmptrap', 'kubeevent']) {
      if (!events[type]) problems.push(`no ${type} event on Kafka`);
    }
    for (const [id, what] of [['1100030', 'selfstats'], ['1100014', 'proccustom'], ['1500010', 'script'], ['1500011', 'metricbeat'], ['1100017', 'gather-up'], ['1100021', 'kubeevent series']]) {
      if (!metrics[id as string]) problems.push(`no ${what} metrics (data id ${id}) on Kafka`);
    }
    const after = samples.filter((s) => s.t >= WARMUP_SECONDS);
    const third = Math.max(1, Math.floor(after.length / 3));
    const first = mean(after.slice(0, third).map((s) => s.rss));
    const last = mean(after.slice(-third).map((s) => s.rss));
    const perMin = slope(after.map((s) => s.t / 60), after.map((s) => s.rss));
    console.log(`RSS after the warm-up: first third ${fmt(first)} MB, last third ${fmt(last)} MB, slope ${fmt(perMin)} MB/min; CPU ${fmt(((samples.at(-1)?.cpu ?? 0) - (after[0]?.cpu ?? 0)) / (((samples.at(-1)?.t ?? 0) - (after[0]?.t ?? 0)) || 1) * 100)} % of a core after the warm-up`);
    if (after.length < 3) problems.push('too few samples after the warm-up');
    else if (last - first > 2 || perMin >= 1) problems.push(`RSS not flat after the warm-up (first third ${fmt(first)} MB, last third ${fmt(last)} MB, ${fmt(perMin)} MB/min)`);
    console.log(problems.length === 0 ? 'verdict: no errors, no task skipped, RSS flat' : `verdict: FAILED\n  ${problems.join('\n  ')}`);
    failed = problems.length > 0;
    result('agent-soak', { seconds: Math.round(samples.at(-1)?.t ?? 0), errors: errors + errorLines.length + droppedTotal, skipped, rss_first_mb: first, rss_last_mb: last, rss_slope_mb_per_min: perMin });
  } finally {
    if (agent && agent.exitCode === null) {
      agent.kill('SIGTERM');
      await new Promise((r) => agent?.once('exit', r));
    }
    await consumer.stop().catch(() => undefined);
    await local.stop();
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  if (failed) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(`bench agent-soak: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
