/**
 * `bkstream up`: the whole pipeline on one machine, on the embedded defaults.
 *
 * - Configuration: the shared settings, the topics' and every service's own are checked first, before
 *   anything starts or connects, and every problem of every key is listed in one error.
 * - Kafka: KAFKA_BROKERS, or the local broker (scripts/kafka.ts), started here and stopped on exit.
 * - Topics: created when missing (partitions/retention from config).
 * - Store: DATABASE_URL, or embedded PGlite under DATA_DIR (./data); migrated.
 * - Admin token: on the first run (no admin token in the store yet) one is created and printed, once
 *   (SECURITY.md); the CLI and the console use it.
 * - Services: every entry of services/cli/services.ts, in one process sharing the store and the bus. A
 *   service pointed at others (the console at the APIs, the orchestrator at bkdata-sim) is configured with
 *   the ports they bound where those were configured as 0 ({@link configWithBoundPorts}).
 * - Once up, it prints what runs where (each service's listeners, the console's URL, the broker and the
 *   store) and how to send traces ({@link describeUp}).
 * - `--demo` also registers a demo application and runs the demo shop's traffic (services/cli/demo/):
 *   traced services calling each other on loopback, exporting to the collector, and a tail-sampling flow
 *   for the application against the local bkdata-sim. It is loaded only then (it uses the OpenTelemetry
 *   SDK, a development dependency).
 * - `--discovery N` / `--storage N` run N instances of discovery / storage in the service's consumer
 *   groups, so the group spreads the topics' partitions over them and rebalances when one stops
 *   ({@link scaleInstances}). Instance 1 keeps the configured HTTP port; instances 2…N listen on free
 *   ports (port 0), which the summary prints as bound. Each instance has its own bus client and
 *   metrics registry (its own /metrics), and shares the store.
 * Ctrl-C (SIGINT) or SIGTERM stops everything, intake first (the demo before the collector).
 */
import { brokerLog, brokersOf, kafkaSettings, startKafka, stopKafka } from '../local-kafka.ts';
import { ensureTopics } from '../topics.ts';
import { ensureBootstrapAdminToken } from '../../common/auth.ts';
import { brokersOrLocal, commonSpec, loadConfig, validateCommon } from '../../common/config.ts';
import { Lifecycle, type Component } from '../../common/lifecycle.ts';
import { ConfigError, type ConfigProblem } from '../../common/errors.ts';
import { openInfrastructure, type ServiceDeps, type ServiceModule } from '../../common/service.ts';
import { Bus } from '../../common/bus/index.ts';
import { createRegistry } from '../../common/metrics.ts';
import { topicsSpec } from '../../common/topics.ts';
import { helpText, parseCommand, usageLine, type Command, type CommandSpec } from '../command.ts';
import { UP_SERVICES, type UpEntry } from '../services.ts';
import type { CollectorService } from '../../collector/service.ts';
import { adminTokenHelp } from './admin.ts';

/**
 * Every configuration problem `up` would meet — shared keys, topics, each service's own — in one
 * ConfigError, without starting or connecting anything; the planned services and their configs otherwise.
 */
export async function checkUpConfig(env: NodeJS.ProcessEnv, entries: readonly UpEntry[] = UP_SERVICES): Promise<{ module: ServiceModule; config: unknown; entry: UpEntry }[]> {
  const problems: ConfigProblem[] = [];
  const add = (err: unknown): void => {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) if (!problems.some((q) => q.key === p.key && q.message === p.message)) problems.push(p);
  };
  try {
    loadConfig({ ...commonSpec, ...topicsSpec }, { env, validate: validateCommon });
  } catch (err) {
    add(err);
  }
  const planned: { module: ServiceModule; config: unknown; entry: UpEntry }[] = [];
  for (const entry of entries.filter((e) => !e.enabled || e.enabled(env))) {
    Object.assign(env, entry.env?.(env) ?? {});
    const module = await entry.module();
    try {
      planned.push({ module, config: module.config(env), entry });
    } catch (err) {
      add(err);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return planned;
}

/** A listener of a service, read from its config: what it serves and the config keys of its host and port. */
interface Listener {
  what: string;
  host: string;
  port: string;
  /** Config key of a switch that turns the listener off. */
  enabled?: string;
  scheme?: 'http' | 'grpc';
  path?: string;
  /** The port the running service bound (its port accessor), for a port configured as 0. */
  bound?: (service: Record<string, unknown>) => unknown;
}

/** Calls a running service's port accessor `name` (e.g. `port`, `httpPort`), if it has one. */
const call = (name: string) => (service: Record<string, unknown>): unknown => (typeof service[name] === 'function' ? (service[name] as () => unknown)() : undefined);
const collectorPort = (which: 'grpc' | 'http' | 'admin') => (service: Record<string, unknown>): unknown => (call('ports')(service) as Record<string, unknown> | undefined)?.[which];

/** The port of a service's `http` server (discovery, storage), when it is listening. */
function httpServerPort(service: Record<string, unknown>): unknown {
  const http = service.http as { port?: () => unknown } | undefined;
  try {
    return typeof http?.port === 'function' ? http.port() : undefined;
  } catch {
    return undefined;
  }
}

/** The listeners of each service `up` runs (their hosts and ports as configured). */
const LISTENERS: Record<string, readonly Listener[]> = {
  console: [{ what: 'web console: applications, service map, traces, hosts, flows', host: 'host', port: 'port', bound: call('port') }],
  collector: [
    { what: 'OTLP/gRPC trace receiver', host: 'otlpHost', port: 'grpcPort', enabled: 'grpcEnabled', bound: collectorPort('grpc') },
    { what: 'OTLP/HTTP trace receiver', host: 'otlpHost', port: 'httpPort', enabled: 'httpEnabled', path: '/v1/traces', bound: collectorPort('http') },
    { what: 'admin: application registry, /metrics, /readyz', host: 'adminHost', port: 'adminPort', bound: collectorPort('admin') },
  ],
  discovery: [{ what: 'topology API (endpoints, hosts, instances, nodes, relations)', host: 'httpHost', port: 'httpPort', bound: httpServerPort }],
  storage: [{ what: 'traces, spans and metrics API', host: 'httpHost', port: 'httpPort', bound: httpServerPort }],
  orchestrator: [
    { what: 'flows API', host: 'host', port: 'httpPort', bound: call('httpPort') },
    { what: 'flow commands over gRPC', host: 'host', port: 'grpcPort', scheme: 'grpc', bound: call('grpcPort') },
  ],
  'bkdata-sim': [{ what: 'BKData API stand-in', host: 'host', port: 'port', bound: call('port') }],
  sampler: [{ what: 'tail sampling: /metrics, /healthz', host: 'httpHost', port: 'httpPort', bound: httpServerPort }],
  agent: [{ what: 'host agent admin: /metrics, /healthz', host: 'adminHost', port: 'adminPort', bound: call('adminPort') }],
};

/**
 * The planned services' configs with the ports their running services bound in place of ports configured
 * as 0 (for services that tell theirs), so the summary and links name real addresses.
 */
export function withBoundPorts<P extends { module: { name: string }; config: unknown; instance?: number | undefined }>(planned: readonly P[], running: ReadonlyMap<string, unknown>): P[] {
  return planned.map((p) => {
    const service = running.get(instanceName(p));
    if (typeof service !== 'object' || service === null) return p;
    const config = { ...(p.config as Record<string, unknown>) };
    for (const l of LISTENERS[p.module.name] ?? []) {
      const port = l.bound?.(service as Record<string, unknown>);
      if (config[l.port] === 0 && typeof port === 'number' && port > 0) config[l.port] = port;
    }
    return { ...p, config };
  });
}

/**
 * `env` with each listener port configured as 0 replaced by the port its running service bound (for the
 * services of `planned` in `running` that tell theirs; instance 1 of a scaled service, whose port the
 * setting is), so a service configured from another's port (the console's upstreams, the orchestrator's
 * BKData URL: services.ts) is pointed at the real address. `env` itself when there is none.
 */
export function envWithBoundPorts(env: NodeJS.ProcessEnv, planned: readonly { module: { name: string; spec: ServiceModule['spec'] }; config: unknown; instance?: number | undefined }[], running: ReadonlyMap<string, unknown>): NodeJS.ProcessEnv {
  let out = env;
  for (const p of planned) {
    if ((p.instance ?? 1) !== 1) continue;
    const service = running.get(instanceName(p));
    if (typeof service !== 'object' || service === null) continue;
    for (const l of LISTENERS[p.module.name] ?? []) {
      const key = p.module.spec[l.port]?.env;
      const port = l.bound?.(service as Record<string, unknown>);
      if (!key || (p.config as Record<string, unknown>)[l.port] !== 0 || typeof port !== 'number' || port <= 0) continue;
      if (out === env) out = { ...env };
      out[key] = String(port);
    }
  }
  return out;
}

/**
 * The config to start planned service `p` with, given the services `running` already: its planned one,
 * unless its entry configures it from their ports (services.ts) and some of those were configured as 0 —
 * then its config from `env` (the environment before services.ts's additions) with the bound ports.
 */
export function configWithBoundPorts(p: { module: ServiceModule; config: unknown; entry: UpEntry; instance?: number | undefined }, env: NodeJS.ProcessEnv, planned: Parameters<typeof envWithBoundPorts>[1], running: ReadonlyMap<string, unknown>): unknown {
  const bound = p.entry.env ? envWithBoundPorts(env, planned, running) : env;
  return bound === env ? p.config : p.module.config({ ...bound, ...p.entry.env?.(bound) });
}

/** How many instances of discovery and storage `up` runs (`--discovery N`, `--storage N`); default 1 each. */
export interface UpScale {
  discovery?: number | undefined;
  storage?: number | undefined;
}

/** The services `up` may run several instances of, with the option that sets their count. */
export const SCALABLE = ['discovery', 'storage'] as const;

/** Most instances of one service `up` runs (a group cannot use more members than the topics have partitions). */
export const MAX_INSTANCES = 12;

/** A planned service's name with its instance number when there are several (`discovery 2`). */
export function instanceName(p: { module: { name: string }; instance?: number | undefined }): string {
  return p.instance === undefined ? p.module.name : `${p.module.name} ${p.instance}`;
}

/**
 * The planned services with discovery and storage repeated as `scale` asks: N entries numbered 1…N
 * that share the config (so the consumer groups), instance 1 on the configured HTTP port and the others
 * on port 0 (a free port each: base + i would meet the next service's default port). One instance stays
 * unnumbered.
 */
export function scaleInstances<P extends { module: { name: string }; config: unknown }>(planned: readonly P[], scale: UpScale): (P & { instance?: number })[] {
  return planned.flatMap((p) => {
    const n = SCALABLE.includes(p.module.name as (typeof SCALABLE)[number]) ? (scale[p.module.name as (typeof SCALABLE)[number]] ?? 1) : 1;
    if (n <= 1) return [p];
    return Array.from({ length: n }, (_, i) => ({ ...p, instance: i + 1, config: i === 0 ? p.config : { ...(p.config as Record<string, unknown>), httpPort: 0 } }));
  });
}

/** A URL a local client reaches `host:port` at (a wildcard interface is reached on loopback). */
export function localUrl(host: string, port: number, scheme: 'http' | 'grpc' = 'http', path = ''): string {
  const h = host === '' || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return `${scheme}://${h.includes(':') ? `[${h}]` : h}:${port}${path}`;
}

/** The OTLP endpoints of the collector's config (undefined for a listener that is off). */
export function otlpEndpoints(collector: { otlpHost: string; grpcEnabled: boolean; grpcPort: number; httpEnabled: boolean; httpPort: number }, bound?: { grpc: number | undefined; http: number | undefined }): { grpcUrl: string | undefined; httpUrl: string | undefined } {
  const grpc = bound?.grpc ?? collector.grpcPort;
  const http = bound?.http ?? collector.httpPort;
  return {
    grpcUrl: collector.grpcEnabled ? localUrl(collector.otlpHost, grpc) : undefined,
    httpUrl: collector.httpEnabled ? localUrl(collector.otlpHost, http, 'http', '/v1/traces') : undefined,
  };
}

/** What `up` says once everything started, besides the services' own configs. */
export interface UpSummaryContext {
  brokers: string;
  /** The local broker's log, when `up` runs the local broker. */
  brokerLog?: string | undefined;
  /** `pglite (<dir>)` or `postgresql`. */
  store: string;
}

/**
 * What runs where — every listener of every planned service (the console first, then the collector), the
 * broker and the store — and how to send traces: the OTLP endpoints and how to get an application token.
 */
export function describeUp(planned: readonly { module: { name: string }; config: unknown; instance?: number | undefined }[], context: UpSummaryContext): string[] {
  const order = (name: string): number => (name === 'console' ? 0 : name === 'collector' ? 1 : 2);
  const rows: [string, string, string][] = [];
  for (const p of [...planned].sort((a, b) => order(a.module.name) - order(b.module.name))) {
    const { module, config } = p;
    const c = config as Record<string, unknown>;
    let first = true;
    for (const l of LISTENERS[module.name] ?? []) {
      if (l.enabled !== undefined && c[l.enabled] === false) continue;
      const port = Number(c[l.port]);
      const where = port === 0 ? `${localUrl(String(c[l.host]), 0, l.scheme).replace(/:0$/, '')}:(a free port)` : localUrl(String(c[l.host]), port, l.scheme, l.path);
      rows.push([first ? instanceName(p) : '', where, l.what]);
      first = false;
    }
  }
  rows.push(['kafka', context.brokers, context.brokerLog ? `local broker (log: ${context.brokerLog})` : 'KAFKA_BROKERS']);
  rows.push(['store', context.store, context.store.startsWith('pglite') ? 'embedded PGlite (DATABASE_URL for PostgreSQL)' : 'DATABASE_URL']);
  const w0 = Math.max(...rows.map((r) => r[0].length));
  const w1 = Math.max(...rows.map((r) => r[1].length));
  const lines = ['what runs where:', ...rows.map(([a, b, c]) => `  ${a.padEnd(w0)}  ${b.padEnd(w1)}  ${c}`.trimEnd())];
  const collector = planned.find((p) => p.module.name === 'collector')?.config as Parameters<typeof otlpEndpoints>[0] | undefined;
  if (collector) {
    const { grpcUrl, httpUrl } = otlpEndpoints(collector);
    const endpoints = [grpcUrl ? `${grpcUrl} (OTLP/gRPC)` : '', httpUrl ? `${httpUrl} (OTLP/HTTP)` : ''].filter(Boolean).join(' or ');
    lines.push(
      '',
      'send traces: point an OpenTelemetry SDK\'s OTLP trace exporter at',
      `  ${endpoints}`,
      '  with the application\'s token in the x-bk-token header (gRPC: metadata). Get a token by registering an application:',
      '  npx bkstream apps create --biz 2 --app <name>   (prints the token once; with the admin token in BKSTREAM_ADMIN_TOKEN)',
      '  or on the console\'s Applications page (sign in with the admin token); the console shows an SDK snippet.',
    );
  }
  return lines;
}

/** `up`'s own options: `--demo`, `--discovery N`, `--storage N`; anything else is a usage error, `--help` prints the usage (command.ts). */
const UP_SPEC = {
  name: 'up',
  summary: 'run the whole pipeline locally (broker, topics, store, every service)',
  options: {
    demo: { type: 'boolean', help: 'also run the demo shop: an application, traced services and their traffic' },
    discovery: { type: 'integer', value: 'n', default: 1, help: `run n discovery instances in one consumer group (1-${MAX_INSTANCES}); instances 2…n on free ports` },
    storage: { type: 'integer', value: 'n', default: 1, help: `run n storage instances in one consumer group per topic (1-${MAX_INSTANCES}); instances 2…n on free ports` },
  },
  notes: 'KAFKA_BROKERS (default: a local broker started here), DATABASE_URL (default: embedded PGlite under DATA_DIR) and\nevery service\'s settings are checked before anything starts; Ctrl-C stops everything, intake first.\n' +
    'Several instances of a service share its consumer groups: the partitions are spread over them and move when one\nstops; the summary prints each instance\'s port. Example: bkstream up --discovery 3 --storage 2',
} as const satisfies CommandSpec;

export const command: Command = {
  summary: UP_SPEC.summary,
  usage: usageLine(UP_SPEC),
  help: () => helpText(UP_SPEC),
  async run(args, baseEnv) {
    const parsed = parseCommand(UP_SPEC, args);
    const options = parsed.values;
    for (const name of SCALABLE) {
      const n = options[name];
      if (n < 1 || n > MAX_INSTANCES) parsed.usage(`--${name} must be between 1 and ${MAX_INSTANCES}, not ${n}`);
    }
    const env = { ...baseEnv };
    // Every setting is checked before anything is started or opened, so one run lists every problem.
    await checkUpConfig({ ...env });
    const config = loadConfig({ ...commonSpec, ...topicsSpec }, { env });
    const settings = kafkaSettings(env);
    let startedBroker = false;
    if (config.kafkaBrokers.length === 0) {
      console.log(`local Kafka broker on 127.0.0.1:${settings.port}…`);
      // The first run resolves the broker jars with mvn: its downloads are reported, condensed.
      startedBroker = (await startKafka(settings, undefined, { progress: (m) => console.log(`  kafka: ${m}`) })).started;
      env.KAFKA_BROKERS = brokersOf(settings).join(',');
    }
    const all = new Lifecycle({ logger: (await import('../../common/log.ts')).createLogger({ level: 'warn' }) });
    if (startedBroker) all.onStop('kafka', () => stopKafka(settings).then(() => undefined));
    try {
      const created = await ensureTopics(env.KAFKA_BROKERS ? env.KAFKA_BROKERS.split(',') : brokersOf(settings), config.topicPrefix, config);
      if (created.length > 0) console.log(`created topics: ${created.join(', ')}`);
      // The configs again, on the final environment (the local broker's address is known now).
      // The environment before checkUpConfig adds what services.ts derives from it (the console's URLs, …).
      const ownEnv = { ...env };
      const planned = scaleInstances(await checkUpConfig(env), { discovery: options.discovery, storage: options.storage });
      const needs = [...new Set(planned.flatMap((p) => p.module.needs))];
      const infra = await openInfrastructure(env, 'bkstream', needs);
      all.add(infra.lifecycle);
      await all.start();
      const store = (infra.deps as Partial<ServiceDeps>).store;
      const bootstrap = store ? await ensureBootstrapAdminToken(store) : undefined;
      if (bootstrap) console.log(`first run: ${adminTokenHelp(bootstrap)}`);
      const running = new Map<string, Component>();
      for (const p of planned) {
        const { module } = p;
        // Configured from services started before it on ports configured as 0 (the console, the orchestrator): with the ports they bound.
        const config = configWithBoundPorts(p, ownEnv, planned, running);
        // Several instances: each its own bus client and registry (its /metrics tells its own partitions and lag).
        const own = p.instance === undefined || !module.needs.includes('bus') ? {} : (() => {
          const registry = createRegistry({ service: module.name, instance: String(p.instance) });
          const logger = infra.deps.logger.child({ instance: p.instance });
          const bus = new Bus({ brokers: brokersOrLocal(infra.deps.common.kafkaBrokers, env), clientId: `bkstream-${module.name}-${p.instance}`, logger, registry });
          return { registry, logger, bus };
        })();
        const service = await module.create({ ...infra.deps, env, ...own }, config);
        all.add(service);
        await all.start();
        running.set(instanceName(p), service);
        console.log(`started ${instanceName(p)}`);
      }
      const deps = infra.deps as ServiceDeps;
      const listening = withBoundPorts(planned, running);
      console.log('');
      for (const line of describeUp(listening, {
        brokers: env.KAFKA_BROKERS ?? '',
        brokerLog: startedBroker ? brokerLog(settings) : undefined,
        store: deps.store.driver === 'pglite' ? `pglite (${deps.common.dataDir}/pglite)` : deps.store.driver,
      })) console.log(line);
      console.log('');
      if (options.demo) {
        const collector = planned.find((p) => p.module.name === 'collector');
        if (!collector) throw new Error('bkstream up --demo: the collector is not among the services');
        // The demo runs on the OpenTelemetry SDK, a development dependency (npm ci installs it; --omit=dev does not).
        const { createDemo } = await import('../demo/demo.ts').catch((err: unknown) => {
          if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
          throw new Error(`bkstream up --demo needs the OpenTelemetry SDK, a development dependency: run npm ci without --omit=dev (${(err as Error).message})`);
        });
        const bound = (running.get('collector') as CollectorService | undefined)?.ports();
        const demo = createDemo({
          store: deps.store,
          bus: deps.bus,
          topicPrefix: config.topicPrefix,
          otlp: otlpEndpoints(collector.config as Parameters<typeof otlpEndpoints>[0], bound),
          // A real BKData (BKDATA_API_URL) gets no demo flow: only the local bkdata-sim does.
          submitFlow: planned.some((p) => p.module.name === 'bkdata-sim'),
          // The spans' host is the one the host agent reports (its AGENT_HOST_IP, 127.0.0.1 by default).
          ...(env.AGENT_HOST_IP ? { hostIp: env.AGENT_HOST_IP } : {}),
          print: (line) => console.log(line),
        });
        all.add(demo);
        await all.start();
        const consoleConfig = listening.find((p) => p.module.name === 'console')?.config as { host: string; port: number } | undefined;
        const app = demo.app();
        if (consoleConfig && app) {
          console.log(`demo: its service map: ${localUrl(consoleConfig.host, consoleConfig.port)}/#/apps/${app.application.bkBizId}/${app.application.appName}/map (sign in with the demo token, or the admin token for every page)`);
        }
      }
      console.log(`bkstream is up (store: ${deps.store.driver}, brokers: ${env.KAFKA_BROKERS ?? ''}). Ctrl-C stops it.`);
    } catch (err) {
      await all.stop().catch(() => undefined);
      throw err;
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    console.log('stopping…');
    await all.stop();
    return 0;
  },
};
