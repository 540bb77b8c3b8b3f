/**
 * The contract every service follows, so one process can run one service (`services/<name>/main.ts`)
 * or all of them (`bkstream up`, which must share one store: embedded PGlite is single-process).
 *
 * A service exports a {@link ServiceModule} from `services/<name>/service.ts`, its only composition root:
 *
 * 1. `config(env)` loads the shared settings and the service's own in one pass and throws one
 *    ConfigError listing every problem of both — before anything connects;
 * 2. the runner opens only the infrastructure the service declares in `needs` (a service without a
 *    database, such as the host agent, never opens the store). The store must answer (it is migrated
 *    before anything else); the broker need not: the bus connects when its parts start, and a service
 *    brings its listeners up first and its Kafka parts in the background (background.ts), reporting
 *    not ready (health.ts) until the broker answers;
 * 3. `create(deps, config)` builds ports → parts and returns one Component (a Lifecycle) that `start()`
 *    brings up and `stop()` takes down (intake first, within an overall deadline).
 *
 * `spec` is the service's own declaration of settings; its README's configuration table is generated
 * from it (and a test keeps the two equal for every service).
 */
import { serviceAuth, type Authenticator } from './auth.ts';
import { Bus } from './bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig, validateCommon, type Config, type Spec } from './config.ts';
import type { ConfigProblem } from './errors.ts';
import { Lifecycle, runMain, type Component } from './lifecycle.ts';
import { createLogger, type Logger } from './log.ts';
import { createRegistry, type Registry } from './metrics.ts';
import { installWarningFilter } from './process.ts';
import { dependencyProbes, type Probe } from './health.ts';
import type { Store } from './store/index.ts';
import { guardStore } from './store-guard.ts';

/** Settings every service shares (brokers, topic prefix, store, log level). */
export type CommonConfig = Config<typeof commonSpec>;

/** Infrastructure a service may ask for. */
export interface Ports {
  /** Migrated and started. */
  store: Store;
  /** Not connected yet: its producers and consumers connect when they start. */
  bus: Bus;
}
export type Need = keyof Ports;

/** What `create` gets: always env, logger, registry and the shared settings; store and bus only if needed. */
export type ServiceDeps<N extends Need = Need> = {
  /** Environment the service reads its config from (process.env, or a test's own). */
  env: NodeJS.ProcessEnv;
  logger: Logger;
  registry: Registry;
  common: CommonConfig;
} & Pick<Ports, N>;

export interface ServiceModule<C = unknown, N extends Need = Need> {
  readonly name: string;
  /** The infrastructure the runner opens for this service, and nothing else. */
  readonly needs: readonly N[];
  /** The service's own settings; its README's configuration table is generated from this. */
  readonly spec: Spec;
  /** Shared + own settings from `env` (and BKSTREAM_CONFIG); throws one ConfigError listing every problem. */
  config(env: NodeJS.ProcessEnv): C;
  create(deps: ServiceDeps<N>, config: C): Promise<Component>;
}

/** Declares a service module (only for type inference). */
export function defineService<C, N extends Need>(module: ServiceModule<C, N>): ServiceModule<C, N> {
  return module;
}

/**
 * Loads the shared settings and a service's own in one pass: a file or environment with problems in
 * both gets one error naming all of them. `validate` runs cross-field checks once every field parsed.
 */
export function loadServiceConfig<S extends Spec>(
  spec: S,
  env: NodeJS.ProcessEnv,
  validate?: (config: Config<typeof commonSpec & S>) => ConfigProblem[],
): Config<typeof commonSpec & S> {
  return loadConfig({ ...commonSpec, ...spec }, {
    env,
    validate: (config: Config<typeof commonSpec & S>) => [...validateCommon(config), ...(validate ? validate(config) : [])],
  });
}

/**
 * What a service's HTTP server needs to be secure and truthful, from its dependencies: the
 * authenticator (admin tokens, its store's application tokens) and the readiness probes of its store
 * and broker. Adopting both is one line: `createHttpServer({ ..., ...edgeOptions(deps) })`.
 */
export function edgeOptions(deps: Pick<ServiceDeps, 'logger' | 'registry' | 'common'> & { store?: Store | undefined; bus?: Bus | undefined }): { auth: Authenticator; probes: Probe[]; probeIntervalMs: number; probeTimeoutMs: number } {
  return { auth: serviceAuth(deps), probes: dependencyProbes(deps), probeIntervalMs: deps.common.healthProbeIntervalMs, probeTimeoutMs: deps.common.healthProbeTimeoutMs };
}

export interface Infrastructure<N extends Need = Need> {
  deps: ServiceDeps<N>;
  /** Stops what the infrastructure opened (the store). */
  lifecycle: Lifecycle;
}

/**
 * Opens what `needs` names, on the shared settings: the store (migrated, its outages named — store-guard.ts)
 * and the bus (not connected: a broker that is down does not stop the service from coming up).
 * `KAFKA_BROKERS` unset means the local broker on 127.0.0.1:${KAFKA_PORT:-9092} (`npm run kafka:start`
 * or `bkstream up` starts it).
 */
export async function openInfrastructure<N extends Need>(env: NodeJS.ProcessEnv, name: string, needs: readonly N[], common: CommonConfig = loadConfig(commonSpec, { env })): Promise<Infrastructure<N>> {
  const logger = createLogger({ level: common.logLevel, defaultMeta: { service: name } });
  const registry = createRegistry({ service: name });
  const lifecycle = new Lifecycle({ logger });
  const ports: Partial<Ports> = {};
  if (needs.includes('store' as N)) {
    // Loaded only by services that have a store: the host agent never loads the database drivers.
    const { createStore } = await import('./store/index.ts');
    const store = createStore({ databaseUrl: common.databaseUrl, dataDir: `${common.dataDir}/pglite`, pgliteSharedBuffers: common.pgliteSharedBuffers, pgliteHeapLimitMb: common.pgliteHeapLimitMb || undefined, logger });
    lifecycle.add(store);
    await lifecycle.start();
    await store.migrate();
    ports.store = guardStore(store);
  }
  if (needs.includes('bus' as N)) {
    ports.bus = new Bus({ brokers: brokersOrLocal(common.kafkaBrokers, env), clientId: `bkstream-${name}`, logger, registry });
  }
  return { deps: { env, logger, registry, common, ...ports } as ServiceDeps<N>, lifecycle };
}

/** The body of a service's `main.ts`: check config, open what the service needs, create and start it, stop on a signal. */
export function runService<C, N extends Need>(module: ServiceModule<C, N>): void {
  installWarningFilter();
  runMain({
    name: module.name,
    run: async () => {
      const config = module.config(process.env);
      const infra = await openInfrastructure(process.env, module.name, module.needs);
      const all = new Lifecycle({ logger: infra.deps.logger });
      all.add(infra.lifecycle);
      try {
        all.add(await module.create(infra.deps, config));
        await all.start();
      } catch (err) {
        await all.stop().catch(() => undefined);
        throw err;
      }
      return all;
    },
  });
}
