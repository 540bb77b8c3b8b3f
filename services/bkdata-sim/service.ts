/**
 * bkdata-sim as a service (README): a local, stateful stand-in for the BKData (bk-base) REST API with
 * fault injection, for local runs (`bkstream up` starts it when BKDATA_API_URL is unset) and tests. It
 * is not BKData: the README says what it models and what it does not. This file is its only composition
 * root: ports (state and its persistence) → parts (faults, call log, the BKData and admin routes, the
 * HTTP server, the clean runner that consumes the running cleans' raw data topics) → one Lifecycle.
 */
import type { Bus } from '../common/bus/index.ts';
import { createHttpServer } from '../common/http.ts';
import { Lifecycle } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { Registry } from '../common/metrics.ts';
import { defineService, loadServiceConfig } from '../common/service.ts';
import type { Queryable } from '../common/store/index.ts';
import { topicName } from '../common/topics.ts';
import { adminRoutes } from './admin-api.ts';
import type { SimTiming } from './api.ts';
import { CallLog } from './calls.ts';
import { CleanRunner } from './cleans.ts';
import { parseFamilyRates, parseWindows, simSpec, validateSim, type SimConfig } from './config.ts';
import { defaultFaults, describeFaults, FAMILIES, pruneOutages, type FaultSettings, type OutageWindow } from './faults.ts';
import { apiRoutes } from './http-api.ts';
import { simMetrics } from './metrics.ts';
import { memoryPersistence, SimState, storePersistence } from './state.ts';

/** What callers (tests, the benchmark) reach of a running sim besides start/stop. */
export interface SimParts {
  readonly state: SimState;
  /** Faults in force; tests change them directly, operators through `/admin/faults`. */
  readonly faults: FaultSettings;
  readonly calls: CallLog;
  readonly timing: SimTiming;
  /** The cleans running behind the databus API (README, Cleans): their rows and counts. */
  readonly cleans: CleanRunner;
  /** The port bound (with BKDATA_SIM_PORT=0, the one chosen). */
  port(): number;
  /** Base URL of the API (what the orchestrator's BKDATA_API_URL points at). */
  url(): string;
  /** Makes every API call fail for `durationMs`, starting in `startInMs`. */
  addOutage(durationMs: number, startInMs?: number): OutageWindow;
}

export type BkdataSim = Lifecycle & SimParts;

export interface BkdataSimDeps {
  config: SimConfig;
  logger: Logger;
  registry: Registry;
  /** Needed when `config.persist` is `store`. */
  store?: Queryable;
  /** Where the running cleans read their raw data; without it no clean runs (README, Cleans). */
  bus?: Bus;
  /** Topic prefix of the dead-letter topic the clean consumers are given (default `bkstream`). */
  topicPrefix?: string;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/** The faults a configuration starts with (outage windows are added at start, relative to it). */
function initialFaults(config: SimConfig): FaultSettings {
  const faults = defaultFaults();
  faults.latencyMs = config.latencyMs;
  faults.latencyJitterMs = config.latencyJitterMs;
  for (const f of FAMILIES) faults.errorRates[f] = config.errorRate;
  Object.assign(faults.errorRates, parseFamilyRates(config.familyErrorRates));
  Object.assign(faults.lostAnswerRates, parseFamilyRates(config.lostAnswerRates));
  faults.errorMode = config.errorMode;
  faults.outageMode = config.outageMode;
  faults.stuckCleans = [...config.stuckCleans];
  return faults;
}

/** Builds bkdata-sim; `start()` loads its objects and listens. */
export function createBkdataSim(deps: BkdataSimDeps): BkdataSim {
  const { config, logger } = deps;
  const log = logger.child({ component: 'bkdata-sim' });
  const now = deps.now ?? Date.now;
  if (config.persist === 'store' && !deps.store) throw new Error('bkdata-sim: BKDATA_SIM_PERSIST=store needs a store');

  // ports
  const state = new SimState(config.persist === 'store' && deps.store ? storePersistence(deps.store) : memoryPersistence);

  // parts
  const faults = initialFaults(config);
  const timing: SimTiming = { cleanStartDelayMs: config.cleanStartDelayMs, flowStartDelayMs: config.flowStartDelayMs, flowStopDelayMs: config.flowStopDelayMs };
  const calls = new CallLog(config.callLogMax);
  const metrics = simMetrics(deps.registry);
  const cleans = new CleanRunner({
    state,
    timing,
    faults,
    now,
    bus: config.runCleans ? deps.bus : undefined,
    log: log.child({ component: 'bkdata-sim-cleans' }),
    metrics,
    resultsMax: config.resultsMax,
    pollMs: config.cleanPollMs,
    rawTopicTemplate: config.rawTopic,
    dlqTopic: topicName(deps.topicPrefix ?? 'bkstream', 'dlq'),
  });
  const parts = { state, faults, calls, timing, metrics, now, changed: () => cleans.poke() };
  const addOutage = (durationMs: number, startInMs = 0): OutageWindow => {
    const at = now();
    pruneOutages(faults, at);
    const w = { startAt: at + startInMs, endAt: at + startInMs + durationMs };
    faults.outages.push(w);
    log.warn('outage scheduled', { start_at: new Date(w.startAt).toISOString(), end_at: new Date(w.endAt).toISOString(), mode: faults.outageMode });
    return w;
  };
  const http = createHttpServer({
    host: config.host,
    port: config.port,
    registry: deps.registry,
    logger,
    health: () => ({ ok: true, checks: { in_outage: describeFaults(faults, now()).in_outage, persist: config.persist } }),
    routes: [...adminRoutes({ ...parts, addOutage, log, runner: cleans, resultsMax: config.resultsMax }), ...apiRoutes(parts)],
  });
  const url = (): string => `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${http.port()}/`;

  // the lifecycle
  const lifecycle = new Lifecycle({ logger });
  lifecycle.add({
    name: 'bkdata-sim-state',
    start: async () => {
      await state.load();
      faults.outages.push(...parseWindows(config.outages, now()));
    },
    // Whatever a handler changed is persisted before its answer; this catches a reset's deletions.
    stop: () => state.flush(),
  });
  lifecycle.add({ name: 'bkdata-sim-http', start: () => http.start(), stop: () => http.stop() });
  // Started after the state is loaded (cleans running before a restart run again); stopped before it is flushed.
  lifecycle.add(cleans);
  lifecycle.add({
    name: 'started',
    start: async () => log.info('bkdata-sim started', { url: url(), persist: config.persist, cleans_run: config.runCleans && deps.bus !== undefined }),
    stop: async () => undefined,
  });

  return Object.assign(lifecycle, { state, faults, calls, timing, cleans, port: () => http.port(), url, addOutage });
}

export const bkdataSimService = defineService({
  name: 'bkdata-sim',
  needs: ['store', 'bus'],
  spec: simSpec,
  config: (env) => loadServiceConfig(simSpec, env, validateSim),
  async create(deps, config) {
    return createBkdataSim({ config, logger: deps.logger, registry: deps.registry, store: deps.store, bus: deps.bus, topicPrefix: deps.common.topicPrefix });
  },
});

export default bkdataSimService;
