/**
 * The contract every service follows, so one process can run one service (`services/<name>/main.ts`)
 * or all of them (`bkstream up`, which must share one store: embedded PGlite is single-process).
 *
 * A service exports a {@link ServiceModule} from `services/<name>/service.ts`. `create` loads the
 * service's own config from `deps.env` (throwing ConfigError listing every problem), builds its parts on
 * the injected store, bus, logger and registry, and returns one Component (usually a Lifecycle) that
 * `start()` brings up and `stop()` takes down (intake first).
 */
import { Bus, waitForBroker } from './bus.ts';
import { brokersOrLocal, commonSpec, loadConfig, type Config } from './config.ts';
import { Lifecycle, runMain, type Component } from './lifecycle.ts';
import { createLogger, type Logger } from './log.ts';
import { createRegistry, type Registry } from './metrics.ts';
import { createStore, type Store } from './store/index.ts';

export interface ServiceDeps {
  /** Environment the service reads its config from (process.env, or a test's own). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  registry: Registry;
  /** Migrated and started. */
  store: Store;
  bus: Bus;
  /** Settings shared by all services (brokers, topic prefix, store, log level). */
  common: Config<typeof commonSpec>;
}

export interface ServiceModule {
  readonly name: string;
  create(deps: ServiceDeps): Promise<Component>;
}

export interface Infrastructure {
  deps: Omit<ServiceDeps, 'registry'> & { registry: Registry };
  /** Stops the store (and anything else the infrastructure opened). */
  lifecycle: Lifecycle;
}

/**
 * Opens what services share: config, logger, store (migrated), bus. `KAFKA_BROKERS` unset means the
 * local broker on 127.0.0.1:${KAFKA_PORT:-9092}, which must already be running (`npm run kafka:start`
 * or `bkstream up` starts it).
 */
export async function openInfrastructure(env: NodeJS.ProcessEnv, name: string): Promise<Infrastructure> {
  const common = loadConfig(commonSpec, { env });
  const logger = createLogger({ level: common.logLevel, defaultMeta: { service: name } });
  const registry = createRegistry({ service: name });
  const lifecycle = new Lifecycle({ logger });
  const store = createStore({ databaseUrl: common.databaseUrl, dataDir: `${common.dataDir}/pglite`, pgliteSharedBuffers: common.pgliteSharedBuffers, pgliteHeapLimitMb: common.pgliteHeapLimitMb || undefined, logger });
  lifecycle.add(store);
  await lifecycle.start();
  await store.migrate();
  const bus = new Bus({ brokers: brokersOrLocal(common.kafkaBrokers, env), clientId: `bkstream-${name}`, logger, registry });
  await waitForBroker(bus, 30_000);
  return { deps: { env, logger, registry, store, bus, common }, lifecycle };
}

/** The body of a service's `main.ts`: open the infrastructure, create and start the service, stop on a signal. */
export function runService(module: ServiceModule): void {
  runMain({
    name: module.name,
    run: async () => {
      const infra = await openInfrastructure(process.env, module.name);
      const service = await module.create(infra.deps);
      const all = new Lifecycle({ logger: infra.deps.logger });
      all.add(infra.lifecycle);
      all.add(service);
      await all.start();
      return all;
    },
  });
}
