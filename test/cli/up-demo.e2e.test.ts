/**
 * `bkstream up --demo` as a user runs it (issue 18, "What must be shown"): the real command in a child
 * process of its own process group, on a temporary DATA_DIR (embedded PGlite: no DATABASE_URL), a unique
 * TOPIC_PREFIX and unique consumer groups on the shared broker (KAFKA_BROKERS, so `up` starts none), the
 * local bkdata-sim (no BKDATA_API_URL), and every listener of every service on a free port chosen here
 * (never a default port: other tests run at the same time). Then, through the real CLI and HTTP, with the
 * same environment and the admin token `up` printed on its first run:
 *
 * - `bkstream status --json` shows endpoints, hosts and instances discovered for the demo application;
 * - the console answers the service map's data for it (the map page's calls: discovery's nodes and
 *   relations through the console's proxy) with the shop's services and the calls between them;
 * - `bkstream flows list --json` shows the demo's tail-sampling flow reaching `success`;
 * - Ctrl-C (SIGINT to the group) stops it: exit code 0, and no process of its group is left.
 *
 * The seconds from spawn to each of these are logged (issue 18 asks for the first three within 60 s);
 * they are not asserted: the waits are generous for a loaded machine.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEMO_APP } from '../../services/cli/demo/app.ts';
import { SHOP_SERVICES } from '../../services/cli/demo/shop.ts';
import { testBus, uniqueName } from '../helpers/kafka.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const BKSTREAM = join(ROOT, 'services/cli/bkstream.ts');

/** Every port `up` and its services listen on, by the setting that chooses it. */
const PORT_KEYS = [
  'COLLECTOR_OTLP_GRPC_PORT', 'COLLECTOR_OTLP_HTTP_PORT', 'COLLECTOR_ADMIN_PORT',
  'DISCOVERY_HTTP_PORT', 'ORCH_HTTP_PORT', 'ORCH_GRPC_PORT', 'STORAGE_HTTP_PORT', 'SAMPLER_HTTP_PORT',
  'BKDATA_SIM_PORT', 'CONSOLE_PORT', 'AGENT_ADMIN_PORT',
] as const;

/** The consumer groups of the services (unique per run, so no other test's members join them). */
const GROUP_KEYS = [
  'DISCOVERY_GROUP_ID', 'DISCOVERY_REPLAY_GROUP_ID', 'DISCOVERY_EVENTS_GROUP_ID', 'ORCH_CONSUMER_GROUP', 'SAMPLER_GROUP_ID',
  'STORAGE_SPANS_GROUP_ID', 'STORAGE_REPLAY_GROUP_ID', 'STORAGE_METRICS_GROUP_ID', 'STORAGE_EVENTS_GROUP_ID',
  'STORAGE_OTLP_GROUP_ID', 'STORAGE_REMOTE_WRITE_GROUP_ID',
] as const;

/** Settings of the test's own environment that would point `up` or the CLI elsewhere than a user's first run does. */
const CLEARED = [
  'DATABASE_URL', 'BKDATA_API_URL', 'BKSTREAM_CONFIG', 'BKSTREAM_ADMIN_TOKEN', 'BKSTREAM_ADMIN_TOKEN_FILE', 'NODE_ENV',
  'DISCOVERY_URL', 'STORAGE_URL', 'ORCHESTRATOR_URL', 'COLLECTOR_ADMIN_URL', 'AGENT_CONFIG', 'AGENT_STATE_DIR',
];

/** Distinct free loopback ports, held together while chosen so no two are the same. */
async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((done, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => done(s));
  })));
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((done) => s.close(done))));
  return ports;
}

/** The node flags `npm run up` runs `bkstream up` with (package.json), so this runs what a user runs. */
function upNodeFlags(): string[] {
  const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.up ?? '';
  const words = script.split(/\s+/);
  return words.slice(words.indexOf('node') + 1).filter((w) => w.startsWith('--'));
}

/** The processes whose process group is `pgid` (Linux /proc). */
function groupMembers(pgid: number): string[] {
  const members: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so read after the last ')'.
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(after[2]) === pgid) members.push(`${entry} ${stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'))}`);
  }
  return members;
}

/** Runs a `bkstream` command to its end. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [BKSTREAM, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('close', (code) => done({ code, stdout, stderr }));
  });
}

/** Calls `check` every `intervalMs` until it returns a value; the last reason it gave none names a timeout. */
async function poll<T>(what: string, check: () => Promise<T | string>, timeoutMs: number, intervalMs: number, stopped: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not asked yet';
  for (;;) {
    const ended = stopped();
    if (ended) throw new Error(`${what}: bkstream up ended first (${ended})`);
    try {
      const r = await check();
      if (typeof r !== 'string') return r;
      last = r;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last: ${last}`);
    await sleep(intervalMs);
  }
}

/** `bkstream up --demo` running: its output so far, how it ended, and waits on both. */
class Up {
  readonly child: ChildProcess;
  stdout = '';
  /** The last lines of its log (stderr), for failure messages. */
  #stderr: string[] = [];
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly #exited: Promise<void>;
  #onOutput: (() => void)[] = [];

  constructor(args: string[], env: NodeJS.ProcessEnv) {
    this.child = spawn(process.execPath, args, { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout?.on('data', (b: Buffer) => {
      this.stdout += b.toString();
      for (const f of this.#onOutput) f();
    });
    this.child.stderr?.on('data', (b: Buffer) => {
      this.#stderr.push(...b.toString().split('\n').filter(Boolean));
      if (this.#stderr.length > 60) this.#stderr.splice(0, this.#stderr.length - 60);
    });
    this.#exited = new Promise((done) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal };
        done();
        for (const f of this.#onOutput) f();
      });
    });
  }

  get pid(): number {
    return this.child.pid as number;
  }

  ended(): string | undefined {
    return this.exit ? `exit ${this.exit.code ?? this.exit.signal}; its log ends:\n${this.logTail()}` : undefined;
  }

  logTail(): string {
    return this.#stderr.slice(-25).join('\n');
  }

  /** Resolves with the first match of `re` in its stdout; rejects when it exits first or after `timeoutMs`. */
  output(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray> {
    return new Promise((done, fail) => {
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${re} in the output of bkstream up:\n${this.stdout}\nlog:\n${this.logTail()}`)), timeoutMs);
      const check = (): void => {
        const m = this.stdout.match(re);
        if (m) finish(undefined, m);
        else if (this.exit) finish(new Error(`bkstream up ended (${this.ended() ?? ''}) before printing ${re}; it printed:\n${this.stdout}`));
      };
      const finish = (err: Error | undefined, m?: RegExpMatchArray): void => {
        clearTimeout(timer);
        this.#onOutput = this.#onOutput.filter((f) => f !== check);
        if (err) fail(err);
        else done(m as RegExpMatchArray);
      };
      this.#onOutput.push(check);
      check();
    });
  }

  /** Waits for its exit, at most `timeoutMs`; whether it exited. */
  async exited(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#exited, new Promise((done) => (timer = setTimeout(done, timeoutMs)))]);
    clearTimeout(timer);
    return this.exit !== undefined;
  }
}

/** Removes what the run left on the broker: its topics and its consumer groups. */
async function cleanBroker(prefix: string, groups: string[]): Promise<void> {
  const admin = testBus().admin();
  await admin.start();
  try {
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(`${prefix}.`));
    for (const group of groups) await admin.deleteGroup(group).catch(() => undefined);
    if (topics.length > 0) await admin.deleteTopics(topics);
  } finally {
    await admin.stop();
  }
}

interface StatusJson {
  ok: boolean;
  discovery: { reachable: boolean; url: string; applications?: { bk_biz_id: number; app_name: string; counts: Record<string, number> }[] };
  flows: { reachable: boolean; url: string };
  agents: { reachable: boolean; url: string };
}

interface FlowsJson {
  flows: { bk_biz_id: number; app_name: string; flow_type: string; status: string; step: string; message: string }[];
}

async function run(t: ExecutionContext): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'bkstream-up-demo-'));
  const prefix = uniqueName('up-demo');
  const ports = Object.fromEntries((await freePorts(PORT_KEYS.length)).map((port, i) => [PORT_KEYS[i], String(port)])) as Record<(typeof PORT_KEYS)[number], string>;
  const groups = Object.fromEntries(GROUP_KEYS.map((key) => [key, `${prefix}-${key.toLowerCase().replace(/_group_id$|_consumer_group$/, '').replaceAll('_', '-')}`]));
  const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: dataDir, TOPIC_PREFIX: prefix, KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092', ...ports, ...groups };
  for (const key of CLEARED) delete env[key];
  for (const key of Object.keys(env)) if (key.startsWith('CONSOLE_') && key.endsWith('_URL')) delete env[key];

  const started = Date.now();
  const seconds = (): number => Math.round((Date.now() - started) / 100) / 10;
  const up = new Up([...upNodeFlags(), BKSTREAM, 'up', '--demo'], env);
  t.teardown(async () => {
    if (!up.exit) {
      try {
        process.kill(-up.pid, 'SIGKILL');
      } catch { /* gone */ }
      await up.exited(10_000);
    }
    await cleanBroker(prefix, Object.values(groups)).catch((err: unknown) => t.log(`broker cleanup: ${String(err)}`));
    rmSync(dataDir, { recursive: true, force: true });
  });

  // Up: the admin token of the first run, then the summary, then the demo started.
  const token = (await up.output(/^first run: admin token \(shown once[^)]*\): (bkadm_\S+)$/m, 150_000))[1] as string;
  await up.output(/^bkstream is up /m, 150_000);
  t.log(`up: ${seconds()} s to "bkstream is up"`);
  // The summary names every listener on the port chosen here.
  for (const [key, port] of Object.entries(ports)) t.regex(up.stdout, new RegExp(`^ {2}.*(http|grpc)://127\\.0\\.0\\.1:${port}\\b`, 'm'), `${key} ${port} in what runs where`);
  const consoleUrl = `http://127.0.0.1:${ports.CONSOLE_PORT}`;
  t.regex(up.stdout, new RegExp(`demo: its service map: ${consoleUrl}/#/apps/${DEMO_APP.bkBizId}/${DEMO_APP.appName}/map`));

  const userEnv = { ...env, BKSTREAM_ADMIN_TOKEN: token };
  const demo = (a: { bk_biz_id: number; app_name: string }): boolean => Number(a.bk_biz_id) === DEMO_APP.bkBizId && a.app_name === DEMO_APP.appName;
  const stopped = (): string | undefined => up.ended();

  let countsAt: number | undefined;
  const status = poll('bkstream status --json to show endpoints, hosts and instances of the demo application, every part answering', async () => {
    const r = await cli(['status', '--json'], userEnv);
    const report = JSON.parse(r.stdout) as StatusJson;
    const app = report.discovery.applications?.find(demo);
    if (!app) return `exit ${r.code}; discovery: ${JSON.stringify(report.discovery).slice(0, 300)}`;
    if (!((app.counts.endpoints ?? 0) > 0 && (app.counts.hosts ?? 0) > 0 && (app.counts.instances ?? 0) > 0)) return `counts ${JSON.stringify(app.counts)}`;
    countsAt ??= seconds();
    // A part of the summary may miss its 5 s deadline on a loaded machine: asked again until all answer.
    if (!report.ok || r.code !== 0) return `exit ${r.code}, not ok: ${JSON.stringify(report).slice(0, 1_500)}`;
    return { code: r.code, report, app, at: countsAt };
  }, 150_000, 1_000, stopped);

  const map = poll('the console\'s service-map data of the demo application', async () => {
    const get = async <T>(listing: string): Promise<T[]> => {
      const res = await fetch(`${consoleUrl}/api/discovery/apps/${DEMO_APP.bkBizId}/${DEMO_APP.appName}/${listing}?page_size=1000`, { headers: { authorization: `Bearer ${token}`, accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
      if (res.status !== 200) throw new Error(`${listing}: HTTP ${res.status} ${await res.text()}`);
      return ((await res.json()) as { items: T[] }).items;
    };
    const [nodes, relations] = await Promise.all([get<{ topo_key: string }>('nodes'), get<{ from_topo_key: string; to_topo_key: string }>('relations')]);
    const keys = new Set(nodes.map((n) => n.topo_key));
    const edge = (from: string, to: string): boolean => relations.some((r) => r.from_topo_key === from && r.to_topo_key === to);
    if (!SHOP_SERVICES.every((s) => keys.has(s)) || !edge('frontend', 'checkout') || !edge('checkout', 'payment')) {
      return `nodes ${[...keys].join(', ')}; relations ${relations.map((r) => `${r.from_topo_key}->${r.to_topo_key}`).join(', ')}`;
    }
    return { nodes, relations, at: seconds() };
  }, 150_000, 1_000, stopped);

  const flow = poll('bkstream flows list --json to show the demo\'s tail-sampling flow at success', async () => {
    const r = await cli(['flows', 'list', '--json', '--biz', String(DEMO_APP.bkBizId), '--app', DEMO_APP.appName, '--type', 'tail_sampling'], userEnv);
    if (r.code !== 0) return `exit ${r.code}: ${r.stderr.trim()}`;
    const f = (JSON.parse(r.stdout) as FlowsJson).flows.find(demo);
    if (!f) return 'no tail-sampling flow of the demo application yet';
    if (f.status === 'failed') throw new Error(`the demo's tail-sampling flow failed at ${f.step}: ${f.message}`);
    return f.status === 'success' ? { flow: f, at: seconds() } : `status ${f.status} at ${f.step}`;
  }, 150_000, 1_000, stopped);

  const [s, m, f] = await Promise.all([status, map, flow]);
  t.log(`status shows the demo's endpoints, hosts and instances: ${s.at} s after spawn (${JSON.stringify(s.app.counts)})`);
  t.log(`the console answers the service map (${m.nodes.length} nodes, ${m.relations.length} edges): ${m.at} s`);
  t.log(`flows list shows the tail-sampling flow at success: ${f.at} s`);

  // status reached every part of this `up` at its configured ports, and says so in its exit code.
  t.is(s.report.discovery.url, `http://127.0.0.1:${ports.DISCOVERY_HTTP_PORT}`);
  t.is(s.report.flows.url, `http://127.0.0.1:${ports.ORCH_HTTP_PORT}`);
  t.is(s.report.agents.url, `http://127.0.0.1:${ports.STORAGE_HTTP_PORT}`);
  t.true(s.report.ok);
  t.is(s.code, 0);
  t.like(f.flow, { flow_type: 'tail_sampling', status: 'success' });

  // Ctrl-C: the whole group gets SIGINT, as a terminal sends it.
  const stopping = Date.now();
  process.kill(-up.pid, 'SIGINT');
  t.true(await up.exited(90_000), `bkstream up still running 90 s after SIGINT; its log ends:\n${up.logTail()}`);
  t.log(`stopped ${Math.round((Date.now() - stopping) / 100) / 10} s after SIGINT`);
  t.deepEqual(up.exit, { code: 0, signal: null }, up.logTail());
  t.regex(up.stdout, /^stopping…$/m);
  // Nothing of its group outlives it (a child's exit may trail the parent's by a moment).
  let left = groupMembers(up.pid);
  for (let i = 0; i < 50 && left.length > 0; i++) {
    await sleep(200);
    left = groupMembers(up.pid);
  }
  t.deepEqual(left, [], 'no process of bkstream up\'s group is left');
}

test('bkstream up --demo, as a user runs it: status, the console\'s service map and the tail-sampling flow through the CLI and HTTP; Ctrl-C exits 0 leaving nothing', async (t) => {
  t.timeout(420_000);
  await run(t);
});
