/**
 * `bkstream status [--json]`: the operator's summary, one section per part, each saying `unreachable` in
 * one line when its part does not answer:
 *
 * - kafka: the broker, each topic of the plan with its partitions, and the lag of each consumer group the
 *   services are configured with (those the broker knows);
 * - store: the database, and whether it is migrated;
 * - discovery: what discovery found per application (counts per listing; the applications from the
 *   storage API);
 * - flows: the orchestrator's flows by status, and its breakers;
 * - agents: every agent whose heartbeat reached storage in the last hour, by the age of the newest.
 *
 * Exit code 0 when every part answered, every topic exists and the store is migrated; 1 otherwise.
 */
import { commonSpec, loadConfig, type Field } from '../../common/config.ts';
import { BkError, errorMessage } from '../../common/errors.ts';
import { silentLogger } from '../../common/log.ts';
import { createStore } from '../../common/store/index.ts';
import { loadMigrations } from '../../common/store/migrate.ts';
import { topicName, topicPlan, type TopicKey } from '../../common/topics.ts';
import { Bus } from '../../common/bus/index.ts';
import { LISTINGS } from '../../discovery/api.ts';
import { discoverySpec } from '../../discovery/config.ts';
import { orchestratorSpec } from '../../orchestrator/config.ts';
import { samplerSpec } from '../../sampler/config.ts';
import { storageSpec } from '../../storage/config.ts';
import { APIS, apiCall, apiGet, baseUrlOf, printJson, refusal } from '../api.ts';
import { expectBroker, cliBrokers } from '../broker.ts';
import { defineCommand, type Command, type Print } from '../command.ts';
import { innermostMessage } from '../messages.ts';

/** The consumer groups of the services, each with the topic it reads (group ids as the services configure them). */
const GROUPS: readonly { service: string; field: Field<string>; topic: TopicKey }[] = [
  { service: 'discovery', field: discoverySpec.groupId, topic: 'spans' },
  { service: 'discovery', field: discoverySpec.replayGroupId, topic: 'spansReplay' },
  { service: 'discovery', field: discoverySpec.eventsGroupId, topic: 'events' },
  { service: 'storage', field: storageSpec.spansGroupId, topic: 'spans' },
  { service: 'storage', field: storageSpec.replayGroupId, topic: 'spansReplay' },
  { service: 'storage', field: storageSpec.metricsGroupId, topic: 'metrics' },
  { service: 'storage', field: storageSpec.eventsGroupId, topic: 'events' },
  { service: 'storage', field: storageSpec.otlpGroupId, topic: 'spans' },
  { service: 'storage', field: storageSpec.remoteWriteGroupId, topic: 'metrics' },
  { service: 'sampler', field: samplerSpec.groupId, topic: 'spans' },
  { service: 'orchestrator', field: orchestratorSpec.consumerGroup, topic: 'flowCommands' },
];

/** Deadline of each API call of the summary, ms. */
const API_TIMEOUT_MS = 5_000;
/** Agents are looked for among the heartbeats of this window, s. */
const HEARTBEAT_WINDOW_S = 3_600;
/** Pages of heartbeats read at most (of 1 000 each). */
const HEARTBEAT_PAGES = 10;
/** Flows are counted over this many pages at most, of the orchestrator API's largest page. */
const FLOW_PAGES = 50;
const FLOW_PAGE_SIZE = 1_000;
/** Applications whose discovered counts are read at most. */
const MAX_APPS = 50;
/** Lines of agents in the text summary at most. */
const MAX_AGENT_LINES = 20;

type Down = { reachable: false; error: string };
const down = (err: unknown): Down => ({ reachable: false, error: innermostMessage(err) });

interface KafkaSection {
  reachable: true;
  brokers: string[];
  topics: { topic: string; exists: boolean; partitions: number | null }[];
  groups: { group: string; service: string; topic: string; lag: number | null; error?: string }[];
  /** Configured groups the broker does not know (their service never ran, or the sink is off). */
  absent_groups: string[];
}
interface StoreSection {
  reachable: true;
  driver: string;
  /** Migrations not applied yet; null when the embedded store is held by a running `bkstream up`. */
  pending_migrations: number | null;
  note?: string;
}
interface DiscoverySection {
  reachable: true;
  url: string;
  applications: { bk_biz_id: number; app_name: string; counts: Record<string, number> }[];
  /** Why the applications are not listed (the storage API did not answer). */
  applications_unknown?: string;
  truncated?: boolean;
}
interface FlowsSection {
  reachable: true;
  url: string;
  total: number;
  by_status: Record<string, number>;
  breakers: Record<string, string>;
}
interface AgentsSection {
  reachable: true;
  url: string;
  window_s: number;
  agents: { bk_host_id: number | null; ip: string | null; hostname: string | null; last_heartbeat: string; age_s: number }[];
}

export interface StatusReport {
  ok: boolean;
  kafka: (KafkaSection | Down) & { brokers: string[] };
  store: StoreSection | Down;
  discovery: (DiscoverySection | Down) & { url: string };
  flows: (FlowsSection | Down) & { url: string };
  agents: (AgentsSection | Down) & { url: string };
}

async function kafkaSection(brokers: string[], prefix: string, env: NodeJS.ProcessEnv): Promise<KafkaSection | Down> {
  try {
    await expectBroker(brokers);
  } catch (err) {
    return down(err);
  }
  const admin = new Bus({ brokers, clientId: 'bkstream-status', logger: silentLogger, retries: 1, connectionTimeoutMs: 2_000, requestTimeoutMs: 5_000 }).admin();
  try {
    await admin.start();
    const existing = new Set(await admin.listTopics());
    const topics = await Promise.all(topicPlan(prefix).map(async (p) => ({
      topic: p.topic,
      exists: existing.has(p.topic),
      partitions: existing.has(p.topic) ? await admin.partitionCount(p.topic).catch(() => null) : null,
    })));
    const known = new Set(await admin.listGroups());
    const configured = GROUPS.map((g) => ({ group: env[g.field.env] || (g.field.default as string), service: g.service, topic: topicName(prefix, g.topic) }));
    const groups = await Promise.all(configured.filter((g) => known.has(g.group) && existing.has(g.topic)).map(async (g) => {
      try {
        return { ...g, lag: await admin.groupLag(g.group, g.topic) };
      } catch (err) {
        return { ...g, lag: null, error: innermostMessage(err) };
      }
    }));
    const absent = [...new Set(configured.filter((g) => !known.has(g.group)).map((g) => g.group))];
    return { reachable: true, brokers, topics, groups, absent_groups: absent };
  } catch (err) {
    return down(err);
  } finally {
    await admin.stop().catch(() => undefined);
  }
}

async function storeSection(env: NodeJS.ProcessEnv): Promise<StoreSection | Down> {
  const config = loadConfig(commonSpec, { env });
  const store = createStore({ databaseUrl: config.databaseUrl, dataDir: `${config.dataDir}/pglite`, logger: silentLogger });
  try {
    await store.start();
    const { rows } = await store.query<{ version: number }>('SELECT version FROM schema_migrations').catch(() => ({ rows: [] as { version: number }[] }));
    const pending = loadMigrations().filter((m) => !rows.some((r) => Number(r.version) === m.version));
    return { reachable: true, driver: store.driver, pending_migrations: pending.length };
  } catch (err) {
    // Embedded PGlite is single-process: a running `bkstream up` holds it, which is the healthy case.
    if (err instanceof BkError && err.code === 'store_locked') {
      return { reachable: true, driver: 'pglite', pending_migrations: null, note: err.message.replace(/^the embedded database /, '').replace(/:.*$/, '') };
    }
    return down(err);
  } finally {
    await store.stop().catch(() => undefined);
  }
}

/** The API's answer, or the one-line reason it gave none (unreachable or refused). */
async function get(api: (typeof APIS)[keyof typeof APIS], env: NodeJS.ProcessEnv, path: string): Promise<Record<string, unknown>> {
  const r = await apiCall(api, env, 'GET', path, undefined, API_TIMEOUT_MS);
  if (r.status !== 200) throw new BkError(`http_${r.status}`, refusal(api, r, env).replace(`${api.name} answered `, ''), false);
  return r.body;
}

async function discoverySection(env: NodeJS.ProcessEnv): Promise<DiscoverySection | Down> {
  const url = baseUrlOf(APIS.discovery, env);
  try {
    await get(APIS.discovery, env, '/livez');
  } catch (err) {
    return down(err);
  }
  let apps: { bk_biz_id: number; app_name: string }[];
  try {
    apps = (await apiGet(APIS.storage, env, '/api/v1/apps', API_TIMEOUT_MS)).body.items as typeof apps;
  } catch (err) {
    return { reachable: true, url, applications: [], applications_unknown: `the applications come from the storage API: ${errorMessage(err)}` };
  }
  try {
    const applications = await Promise.all(apps.slice(0, MAX_APPS).map(async (a) => {
      const counts: Record<string, number> = {};
      for (const listing of Object.keys(LISTINGS)) {
        const body = await get(APIS.discovery, env, `/api/v1/apps/${a.bk_biz_id}/${encodeURIComponent(a.app_name)}/${listing}?page_size=1`);
        counts[listing] = Number(body.total);
      }
      return { bk_biz_id: Number(a.bk_biz_id), app_name: a.app_name, counts };
    }));
    return { reachable: true, url, applications, ...(apps.length > MAX_APPS ? { truncated: true } : {}) };
  } catch (err) {
    return down(err);
  }
}

async function flowsSection(env: NodeJS.ProcessEnv): Promise<FlowsSection | Down> {
  try {
    const count = async (): Promise<{ total: number; byStatus: Record<string, number> }> => {
      const byStatus: Record<string, number> = {};
      let total = 0;
      // Pages of the API's largest size, until a short one.
      for (let page = 0; page < FLOW_PAGES; page++) {
        const flows = (await get(APIS.orchestrator, env, `/api/v1/flows?limit=${FLOW_PAGE_SIZE}&offset=${page * FLOW_PAGE_SIZE}`)).flows as { status: string }[];
        for (const f of flows) byStatus[f.status] = (byStatus[f.status] ?? 0) + 1;
        total += flows.length;
        if (flows.length < FLOW_PAGE_SIZE) break;
      }
      return { total, byStatus };
    };
    const [{ total, byStatus }, breakers] = await Promise.all([count(), get(APIS.orchestrator, env, '/api/v1/breakers')]);
    return { reachable: true, url: baseUrlOf(APIS.orchestrator, env), total, by_status: byStatus, breakers: breakers as Record<string, string> };
  } catch (err) {
    return down(err);
  }
}

interface Heartbeat {
  timestamp: number | string;
  ip: string | null;
  hostname: string | null;
  bk_host_id: number | string | null;
}

async function agentsSection(env: NodeJS.ProcessEnv, nowMs: number): Promise<AgentsSection | Down> {
  const newest = new Map<string, Heartbeat>();
  try {
    let cursor: string | undefined;
    for (let page = 0; page < HEARTBEAT_PAGES; page++) {
      const q = new URLSearchParams({ event_type: 'heartbeat', start: String(Math.floor(nowMs / 1000) - HEARTBEAT_WINDOW_S), limit: '1000' });
      if (cursor) q.set('cursor', cursor);
      const body = await get(APIS.storage, env, `/api/v1/events?${q.toString()}`);
      // Newest first: the first heartbeat of an agent is its newest.
      for (const e of body.items as Heartbeat[]) {
        const key = `${String(e.bk_host_id)}|${e.ip ?? ''}|${e.hostname ?? ''}`;
        if (!newest.has(key)) newest.set(key, e);
      }
      cursor = typeof body.next_cursor === 'string' ? body.next_cursor : undefined;
      if (!cursor) break;
    }
  } catch (err) {
    return down(err);
  }
  const agents = [...newest.values()].map((e) => {
    const ms = Number(e.timestamp);
    return {
      bk_host_id: e.bk_host_id === null ? null : Number(e.bk_host_id),
      ip: e.ip,
      hostname: e.hostname,
      last_heartbeat: new Date(ms).toISOString(),
      age_s: Math.max(0, Math.round((nowMs - ms) / 1000)),
    };
  }).sort((a, b) => a.age_s - b.age_s);
  return { reachable: true, url: baseUrlOf(APIS.storage, env), window_s: HEARTBEAT_WINDOW_S, agents };
}

/** Every section, gathered at once. */
export async function statusReport(env: NodeJS.ProcessEnv, nowMs = Date.now()): Promise<StatusReport> {
  const config = loadConfig(commonSpec, { env });
  const brokers = cliBrokers(config, env);
  const [kafka, store, discovery, flows, agents] = await Promise.all([
    kafkaSection(brokers, config.topicPrefix, env),
    storeSection(env),
    discoverySection(env),
    flowsSection(env),
    agentsSection(env, nowMs),
  ]);
  const ok = kafka.reachable && kafka.topics.every((t) => t.exists) && store.reachable && (store.pending_migrations ?? 0) === 0 &&
    discovery.reachable && flows.reachable && agents.reachable;
  return {
    ok,
    kafka: { ...kafka, brokers },
    store,
    discovery: { ...discovery, url: baseUrlOf(APIS.discovery, env) },
    flows: { ...flows, url: baseUrlOf(APIS.orchestrator, env) },
    agents: { ...agents, url: baseUrlOf(APIS.storage, env) },
  };
}

const age = (s: number): string => (s < 120 ? `${s} s` : s < 7_200 ? `${Math.round(s / 60)} min` : `${(s / 3_600).toFixed(1)} h`);

/** The report as text lines: `<section>  <what>`, one line per unreachable part. */
export function renderStatus(r: StatusReport): string[] {
  const lines: string[] = [];
  const line = (section: string, text: string): void => {
    lines.push(`${section.padEnd(10)} ${text}`);
  };
  const k = r.kafka;
  if (!k.reachable) line('kafka', `unreachable at ${k.brokers.join(',')}: ${k.error}`);
  else {
    line('kafka', `up at ${k.brokers.join(',')}`);
    const width = Math.max(...k.topics.map((t) => t.topic.length));
    for (const t of k.topics) line('topic', `${t.topic.padEnd(width)}  ${t.exists ? `${t.partitions ?? '?'} partitions` : 'MISSING'}`);
    const gw = Math.max(0, ...k.groups.map((g) => g.group.length));
    const tw = Math.max(0, ...k.groups.map((g) => g.topic.length));
    for (const g of k.groups) line('group', `${g.group.padEnd(gw)}  ${g.topic.padEnd(tw)}  ${g.lag === null ? `lag unknown: ${g.error ?? ''}` : `lag ${g.lag}`}`);
    if (k.absent_groups.length > 0) line('group', `not on the broker (service not started, or sink off): ${k.absent_groups.join(', ')}`);
  }
  const s = r.store;
  if (!s.reachable) line('store', `unreachable: ${s.error}`);
  else line('store', `${s.driver} ${s.pending_migrations === null ? s.note ?? 'held by another process' : s.pending_migrations === 0 ? 'migrated' : `${s.pending_migrations} migration(s) pending`}`);
  const d = r.discovery;
  if (!d.reachable) line('discovery', `unreachable at ${d.url}: ${d.error}`);
  else if (d.applications_unknown) line('discovery', `up at ${d.url}; ${d.applications_unknown}`);
  else if (d.applications.length === 0) line('discovery', `up at ${d.url}; no applications registered`);
  else {
    for (const a of d.applications) line('discovery', `${a.bk_biz_id}/${a.app_name}: ${Object.entries(a.counts).map(([n, c]) => `${c} ${n}`).join(', ')}`);
    if (d.truncated) line('discovery', `(the first ${MAX_APPS} applications)`);
  }
  const f = r.flows;
  if (!f.reachable) line('flows', `unreachable at ${f.url}: ${f.error}`);
  else {
    line('flows', f.total === 0 ? 'none' : `${f.total}: ${Object.entries(f.by_status).map(([st, n]) => `${n} ${st}`).join(', ')}`);
    line('breakers', Object.entries(f.breakers).map(([family, state]) => `${family} ${state}`).join(', '));
  }
  const a = r.agents;
  if (!a.reachable) line('agents', `unreachable (storage at ${a.url}): ${a.error}`);
  else if (a.agents.length === 0) line('agents', `no heartbeat in the last ${age(a.window_s)}`);
  else {
    line('agents', `${a.agents.length} with a heartbeat in the last ${age(a.window_s)}:`);
    for (const g of a.agents.slice(0, MAX_AGENT_LINES)) line('agent', `${g.ip ?? '?'} ${g.hostname ?? ''} (host ${g.bk_host_id ?? '?'})  last heartbeat ${age(g.age_s)} ago`);
    if (a.agents.length > MAX_AGENT_LINES) line('agent', `… ${a.agents.length - MAX_AGENT_LINES} more (--json lists all)`);
  }
  return lines;
}

/** `bkstream status`, reading the clock with `now` (ms). */
export function statusCommand(now: () => number = Date.now): Command {
  return defineCommand({
    name: 'status',
    summary: 'the operator\'s summary: broker, topics, consumer lag, store, discovered counts, flows, breakers, agents',
    options: { json: { type: 'boolean', help: 'print the summary as one JSON document on stdout' } },
    notes: [
      'Each part is asked directly, and a part that does not answer is one line saying so: the broker (KAFKA_BROKERS), the',
      'store (DATABASE_URL or the embedded one), discovery (DISCOVERY_URL, default http://127.0.0.1:8081), the orchestrator',
      '(ORCHESTRATOR_URL, :8082) and storage (STORAGE_URL, :8083), with the admin token of BKSTREAM_ADMIN_TOKEN(_FILE). Without a',
      'URL a service is looked for at its own port settings (DISCOVERY_HTTP_PORT, ORCH_HTTP_PORT, STORAGE_HTTP_PORT), as `up` ran.',
      'Exit code 0 when every part answered, every topic exists and the store is migrated; 1 otherwise.',
    ].join('\n'),
  }, async ({ values }, env, print: Print) => {
    const report = await statusReport(env, now());
    if (values.json) printJson(print, report);
    else for (const l of renderStatus(report)) print(l);
    return report.ok ? 0 : 1;
  });
}

export const command: Command = statusCommand();
