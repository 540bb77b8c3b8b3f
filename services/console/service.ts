/**
 * The web console as a service (README): the built front end plus a thin proxy to the discovery,
 * storage, orchestrator and collector-admin APIs, on port 8080. It needs no store and no bus. This file
 * is its only composition root: config → parts (assets, proxy, HTTP server) → one Lifecycle.
 */
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { Registry } from '../common/metrics.ts';
import { defineService, loadServiceConfig } from '../common/service.ts';
import { Assets } from './assets.ts';
import { DEFAULT_DIST, ensureBuilt } from './build.ts';
import { consoleSpec, validateConsole, type ConsoleConfig } from './config.ts';
import { consoleMetrics } from './metrics.ts';
import { Proxy } from './proxy.ts';
import { ConsoleServer, withSettings } from './server.ts';

export interface ConsoleService extends Component {
  readonly config: ConsoleConfig;
  /** The port bound (with CONSOLE_PORT=0, the one chosen). */
  port(): number;
  /** `http://host:port` of the running console. */
  url(): string;
}

export function loadConsoleConfig(env: NodeJS.ProcessEnv): ConsoleConfig {
  return loadServiceConfig(consoleSpec, env, validateConsole);
}

export interface ConsoleDeps {
  logger: Logger;
  registry: Registry;
}

export function createConsole(deps: ConsoleDeps, config: ConsoleConfig): ConsoleService {
  const log = deps.logger.child({ component: 'console' });
  const metrics = consoleMetrics(deps.registry);
  const assets = new Assets();
  let loaded = false;
  const proxy = new Proxy({
    upstreams: { discovery: config.discoveryUrl, storage: config.storageUrl, orchestrator: config.orchestratorUrl, collector: config.collectorAdminUrl },
    timeoutMs: config.upstreamTimeoutMs,
    maxBodyBytes: config.maxBodyBytes,
    metrics,
  });
  const server = new ConsoleServer({ config, assets, proxy, registry: deps.registry, metrics, logger: log, ready: () => loaded });

  const lifecycle = new Lifecycle({ logger: deps.logger, name: 'console' });
  lifecycle.add({
    name: 'console-assets',
    start: async () => {
      const dir = config.assetsDir ?? DEFAULT_DIST;
      if (config.assetsDir === undefined && (await ensureBuilt(dir))) log.info('front end built', { dir });
      await assets.load(dir, (html) => withSettings(html, server.settings()));
      loaded = true;
    },
    stop: async () => {
      loaded = false;
    },
  });
  // Stopped after the server, so calls in flight keep their upstream connections until it closed.
  lifecycle.onStop('console-proxy', () => proxy.close());
  lifecycle.add({ name: 'console-http', start: () => server.start(), stop: () => server.stop() });
  const url = (): string => `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${server.port()}`;
  lifecycle.add({ name: 'started', start: async () => log.info('console started', { url: url(), files: assets.size }), stop: async () => undefined });
  return Object.assign(lifecycle, { config, port: () => server.port(), url });
}

export const consoleService = defineService({
  name: 'console',
  needs: [],
  spec: consoleSpec,
  config: loadConsoleConfig,
  async create(deps, config) {
    return createConsole(deps, config);
  },
});

export default consoleService;
