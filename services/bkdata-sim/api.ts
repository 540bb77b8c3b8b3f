/**
 * The BKData API surface bkdata-sim serves (README, Interfaces): the paths, methods and behaviour of the
 * APIs the APM flows use plus stop/delete of dataflows and nodes. Each route is a pure function of the
 * state and the request parameters (path placeholders, query string for GET, JSON body otherwise); it
 * returns the envelope's `data` or throws a business error of services/common/errors.ts (ValidationError,
 * NotFoundError, ConflictError), which the server answers with BKData's code for it ({@link bkdataCodeOf}).
 */
import { BkError, ConflictError, NotFoundError, ValidationError } from '../common/errors.ts';
import { familyOf, isStuck, type Family, type FaultSettings } from './faults.ts';
import type { Clean, CleanStatus, Dataflow, DataflowStatus, SimState } from './state.ts';

/** The codes of BKData's envelope bkdata-sim answers with. */
export const BKDATA_CODE = {
  ok: '1500200',
  invalid: '1500400',
  notFound: '1500404',
  methodNotAllowed: '1500405',
  conflict: '1500409',
  internal: '1500500',
  unavailable: '1500503',
} as const;

/** Business errors (error code of services/common/errors.ts) → BKData code; answered with HTTP 200 and `result=false`. */
const BUSINESS_CODES: Readonly<Record<string, string>> = {
  invalid_argument: BKDATA_CODE.invalid,
  not_found: BKDATA_CODE.notFound,
  conflict: BKDATA_CODE.conflict,
};

/** The BKData code of a business error a route threw, or undefined for anything else (a failure of the sim). */
export function bkdataCodeOf(err: unknown): string | undefined {
  return err instanceof BkError ? BUSINESS_CODES[err.code] : undefined;
}

export interface SimTiming {
  cleanStartDelayMs: number;
  flowStartDelayMs: number;
  flowStopDelayMs: number;
}

export interface RouteContext {
  state: SimState;
  now: number;
  timing: SimTiming;
  faults: FaultSettings;
}

export type Params = Record<string, unknown>;

export interface SimRoute {
  /** The client name of the API (the orchestrator's name for it), e.g. `access_deploy_plan`. */
  name: string;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Path below the base URL with `{placeholders}`, trailing slash optional when matched. */
  path: string;
  family: Family;
  /** Changes state (what "no write calls" counts). */
  write: boolean;
  handle(ctx: RouteContext, params: Params): unknown;
}

// ---------------------------------------------------------------------------------------------------------
// parameter helpers

function required(params: Params, name: string): unknown {
  const v = params[name];
  if (v === undefined || v === null || v === '') throw new ValidationError(`parameter ${name} is required`);
  return v;
}

function intParam(params: Params, name: string): number {
  const v = required(params, name);
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isSafeInteger(n)) throw new ValidationError(`parameter ${name} must be an integer, got ${JSON.stringify(v)}`);
  return n;
}

function strParam(params: Params, name: string): string {
  const v = required(params, name);
  if (typeof v !== 'string' && typeof v !== 'number') throw new ValidationError(`parameter ${name} must be a string`);
  return String(v);
}

function objParam(params: Params, name: string): Params {
  const v = required(params, name);
  if (typeof v !== 'object' || Array.isArray(v)) throw new ValidationError(`parameter ${name} must be an object`);
  return v as Params;
}

/** Request parameters that describe the caller, not the object (kept out of stored configs). */
const CALLER_KEYS = new Set(['bk_app_code', 'bk_app_secret', 'bk_username', '_origin_user', 'bkdata_authentication_method', 'appenv', 'operator']);

function stripCaller(params: Params, also: readonly string[] = []): Params {
  const out: Params = {};
  for (const [k, v] of Object.entries(params)) if (!CALLER_KEYS.has(k) && !also.includes(k)) out[k] = v;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// computed statuses

export function cleanStatus(ctx: RouteContext, clean: Clean): CleanStatus {
  if (clean.state === 'stopped') return 'stopped';
  if (isStuck(ctx.faults, clean.processing_id)) return 'starting';
  return ctx.now - clean.started_at >= ctx.timing.cleanStartDelayMs ? 'running' : 'starting';
}

export function flowStatus(ctx: RouteContext, flow: Dataflow): DataflowStatus {
  const elapsed = ctx.now - flow.changed_at;
  if (flow.target === 'running') return elapsed >= ctx.timing.flowStartDelayMs ? 'running' : 'starting';
  if (flow.deployments.length === 0) return 'no-start';
  return elapsed >= ctx.timing.flowStopDelayMs ? 'no-start' : 'stopping';
}

function findClean(ctx: RouteContext, idOrProcessingId: string): Clean {
  const byProcessing = ctx.state.cleans.get(idOrProcessingId);
  if (byProcessing) return byProcessing;
  for (const c of ctx.state.cleans.values()) if (String(c.id) === idOrProcessingId) return c;
  throw new NotFoundError(`clean ${idOrProcessingId} does not exist`);
}

function findFlow(ctx: RouteContext, params: Params): Dataflow {
  const id = intParam(params, 'flow_id');
  const flow = ctx.state.flows.get(id);
  if (!flow) throw new NotFoundError(`dataflow ${id} does not exist`);
  return flow;
}

function flowView(ctx: RouteContext, flow: Dataflow): Params {
  return { flow_id: flow.flow_id, flow_name: flow.flow_name, project_id: flow.project_id, status: flowStatus(ctx, flow), node_count: flow.nodes.length };
}

function deployRecord(ctx: RouteContext, flow: Dataflow, action: 'start' | 'restart', params: Params): void {
  flow.deployments.push({
    id: ctx.state.next('deploy'),
    action,
    consuming_mode: typeof params.consuming_mode === 'string' ? params.consuming_mode : null,
    cluster_group: typeof params.cluster_group === 'string' ? params.cluster_group : null,
    status: 'success',
    at: ctx.now,
  });
  // Only the latest deployments matter; keep the object small.
  if (flow.deployments.length > 20) flow.deployments.splice(0, flow.deployments.length - 20);
  flow.target = 'running';
  flow.changed_at = ctx.now;
  ctx.state.touch('flow', flow.flow_id);
}

// ---------------------------------------------------------------------------------------------------------
// routes

const route = (r: Omit<SimRoute, 'family'>): SimRoute => {
  const family = familyOf(r.path);
  if (!family) throw new Error(`route ${r.name}: no family for ${r.path}`);
  return { ...r, family };
};

export const ROUTES: readonly SimRoute[] = [
  // access
  route({
    name: 'access_deploy_plan',
    method: 'POST',
    path: '/v3/access/deploy_plan/',
    write: true,
    handle(ctx, p) {
      const bkBizId = intParam(p, 'bk_biz_id');
      const raw = objParam(p, 'access_raw_data');
      const name = strParam(raw, 'raw_data_name');
      const scenario = strParam(p, 'data_scenario');
      for (const r of ctx.state.rawData.values()) {
        if (r.bk_biz_id === bkBizId && r.raw_data_name === name) throw new ConflictError(`raw data ${name} already exists in business ${bkBizId} (id ${r.raw_data_id})`);
      }
      const preassigned = raw.preassigned_data_id;
      const id = typeof preassigned === 'number' && preassigned > 0 ? preassigned : ctx.state.next('raw');
      if (ctx.state.rawData.has(id)) throw new ConflictError(`raw data id ${id} is already in use`);
      ctx.state.rawData.set(id, { raw_data_id: id, bk_biz_id: bkBizId, raw_data_name: name, data_scenario: scenario, params: stripCaller(p), created_at: ctx.now, updated_at: ctx.now });
      ctx.state.touch('raw_data', id);
      return { raw_data_id: id };
    },
  }),
  route({
    name: 'update_deploy_plan',
    method: 'PUT',
    path: '/v3/access/deploy_plan/{raw_data_id}',
    write: true,
    handle(ctx, p) {
      const id = intParam(p, 'raw_data_id');
      const raw = ctx.state.rawData.get(id);
      if (!raw) throw new NotFoundError(`raw data ${id} does not exist`);
      objParam(p, 'access_raw_data');
      raw.params = stripCaller(p, ['raw_data_id']);
      raw.updated_at = ctx.now;
      ctx.state.touch('raw_data', id);
      return { raw_data_id: id };
    },
  }),

  route({
    name: 'list_raw_data',
    method: 'GET',
    path: '/v3/access/rawdata/',
    write: false,
    handle(ctx, p) {
      const biz = p.bk_biz_id === undefined ? undefined : intParam(p, 'bk_biz_id');
      const name = p.raw_data_name === undefined ? undefined : strParam(p, 'raw_data_name');
      return [...ctx.state.rawData.values()]
        .filter((r) => (biz === undefined || r.bk_biz_id === biz) && (name === undefined || r.raw_data_name === name))
        .map((r) => ({ id: r.raw_data_id, raw_data_id: r.raw_data_id, bk_biz_id: r.bk_biz_id, raw_data_name: r.raw_data_name, data_scenario: r.data_scenario }));
    },
  }),

  // databus
  route({
    name: 'databus_cleans',
    method: 'POST',
    path: '/v3/databus/cleans/',
    write: true,
    handle(ctx, p) {
      const rawDataId = intParam(p, 'raw_data_id');
      if (!ctx.state.rawData.has(rawDataId)) throw new NotFoundError(`raw data ${rawDataId} does not exist`);
      const bkBizId = intParam(p, 'bk_biz_id');
      const tableName = strParam(p, 'result_table_name');
      checkJsonConfig(p);
      const processingId = `${bkBizId}_${tableName}`;
      if (ctx.state.cleans.has(processingId)) throw new ConflictError(`result table ${processingId} already exists`);
      const clean: Clean = {
        id: ctx.state.next('clean'),
        processing_id: processingId,
        raw_data_id: rawDataId,
        bk_biz_id: bkBizId,
        clean_config_name: strParam(p, 'clean_config_name'),
        params: stripCaller(p),
        state: 'stopped',
        started_at: 0,
        updated_at: ctx.now,
      };
      ctx.state.cleans.set(processingId, clean);
      ctx.state.touch('clean', processingId);
      return { id: clean.id, result_table_id: processingId, processing_id: processingId, raw_data_id: rawDataId };
    },
  }),
  route({
    name: 'get_databus_cleans',
    method: 'GET',
    path: '/v3/databus/cleans/',
    write: false,
    handle(ctx, p) {
      const rawDataId = intParam(p, 'raw_data_id');
      return [...ctx.state.cleans.values()]
        .filter((c) => c.raw_data_id === rawDataId)
        .map((c) => ({ id: c.id, processing_id: c.processing_id, result_table_id: c.processing_id, raw_data_id: c.raw_data_id, clean_config_name: c.clean_config_name, status: cleanStatus(ctx, c) }));
    },
  }),
  route({
    name: 'update_databus_cleans',
    method: 'PUT',
    path: '/v3/databus/cleans/{processing_id}/',
    write: true,
    handle(ctx, p) {
      const clean = findClean(ctx, strParam(p, 'processing_id'));
      checkJsonConfig(p);
      clean.params = { ...stripCaller(p, ['processing_id']), result_table_name: clean.params.result_table_name };
      clean.updated_at = ctx.now;
      ctx.state.touch('clean', clean.processing_id);
      return { id: clean.id, processing_id: clean.processing_id };
    },
  }),
  route({
    name: 'start_databus_cleans',
    method: 'POST',
    path: '/v3/databus/tasks/',
    write: true,
    handle(ctx, p) {
      const clean = findClean(ctx, strParam(p, 'result_table_id'));
      if (clean.state === 'stopped') {
        clean.state = 'started';
        clean.started_at = ctx.now;
        ctx.state.touch('clean', clean.processing_id);
      }
      const storages = Array.isArray(p.storages) ? p.storages : ['kafka'];
      return { result_table_id: clean.processing_id, storages, status: cleanStatus(ctx, clean) };
    },
  }),
  route({
    name: 'stop_databus_cleans',
    method: 'DELETE',
    path: '/v3/databus/tasks/{result_table_id}/',
    write: true,
    handle(ctx, p) {
      const clean = findClean(ctx, strParam(p, 'result_table_id'));
      clean.state = 'stopped';
      ctx.state.touch('clean', clean.processing_id);
      return { result_table_id: clean.processing_id, status: 'stopped' };
    },
  }),

  // auth
  route({
    name: 'auth_projects_data_check',
    method: 'POST',
    path: '/v3/auth/projects/{project_id}/data/check/',
    write: false,
    handle(ctx, p) {
      const project = intParam(p, 'project_id');
      const rt = strParam(p, 'result_table_id');
      return ctx.state.grants.has(`${project}|${rt}`);
    },
  }),
  route({
    name: 'auth_result_table',
    method: 'POST',
    path: '/v3/auth/projects/{project_id}/data/add/',
    write: true,
    handle(ctx, p) {
      const project = intParam(p, 'project_id');
      const rt = strParam(p, 'object_id');
      intParam(p, 'bk_biz_id');
      if (!ctx.state.cleans.has(rt)) throw new NotFoundError(`result table ${rt} does not exist`);
      const key = `${project}|${rt}`;
      ctx.state.grants.add(key);
      ctx.state.touch('grant', key);
      return { project_id: project, object_id: rt };
    },
  }),

  // dataflow
  route({
    name: 'get_data_flow_list',
    method: 'GET',
    path: '/v3/dataflow/flow/flows',
    write: false,
    handle(ctx, p) {
      const project = intParam(p, 'project_id');
      return [...ctx.state.flows.values()].filter((f) => f.project_id === project).map((f) => flowView(ctx, f));
    },
  }),
  route({
    name: 'get_data_flow',
    method: 'GET',
    path: '/v3/dataflow/flow/flows/{flow_id}',
    write: false,
    handle: (ctx, p) => flowView(ctx, findFlow(ctx, p)),
  }),
  route({
    name: 'get_data_flow_graph',
    method: 'GET',
    path: '/v3/dataflow/flow/flows/{flow_id}/graph',
    write: false,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      return { nodes: flow.nodes.map((n) => ({ node_id: n.node_id, node_type: n.node_type, node_config: n.node_config, frontend_info: n.frontend_info })), links: [] };
    },
  }),
  route({
    name: 'create_data_flow',
    method: 'POST',
    path: '/v3/dataflow/flow/flows/',
    write: true,
    handle(ctx, p) {
      const project = intParam(p, 'project_id');
      const name = strParam(p, 'flow_name');
      for (const f of ctx.state.flows.values()) {
        if (f.project_id === project && f.flow_name === name) throw new ConflictError(`dataflow ${name} already exists in project ${project}`);
      }
      const flow: Dataflow = { flow_id: ctx.state.next('flow'), project_id: project, flow_name: name, target: 'no-start', changed_at: ctx.now, nodes: [], deployments: [], created_at: ctx.now };
      ctx.state.flows.set(flow.flow_id, flow);
      ctx.state.touch('flow', flow.flow_id);
      return { flow_id: flow.flow_id, project_id: project, flow_name: name };
    },
  }),
  route({
    name: 'add_data_flow_node',
    method: 'POST',
    path: '/v3/dataflow/flow/flows/{flow_id}/nodes/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      const nodeType = strParam(p, 'node_type');
      const config = objParam(p, 'config');
      const fromLinks = checkLinks(flow, p.from_links);
      const node = { node_id: ctx.state.next('node'), node_type: nodeType, node_config: config, from_links: fromLinks, frontend_info: p.frontend_info ?? null };
      flow.nodes.push(node);
      ctx.state.touch('flow', flow.flow_id);
      return { node_id: node.node_id, flow_id: flow.flow_id };
    },
  }),
  route({
    name: 'update_data_flow_node',
    method: 'PUT',
    path: '/v3/dataflow/flow/flows/{flow_id}/nodes/{node_id}',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      const nodeId = intParam(p, 'node_id');
      const node = flow.nodes.find((n) => n.node_id === nodeId);
      if (!node) throw new NotFoundError(`node ${nodeId} is not in dataflow ${flow.flow_id}`);
      node.node_config = objParam(p, 'config');
      node.from_links = checkLinks(flow, p.from_links);
      if (p.frontend_info !== undefined) node.frontend_info = p.frontend_info;
      ctx.state.touch('flow', flow.flow_id);
      return { node_id: nodeId, flow_id: flow.flow_id };
    },
  }),
  route({
    name: 'delete_data_flow_node',
    method: 'DELETE',
    path: '/v3/dataflow/flow/flows/{flow_id}/nodes/{node_id}/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      const nodeId = intParam(p, 'node_id');
      const i = flow.nodes.findIndex((n) => n.node_id === nodeId);
      if (i < 0) throw new NotFoundError(`node ${nodeId} is not in dataflow ${flow.flow_id}`);
      flow.nodes.splice(i, 1);
      ctx.state.touch('flow', flow.flow_id);
      return { node_id: nodeId };
    },
  }),
  route({
    name: 'start_data_flow',
    method: 'POST',
    path: '/v3/dataflow/flow/flows/{flow_id}/start/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      const status = flowStatus(ctx, flow);
      if (status !== 'no-start') throw new ConflictError(`dataflow ${flow.flow_id} is ${status}; only a no-start dataflow can be started`);
      if (flow.nodes.length === 0) throw new ValidationError(`dataflow ${flow.flow_id} has no nodes`);
      deployRecord(ctx, flow, 'start', p);
      return { flow_id: flow.flow_id, task_id: flow.deployments.at(-1)?.id };
    },
  }),
  route({
    name: 'restart_data_flow',
    method: 'POST',
    path: '/v3/dataflow/flow/flows/{flow_id}/restart/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      if (flow.nodes.length === 0) throw new ValidationError(`dataflow ${flow.flow_id} has no nodes`);
      deployRecord(ctx, flow, 'restart', p);
      return { flow_id: flow.flow_id, task_id: flow.deployments.at(-1)?.id };
    },
  }),
  route({
    name: 'stop_data_flow',
    method: 'POST',
    path: '/v3/dataflow/flow/flows/{flow_id}/stop/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      if (flowStatus(ctx, flow) === 'no-start') throw new ConflictError(`dataflow ${flow.flow_id} is not running`);
      flow.target = 'no-start';
      flow.changed_at = ctx.now;
      ctx.state.touch('flow', flow.flow_id);
      return { flow_id: flow.flow_id };
    },
  }),
  route({
    name: 'delete_data_flow',
    method: 'DELETE',
    path: '/v3/dataflow/flow/flows/{flow_id}/',
    write: true,
    handle(ctx, p) {
      const flow = findFlow(ctx, p);
      const status = flowStatus(ctx, flow);
      if (status !== 'no-start') throw new ConflictError(`dataflow ${flow.flow_id} is ${status}; stop it before deleting`);
      ctx.state.flows.delete(flow.flow_id);
      ctx.state.touch('flow', flow.flow_id);
      return { flow_id: flow.flow_id };
    },
  }),
  route({
    name: 'get_latest_deploy_data_flow',
    method: 'GET',
    path: '/v3/dataflow/flow/flows/{flow_id}/latest_deploy_data/',
    write: false,
    handle(ctx, p) {
      const d = findFlow(ctx, p).deployments.at(-1);
      return d ? { id: d.id, action: d.action, status: d.status, consuming_mode: d.consuming_mode, created_at: new Date(d.at).toISOString() } : null;
    },
  }),

  // resource center
  route({
    name: 'query_resource_list',
    method: 'GET',
    path: '/v3/resourcecenter/clusters/query_digest/',
    write: false,
    handle(ctx) {
      return [...ctx.state.resourceSets.values()].map((r) => ({ resource_group_id: r.resource_set_id, group_name: r.resource_set_name, resource_type: 'storage', service_type: r.category }));
    },
  }),
  route({
    name: 'get_or_create_resource_set',
    method: 'POST',
    path: '/v3/resourcecenter/resource_sets/get_or_create/',
    write: true,
    handle(ctx, p) {
      const id = strParam(p, 'resource_set_id');
      const name = strParam(p, 'resource_set_name');
      const conn = objParam(p, 'connection_info');
      const existing = ctx.state.resourceSets.get(id) ??
        [...ctx.state.resourceSets.values()].find((r) => r.connection_info.host === conn.host && r.connection_info.port === conn.port);
      if (existing) return { resource_set_id: existing.resource_set_id, resource_set_name: existing.resource_set_name };
      ctx.state.resourceSets.set(id, {
        resource_set_id: id,
        resource_set_name: name,
        bk_biz_id: intParam(p, 'bk_biz_id'),
        category: strParam(p, 'category'),
        connection_info: conn,
        authorized_projects: [],
        params: stripCaller(p),
      });
      ctx.state.touch('resource_set', id);
      return { resource_set_id: id, resource_set_name: name };
    },
  }),
  route({
    name: 'get_resource_set',
    method: 'GET',
    path: '/v3/resourcecenter/resource_sets/{resource_set_id}/',
    write: false,
    handle(ctx, p) {
      const id = strParam(p, 'resource_set_id');
      const r = ctx.state.resourceSets.get(id);
      if (!r) throw new NotFoundError(`resource set ${id} does not exist`);
      return { resource_set_id: r.resource_set_id, resource_set_name: r.resource_set_name, category: r.category, authorized_projects: r.authorized_projects.map((pid) => ({ id: pid })) };
    },
  }),
  route({
    name: 'update_resource_set',
    method: 'PATCH',
    path: '/v3/resourcecenter/resource_sets/{resource_set_id}/',
    write: true,
    handle(ctx, p) {
      const id = strParam(p, 'resource_set_id');
      const r = ctx.state.resourceSets.get(id);
      if (!r) throw new NotFoundError(`resource set ${id} does not exist`);
      if (p.authorized_projects !== undefined) {
        if (!Array.isArray(p.authorized_projects)) throw new ValidationError('authorized_projects must be a list of project ids');
        r.authorized_projects = [...new Set(p.authorized_projects.map(Number).filter(Number.isSafeInteger))];
      }
      ctx.state.touch('resource_set', id);
      return { resource_set_id: id };
    },
  }),
];

function checkJsonConfig(p: Params): void {
  const text = strParam(p, 'json_config');
  try {
    JSON.parse(text);
  } catch {
    throw new ValidationError('json_config is not valid JSON');
  }
  if (!Array.isArray(p.fields) || p.fields.length === 0) throw new ValidationError('fields must be a non-empty list');
}

function checkLinks(flow: Dataflow, links: unknown): unknown[] {
  if (links === undefined || links === null) return [];
  if (!Array.isArray(links)) throw new ValidationError('from_links must be a list');
  for (const link of links as { source?: { node_id?: unknown } }[]) {
    const parent = Number(link.source?.node_id);
    if (!flow.nodes.some((n) => n.node_id === parent)) throw new ValidationError(`from_links names node ${String(link.source?.node_id)}, which is not in dataflow ${flow.flow_id}`);
  }
  return links;
}

// ---------------------------------------------------------------------------------------------------------
// matching

/**
 * The pattern of a route's path as services/common/http.ts matches it: any base path before the first
 * `/v3/` (e.g. `/api/bk-base/prod`; not under `/admin/`, the admin API's), placeholders as named groups,
 * the trailing slash optional.
 */
function pathPattern(path: string): RegExp {
  if (!path.startsWith('/v3/')) throw new Error(`API path ${path} must start with /v3/`);
  const body = path.replace(/\/+$/, '').replace(/\{(\w+)\}/g, (_, n: string) => `(?<${n}>[^/]+)`);
  return new RegExp(`^(?!/admin/)(?:(?!/v3/)[\\s\\S])*${body}/?$`);
}

/** Each route with the pattern of its path, in the order they are matched. */
export const COMPILED_ROUTES: readonly { route: SimRoute; pattern: RegExp }[] = ROUTES.map((route) => ({ route, pattern: pathPattern(route.path) }));

/** A path parameter as the route sees it; a malformed percent-encoding is the client's error (400). */
export function decodePathParams(groups: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(groups).map(([k, v]) => {
      try {
        return [k, decodeURIComponent(v)];
      } catch {
        throw new ValidationError(`path parameter ${k} is not valid percent-encoding`);
      }
    }),
  );
}

/**
 * The route of a request and its path parameters; `allowed` lists the methods of a path that exists
 * with another method (in route order); undefined when no API has that path.
 */
export function matchRoute(method: string, pathname: string): { route: SimRoute; pathParams: Record<string, string> } | { allowed: string[] } | undefined {
  const allowed: string[] = [];
  for (const { route, pattern } of COMPILED_ROUTES) {
    const m = pattern.exec(pathname);
    if (!m) continue;
    if (route.method !== method) {
      allowed.push(route.method);
      continue;
    }
    return { route, pathParams: decodePathParams(m.groups ?? {}) };
  }
  return allowed.length > 0 ? { allowed } : undefined;
}
