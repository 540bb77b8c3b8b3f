/**
 * The bkdata-sim HTTP server: the BKData routes of api.ts behind fault injection, the BKData envelope
 * `{result, code, message, errors, data}`, the admin API (`/admin/*`) and `/metrics`, `/healthz`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { counter, type Registry } from '../common/metrics.ts';
import { createHttpServer, json, type HttpRequest, type HttpResponse, type HttpServer, type Route } from '../common/http.ts';
import type { Queryable } from '../common/store/index.ts';
import { matchRoute, OK_CODE, SimApiError, type Params, type RouteContext, type SimTiming } from './api.ts';
import { CallLog, type CallOutcome } from './calls.ts';
import { parseFamilyRates, parseWindows, type SimConfig } from './config.ts';
import { decide, defaultFaults, describeFaults, FAMILIES, pruneOutages, updateFaults, type FaultSettings } from './faults.ts';
import { memoryPersistence, SimState, storePersistence } from './state.ts';

/** Header carrying the time (ms since the epoch) a client sent a request; recorded with each call. */
export const SENT_AT_HEADER = 'x-bkstream-sent-at';

export interface BkdataSimOptions {
  config: SimConfig;
  logger: Logger;
  registry: Registry;
  /** Needed when `config.persist` is `store`. */
  store?: Queryable;
  /** Clock, injectable for tests. */
  now?: () => number;
}

function envelope(data: unknown): Record<string, unknown> {
  return { result: true, code: OK_CODE, message: 'ok', errors: null, data };
}

function failure(code: string, message: string): Record<string, unknown> {
  return { result: false, code, message, errors: null, data: null };
}

export class BkdataSim implements Component {
  readonly name = 'bkdata-sim';
  readonly state: SimState;
  readonly faults: FaultSettings;
  readonly calls: CallLog;
  readonly timing: SimTiming;
  readonly #config: SimConfig;
  readonly #log: Logger;
  readonly #http: HttpServer;
  readonly #now: () => number;
  readonly #metric;
  #started = false;

  constructor(options: BkdataSimOptions) {
    const { config } = options;
    this.#config = config;
    this.#log = options.logger.child({ component: 'bkdata-sim' });
    this.#now = options.now ?? Date.now;
    if (config.persist === 'store' && !options.store) throw new Error('bkdata-sim: BKDATA_SIM_PERSIST=store needs a store');
    this.state = new SimState(config.persist === 'store' && options.store ? storePersistence(options.store) : memoryPersistence);
    this.faults = defaultFaults();
    this.faults.latencyMs = config.latencyMs;
    this.faults.latencyJitterMs = config.latencyJitterMs;
    for (const f of FAMILIES) this.faults.errorRates[f] = config.errorRate;
    Object.assign(this.faults.errorRates, parseFamilyRates(config.familyErrorRates));
    Object.assign(this.faults.lostAnswerRates, parseFamilyRates(config.lostAnswerRates));
    this.faults.errorMode = config.errorMode;
    this.faults.outageMode = config.outageMode;
    this.faults.stuckCleans = [...config.stuckCleans];
    this.timing = { cleanStartDelayMs: config.cleanStartDelayMs, flowStartDelayMs: config.flowStartDelayMs, flowStopDelayMs: config.flowStopDelayMs };
    this.calls = new CallLog(config.callLogMax);
    this.#metric = counter(options.registry, {
      name: 'bkstream_bkdata_sim_calls_total',
      help: 'BKData API calls answered by bkdata-sim, by API and outcome',
      labelNames: ['api', 'outcome'],
    });
    this.#http = createHttpServer({
      host: config.host,
      port: config.port,
      registry: options.registry,
      logger: options.logger,
      health: () => ({ ok: true, checks: { in_outage: describeFaults(this.faults, this.#now()).in_outage, persist: config.persist } }),
      routes: [...this.#adminRoutes(), ...(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const).map((method): Route => ({
        method,
        path: /^\/(?!admin\/).*/,
        handle: (req) => this.#api(req),
      }))],
    });
  }

  async start(): Promise<void> {
    if (this.#started) return;
    await this.state.load();
    const now = this.#now();
    this.faults.outages.push(...parseWindows(this.#config.outages, now));
    await this.#http.start();
    this.#started = true;
    this.#log.info('bkdata-sim started', { url: this.url(), persist: this.#config.persist });
  }

  async stop(): Promise<void> {
    if (!this.#started) return;
    this.#started = false;
    await this.#http.stop();
    await this.state.flush();
  }

  port(): number {
    return this.#http.port();
  }

  /** Base URL of the API (what the orchestrator's BKDATA_API_URL points at). */
  url(): string {
    const host = this.#config.host.includes(':') ? `[${this.#config.host}]` : this.#config.host;
    return `http://${host}:${this.port()}/`;
  }

  /** Makes every API call fail for `durationMs`, starting in `startInMs`. */
  addOutage(durationMs: number, startInMs = 0): { startAt: number; endAt: number } {
    const now = this.#now();
    pruneOutages(this.faults, now);
    const w = { startAt: now + startInMs, endAt: now + startInMs + durationMs };
    this.faults.outages.push(w);
    this.#log.warn('outage scheduled', { start_at: new Date(w.startAt).toISOString(), end_at: new Date(w.endAt).toISOString(), mode: this.faults.outageMode });
    return w;
  }

  async #api(req: HttpRequest): Promise<HttpResponse> {
    const at = this.#now();
    const sentHeader = Number(req.headers[SENT_AT_HEADER]);
    const sentAt = Number.isFinite(sentHeader) && sentHeader > 0 ? sentHeader : undefined;
    const match = matchRoute(req.method, req.path);
    const record = (api: string, family: string, write: boolean, outcome: CallOutcome, params: Params): void => {
      this.calls.record({ api, family, method: req.method, path: req.path, write, outcome, at, sentAt, params });
      this.#metric.inc({ api, outcome });
    };
    if (!match || 'allowed' in match) {
      record('unknown', 'unknown', false, 'unknown_route', {});
      return match ? json(405, failure('1500405', `method ${req.method} not allowed; use ${match.allowed.join(', ')}`)) : json(404, failure('1500404', `no API at ${req.path}`));
    }
    const { route, pathParams } = match;
    const fromBody = req.body !== undefined && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Params) : {};
    const params: Params = { ...Object.fromEntries(req.query), ...fromBody, ...pathParams };

    const decision = decide(this.faults, route.family, at);
    if (decision.kind === 'outage') {
      record(route.name, route.family, route.write, 'outage', params);
      if (decision.mode === 'reset') req.raw.socket.destroy();
      return json(503, failure('1500503', 'service unavailable (outage)'));
    }
    if (decision.delayMs > 0) await sleep(decision.delayMs);
    if (decision.kind === 'error') {
      record(route.name, route.family, route.write, 'injected_error', params);
      switch (decision.mode) {
        case 'http_5xx':
          return json(503, failure('1500503', 'injected server error'));
        case 'http_4xx':
          return json(400, failure('1500400', 'injected bad request'));
        case 'result_false':
          return json(200, failure('1500500', 'injected business error'));
      }
    }
    const ctx: RouteContext = { state: this.state, now: this.#now(), timing: this.timing, faults: this.faults };
    try {
      const data = route.handle(ctx, params);
      await this.state.flush();
      if (decision.kind === 'lose_answer') {
        // Carried out, but the caller never hears of it.
        record(route.name, route.family, route.write, 'answer_lost', params);
        req.raw.socket.destroy();
        return json(503, failure('1500503', 'answer lost'));
      }
      record(route.name, route.family, route.write, 'ok', params);
      return json(200, envelope(data));
    } catch (err) {
      if (!(err instanceof SimApiError)) throw err;
      await this.state.flush();
      record(route.name, route.family, route.write, 'business_error', params);
      return json(err.httpStatus, failure(err.code, err.message));
    }
  }

  #adminRoutes(): Route[] {
    return [
      { method: 'GET', path: '/admin/faults', handle: () => json(200, describeFaults(this.faults, this.#now())) },
      {
        method: 'PUT',
        path: '/admin/faults',
        handle: (req) => {
          if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) return json(400, { error: 'body must be a JSON object of settings' });
          const problems = updateFaults(this.faults, req.body as Record<string, unknown>);
          if (problems.length > 0) return json(400, { error: 'invalid fault settings', problems });
          this.#log.warn('faults changed', { faults: describeFaults(this.faults, this.#now()) });
          return json(200, describeFaults(this.faults, this.#now()));
        },
      },
      {
        method: 'POST',
        path: '/admin/outages',
        handle: (req) => {
          const body = (req.body ?? {}) as { duration_ms?: unknown; start_in_ms?: unknown };
          const duration = body.duration_ms;
          const startIn = body.start_in_ms ?? 0;
          if (typeof duration !== 'number' || duration <= 0 || typeof startIn !== 'number' || startIn < 0) {
            return json(400, { error: 'body must be {"duration_ms": >0, "start_in_ms": >=0}' });
          }
          const w = this.addOutage(duration, startIn);
          return json(201, { start_at: new Date(w.startAt).toISOString(), end_at: new Date(w.endAt).toISOString() });
        },
      },
      {
        method: 'DELETE',
        path: '/admin/outages',
        handle: () => {
          this.faults.outages = [];
          return json(200, describeFaults(this.faults, this.#now()));
        },
      },
      {
        method: 'GET',
        path: '/admin/calls',
        handle: (req) => {
          const stats = this.calls.stats();
          const body: Record<string, unknown> = { total: stats.total, writes: stats.writes, by_api: stats.byApi, by_outcome: stats.byOutcome, writes_by_api: stats.writesByApi };
          if (req.query.get('log') === '1') body.log = this.calls.entries(Number(req.query.get('after') ?? 0));
          return json(200, body);
        },
      },
      {
        method: 'DELETE',
        path: '/admin/calls',
        handle: () => {
          this.calls.reset();
          return json(200, { reset: true });
        },
      },
      {
        method: 'POST',
        path: '/admin/reset',
        handle: async () => {
          this.state.reset();
          await this.state.flush();
          this.calls.reset();
          return json(200, { reset: true });
        },
      },
      {
        method: 'GET',
        path: '/admin/state',
        handle: () =>
          json(200, {
            raw_data: [...this.state.rawData.values()].map((r) => ({ raw_data_id: r.raw_data_id, bk_biz_id: r.bk_biz_id, raw_data_name: r.raw_data_name })),
            cleans: [...this.state.cleans.values()].map((c) => ({ id: c.id, processing_id: c.processing_id, raw_data_id: c.raw_data_id, state: c.state })),
            grants: [...this.state.grants],
            flows: [...this.state.flows.values()].map((f) => ({ flow_id: f.flow_id, project_id: f.project_id, flow_name: f.flow_name, target: f.target, nodes: f.nodes.length })),
            resource_sets: [...this.state.resourceSets.values()].map((r) => ({ resource_set_id: r.resource_set_id, authorized_projects: r.authorized_projects })),
          }),
      },
    ];
  }
}
