/**
 * The admin API of bkdata-sim (README, Interfaces): faults shown and changed at run time, outages added
 * and ended, the call log and counts, a reset, and the objects held. Answers are plain JSON (not BKData's
 * envelope); invalid settings are a 400 listing every problem.
 */
import { json, type Route } from '../common/http.ts';
import type { Logger } from '../common/log.ts';
import type { CleanRunner } from './cleans.ts';
import type { CleanRow } from './etl/clean.ts';
import { describeFaults, updateFaults, type OutageWindow } from './faults.ts';
import type { ApiDeps } from './http-api.ts';

export interface AdminDeps extends ApiDeps {
  /** Makes every API call fail for `durationMs`, starting in `startInMs`. */
  addOutage(durationMs: number, startInMs?: number): OutageWindow;
  log: Logger;
  /** The cleans that run behind the databus API, their rows and counts. */
  runner: CleanRunner;
  /** Rows kept per result table (the largest `limit`). */
  resultsMax: number;
}

/** Rows default to this many when `limit` is not given. */
export const DEFAULT_RESULTS_LIMIT = 100;

/** `JSON.rawJSON` (Node 21+; not in the ES2024 lib): a long beyond 2^53 is written digit for digit. */
const rawJSON = (text: string): unknown => (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(text);

function jsonRow(row: CleanRow): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = typeof v === 'bigint' ? rawJSON(v.toString()) : v;
  return out;
}

export function adminRoutes(sim: AdminDeps): Route[] {
  return [
    { method: 'GET', path: '/admin/faults', handle: () => json(200, describeFaults(sim.faults, sim.now())) },
    {
      method: 'PUT',
      path: '/admin/faults',
      handle: (req) => {
        if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body)) return json(400, { error: 'body must be a JSON object of settings' });
        const problems = updateFaults(sim.faults, req.body as Record<string, unknown>);
        if (problems.length > 0) return json(400, { error: 'invalid fault settings', problems });
        sim.log.warn('faults changed', { faults: describeFaults(sim.faults, sim.now()) });
        return json(200, describeFaults(sim.faults, sim.now()));
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
        const w = sim.addOutage(duration, startIn);
        return json(201, { start_at: new Date(w.startAt).toISOString(), end_at: new Date(w.endAt).toISOString() });
      },
    },
    {
      method: 'DELETE',
      path: '/admin/outages',
      handle: () => {
        sim.faults.outages = [];
        return json(200, describeFaults(sim.faults, sim.now()));
      },
    },
    {
      method: 'GET',
      path: '/admin/calls',
      handle: (req) => {
        const stats = sim.calls.stats();
        const body: Record<string, unknown> = { total: stats.total, writes: stats.writes, by_api: stats.byApi, by_outcome: stats.byOutcome, writes_by_api: stats.writesByApi };
        if (req.query.get('log') === '1') body.log = sim.calls.entries(Number(req.query.get('after') ?? 0));
        return json(200, body);
      },
    },
    {
      method: 'DELETE',
      path: '/admin/calls',
      handle: () => {
        sim.calls.reset();
        return json(200, { reset: true });
      },
    },
    {
      method: 'POST',
      path: '/admin/reset',
      handle: async () => {
        sim.state.reset();
        await sim.state.flush();
        sim.calls.reset();
        sim.runner.reset();
        sim.runner.poke();
        return json(200, { reset: true });
      },
    },
    {
      method: 'GET',
      path: '/admin/state',
      handle: () =>
        json(200, {
          raw_data: [...sim.state.rawData.values()].map((r) => ({ raw_data_id: r.raw_data_id, bk_biz_id: r.bk_biz_id, raw_data_name: r.raw_data_name })),
          cleans: [...sim.state.cleans.values()].map((c) => ({ id: c.id, processing_id: c.processing_id, raw_data_id: c.raw_data_id, state: c.state })),
          grants: [...sim.state.grants],
          flows: [...sim.state.flows.values()].map((f) => ({ flow_id: f.flow_id, project_id: f.project_id, flow_name: f.flow_name, target: f.target, nodes: f.nodes.length })),
          resource_sets: [...sim.state.resourceSets.values()].map((r) => ({ resource_set_id: r.resource_set_id, authorized_projects: r.authorized_projects })),
        }),
    },
    { method: 'GET', path: '/admin/cleans', handle: () => json(200, { cleans: sim.runner.cleans() }) },
    {
      method: 'GET',
      path: /^\/admin\/results\/(?<rt>[^/]+)$/,
      handle: (req) => {
        const rt = decodeURIComponent(req.params.rt ?? '');
        const limitText = req.query.get('limit');
        const limit = limitText === null ? DEFAULT_RESULTS_LIMIT : Number(limitText);
        if (!Number.isInteger(limit) || limit < 1) return json(400, { error: 'limit must be a positive integer' });
        const clean = sim.runner.cleans().find((c) => c.result_table_id === rt);
        if (!clean) return json(404, { error: `no clean has result table ${rt}` });
        // At most the rows kept (BKDATA_SIM_RESULTS_MAX).
        const { rows, kept } = sim.runner.results(rt, Math.min(limit, sim.resultsMax));
        return json(200, { result_table_id: rt, kept, stats: clean.stats, rows: rows.map(jsonRow) });
      },
    },
  ];
}
