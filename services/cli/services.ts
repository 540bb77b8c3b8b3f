/**
 * The services `bkstream up` runs, in start order (a service may depend on one started before it).
 * Each entry is a ServiceModule (services/<name>/service.ts); `env` lets `up` point a service at one
 * started earlier (e.g. BKDATA_API_URL at the local bkdata-sim).
 */
import type { ServiceModule } from '../common/service.ts';

export interface UpEntry {
  module: () => Promise<ServiceModule>;
  /** Extra environment for this service, given what `up` knows (ports of earlier services). */
  env?: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
  /** Whether to run it at all (e.g. bkdata-sim only when BKDATA_API_URL is unset). */
  enabled?: (env: NodeJS.ProcessEnv) => boolean;
}

export const UP_SERVICES: UpEntry[] = [
  // The local BKData stand-in, only when no real BKData is configured; the orchestrator points at it.
  {
    module: async () => (await import('../bkdata-sim/service.ts')).bkdataSimService,
    enabled: (env) => !env.BKDATA_API_URL,
  },
  {
    module: async () => (await import('../orchestrator/service.ts')).orchestratorService,
    env: (env) => (env.BKDATA_API_URL ? {} : { BKDATA_API_URL: `http://${env.BKDATA_SIM_HOST ?? '127.0.0.1'}:${env.BKDATA_SIM_PORT ?? '8090'}/` }),
  },
  { module: async () => (await import('../discovery/service.ts')).discoveryService },
  // Spans, traces, agent metrics and events, and the BaseQuery API (8083).
  { module: async () => (await import('../storage/service.ts')).storageService },
  // Tail sampling inside bkstream (spans -> spans.sampled) for applications with a running tail-sampling flow.
  { module: async () => (await import('../sampler/service.ts')).samplerService },
  // OTLP trace receiver (4317 gRPC, 4318 HTTP, admin 4310); register applications with `bkstream apps create`.
  // Started after discovery, so it stops first (intake first).
  { module: async () => (await import('../collector/service.ts')).collector },
  // The web console (8080), pointed at the APIs started here (their hosts and ports as configured; `up` puts the
  // ports they bound in place of ports configured as 0), so after all of them, the collector's admin API included.
  {
    module: async () => (await import('../console/service.ts')).consoleService,
    env: (env) => {
      const at = (host: string | undefined, port: string | undefined, fallback: string): string => {
        const h = !host || host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
        return `http://${h.includes(':') ? `[${h}]` : h}:${port ?? fallback}`;
      };
      const otlpHost = env.COLLECTOR_OTLP_HOST;
      return {
        CONSOLE_DISCOVERY_URL: env.CONSOLE_DISCOVERY_URL ?? at(env.DISCOVERY_HTTP_HOST, env.DISCOVERY_HTTP_PORT, '8081'),
        CONSOLE_STORAGE_URL: env.CONSOLE_STORAGE_URL ?? at(env.STORAGE_HTTP_HOST, env.STORAGE_HTTP_PORT, '8083'),
        CONSOLE_ORCHESTRATOR_URL: env.CONSOLE_ORCHESTRATOR_URL ?? at(env.ORCH_HOST, env.ORCH_HTTP_PORT, '8082'),
        CONSOLE_COLLECTOR_ADMIN_URL: env.CONSOLE_COLLECTOR_ADMIN_URL ?? at(env.COLLECTOR_ADMIN_HOST, env.COLLECTOR_ADMIN_PORT, '4310'),
        CONSOLE_OTLP_HTTP_URL: env.CONSOLE_OTLP_HTTP_URL ?? `${at(otlpHost, env.COLLECTOR_OTLP_HTTP_PORT, '4318')}/v1/traces`,
        CONSOLE_OTLP_GRPC_URL: env.CONSOLE_OTLP_GRPC_URL ?? at(otlpHost, env.COLLECTOR_OTLP_GRPC_PORT, '4317'),
      };
    },
  },
  // The host agent (bkmonitorbeat) with the example configuration (services/agent/examples/, AGENT_CONFIG
  // to change it; admin 4320): host tasks, heartbeat, selfstats to the metrics and events topics. An
  // intake too, so it is started last and stopped first.
  { module: async () => (await import('../agent/service.ts')).agentService },
];
