/**
 * The BKData API as bkdata-sim serves it, on the routing of services/common/http.ts (README, Interfaces
 * and How it works): one route per API of api.ts, each behind fault injection and answered in BKData's
 * envelope `{result, code, message, errors, data}`; a request no API matches (outside `/admin/`) is
 * answered in the envelope too — 405 naming the methods its path has, or 404 — and counted.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { json, type HttpRequest, type HttpResponse, type Route } from '../common/http.ts';
import { BKDATA_CODE, bkdataCodeOf, COMPILED_ROUTES, decodePathParams, matchRoute, type Params, type RouteContext, type SimRoute, type SimTiming } from './api.ts';
import type { CallLog, CallOutcome } from './calls.ts';
import { decide, type FaultSettings } from './faults.ts';
import type { SimMetrics } from './metrics.ts';
import type { SimState } from './state.ts';

/** Header carrying the time (ms since the epoch) a client sent a request; recorded with each call. */
export const SENT_AT_HEADER = 'x-bkstream-sent-at';
/** Headers BlueKing's API layer sends with every request (tenant, language); recorded with each call. */
export const TENANT_HEADER = 'x-bk-tenant-id';
export const LANGUAGE_HEADER = 'blueking-language';

function header(req: HttpRequest, name: string): string | undefined {
  const v = req.headers[name];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** What the BKData routes work on. */
export interface ApiDeps {
  state: SimState;
  faults: FaultSettings;
  calls: CallLog;
  timing: SimTiming;
  metrics: SimMetrics;
  now(): number;
  /** Called after a write was carried out (the clean runner looks at the cleans again). */
  changed?: () => void;
}

export function envelope(data: unknown): Record<string, unknown> {
  return { result: true, code: BKDATA_CODE.ok, message: 'ok', errors: null, data };
}

export function failure(code: string, message: string): Record<string, unknown> {
  return { result: false, code, message, errors: null, data: null };
}

type Recorder = (api: string, family: string, write: boolean, outcome: CallOutcome, params: Params) => void;

/** Records the call of a request that arrived `at` (in the call log and the metric). */
function recorder(parts: ApiDeps, req: HttpRequest, at: number): Recorder {
  const sentHeader = Number(req.headers[SENT_AT_HEADER]);
  const sentAt = Number.isFinite(sentHeader) && sentHeader > 0 ? sentHeader : undefined;
  const tenant = header(req, TENANT_HEADER);
  const language = header(req, LANGUAGE_HEADER);
  return (api, family, write, outcome, params) => {
    parts.calls.record({ api, family, method: req.method, path: req.path, write, outcome, at, sentAt, tenant, language, params });
    parts.metrics.calls.inc({ api, outcome });
  };
}

/** One API call: faults first (outage, latency, injected error, lost answer), then the route. */
async function answer(parts: ApiDeps, route: SimRoute, req: HttpRequest): Promise<HttpResponse> {
  const at = parts.now();
  const record = recorder(parts, req, at);
  const pathParams = decodePathParams(req.params);
  const fromBody = req.body !== undefined && typeof req.body === 'object' && !Array.isArray(req.body) ? (req.body as Params) : {};
  const params: Params = { ...Object.fromEntries(req.query), ...fromBody, ...pathParams };

  const decision = decide(parts.faults, route.family, at);
  if (decision.kind === 'outage') {
    record(route.name, route.family, route.write, 'outage', params);
    if (decision.mode === 'reset') req.raw.socket.destroy();
    return json(503, failure(BKDATA_CODE.unavailable, 'service unavailable (outage)'));
  }
  if (decision.delayMs > 0) await sleep(decision.delayMs);
  if (decision.kind === 'error') {
    record(route.name, route.family, route.write, 'injected_error', params);
    switch (decision.mode) {
      case 'http_5xx':
        return json(503, failure(BKDATA_CODE.unavailable, 'injected server error'));
      case 'http_4xx':
        return json(400, failure(BKDATA_CODE.invalid, 'injected bad request'));
      case 'result_false':
        return json(200, failure(BKDATA_CODE.internal, 'injected business error'));
    }
  }
  const ctx: RouteContext = { state: parts.state, now: parts.now(), timing: parts.timing, faults: parts.faults };
  try {
    const data = route.handle(ctx, params);
    await parts.state.flush();
    if (route.write) parts.changed?.();
    if (decision.kind === 'lose_answer') {
      // Carried out, but the caller never hears of it.
      record(route.name, route.family, route.write, 'answer_lost', params);
      req.raw.socket.destroy();
      return json(503, failure(BKDATA_CODE.unavailable, 'answer lost'));
    }
    record(route.name, route.family, route.write, 'ok', params);
    return json(200, envelope(data));
  } catch (err) {
    const code = bkdataCodeOf(err);
    if (code === undefined) throw err;
    await parts.state.flush();
    record(route.name, route.family, route.write, 'business_error', params);
    return json(200, failure(code, (err as Error).message));
  }
}

/** A request no API matches: 405 when its path exists with other methods, else 404. */
function unknownRoute(parts: ApiDeps, req: HttpRequest): HttpResponse {
  const record = recorder(parts, req, parts.now());
  const match = matchRoute(req.method, req.path);
  record('unknown', 'unknown', false, 'unknown_route', {});
  if (match && 'allowed' in match) return json(405, failure(BKDATA_CODE.methodNotAllowed, `method ${req.method} not allowed; use ${match.allowed.join(', ')}`));
  return json(404, failure(BKDATA_CODE.notFound, `no API at ${req.path}`));
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
/** Every path outside the admin API. */
const NOT_ADMIN = /^\/(?!admin\/).*/;

/** The routes of the BKData API: one per API, then the answer for anything else outside `/admin/`. */
export function apiRoutes(parts: ApiDeps): Route[] {
  return [
    ...COMPILED_ROUTES.map(({ route, pattern }): Route => ({ method: route.method, path: pattern, handle: (req) => answer(parts, route, req) })),
    ...METHODS.map((method): Route => ({ method, path: NOT_ADMIN, handle: (req) => unknownRoute(parts, req) })),
  ];
}
