/**
 * The steps of a flow (reference bkmonitor-apm.md §6.3–6.7), each one idempotent the way the reference
 * makes it: the deploy plan and the clean are updated only when their config differs, the clean status
 * is read before starting it, permission is checked before it is granted, the dataflow is matched by
 * name, nodes are diffed against the graph, and the dataflow is (re)started only when its status or a
 * node change asks for it. Stop and delete (absent in the reference) are built the same way: read first,
 * write only what is needed.
 *
 * A step works on the worker's copy of the flow (`ctx.flow`), records BKData ids and stored configs on
 * it, and returns what happens next. Errors it throws are classified by the engine (engine.ts):
 * retriable ones are retried or wait for their breaker; business errors fail the flow with the step's
 * reference status. Loops of the reference that sleep (clean start, waiting for a stop) become polls:
 * the step returns `poll` and runs again later, with its progress saved in `ctx.flow.state`.
 */
import { isRetriable } from '../common/errors.ts';
import type { ApiName, Params } from './bkdata-client.ts';
import type { FlowSettings, TailSamplingConfig, VirtualMetricConfig } from './flow-config.ts';
import type { FailureStatus, Flow, StepName } from './model.ts';
import { deepEqual, findNode, needsUpdate, nodePayload, positions, sqlChanged, type GraphNode, type NodeDef } from './nodes.ts';
import * as tail from './tail-sampling.ts';
import * as metric from './virtual-metric.ts';

/** Limits of the polling loops (reference values as defaults). */
export interface StepLimits {
  /** [APM_APP_BKDATA_FETCH_STATUS_THRESHOLD] iterations of the tail-sampling clean start loop. Default 10. */
  fetchStatusThreshold: number;
  /** Pause between clean status polls, ms (reference: 1 s). */
  cleanPollIntervalMs: number;
  /** Retries of the virtual-metric clean start after the first start. Default 3. */
  virtualMetricCleanRetries: number;
  /** Pause between dataflow status polls while waiting for a stop, ms (reference: 1 s). */
  stopPollIntervalMs: number;
  /** Polls before giving up waiting for a stop (reference: 300). */
  stopMaxPolls: number;
}

export interface StepContext {
  /** The worker's copy of the flow; steps change it, the engine saves it. */
  flow: Flow;
  settings: FlowSettings;
  limits: StepLimits;
  call<T = unknown>(api: ApiName, params?: Params): Promise<T>;
  /** Appends a line to the flow's process_info (and the log). */
  log(text: string): void;
  /** Saves progress now (before a write whose effect must not be forgotten). */
  checkpoint(): Promise<void>;
  now(): number;
}

export type StepResult = { kind: 'advance' } | { kind: 'poll'; delayMs: number } | { kind: 'fail'; message: string };

export interface StepDef {
  name: StepName;
  /** Status a business error (or a give-up) of this step sets. */
  failure: FailureStatus;
  run(ctx: StepContext): Promise<StepResult>;
}

const advance: StepResult = { kind: 'advance' };
const fail = (message: string): StepResult => ({ kind: 'fail', message });

/** A business error (4xx, result=false): the reference catches these as BKAPIError in some loops. */
function isBusinessError(err: unknown): boolean {
  return !isRetriable(err) && (err as { code?: unknown }).code === 'bkdata_business';
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Creates an object, or adopts it when BKData refuses the create (a business error such as "already
 * exists") and the lookup finds it: an earlier attempt created it but its answer was lost (a timeout,
 * a crash between the call and the save). Anything else is the create's own error.
 */
async function createOrAdopt<T>(ctx: StepContext, what: string, create: () => Promise<T>, lookup: () => Promise<T | undefined>): Promise<{ value: T; adopted: boolean }> {
  try {
    return { value: await create(), adopted: false };
  } catch (err) {
    if (!isBusinessError(err)) throw err;
    const found = await lookup();
    if (found === undefined) throw err;
    ctx.log(`${what} exists already (created by an earlier attempt whose answer was lost): adopted`);
    return { value: found, adopted: true };
  }
}

async function findRawData(ctx: StepContext, params: Record<string, unknown>): Promise<{ raw_data_id?: unknown } | undefined> {
  const name = (params.access_raw_data as Record<string, unknown>).raw_data_name;
  const list = await ctx.call<{ id?: unknown; raw_data_id?: unknown; raw_data_name?: unknown }[] | null>('list_raw_data', { bk_biz_id: params.bk_biz_id, raw_data_name: name });
  const hit = (list ?? []).find((r) => r.raw_data_name === name);
  return hit ? { raw_data_id: hit.raw_data_id ?? hit.id } : undefined;
}

async function findClean(ctx: StepContext, rawDataId: number, rt: string): Promise<{ id?: unknown; result_table_id?: unknown } | undefined> {
  const list = await ctx.call<{ id?: unknown; processing_id?: string }[] | null>('get_databus_cleans', { raw_data_id: rawDataId, bk_username: ctx.settings.operator });
  const hit = (list ?? []).find((c) => c.processing_id === rt);
  return hit ? { id: hit.id, result_table_id: rt } : undefined;
}

// ---------------------------------------------------------------------------------------------------------
// helpers over the flow

const identity = (flow: Flow): tail.FlowIdentity => ({ bkBizId: flow.bk_biz_id, appName: flow.app_name });
const tailConfig = (flow: Flow): TailSamplingConfig => flow.config as unknown as TailSamplingConfig;
const metricConfig = (flow: Flow): VirtualMetricConfig => flow.config as unknown as VirtualMetricConfig;
const isTail = (flow: Flow): boolean => flow.flow_type === 'tail_sampling';

function projectId(ctx: StepContext): number {
  return isTail(ctx.flow) ? ctx.settings.tailSamplingProjectId : ctx.settings.virtualMetricProjectId;
}

/** The business of the flow's BKData objects (tail sampling resolves spaces to the default one). */
function bkdataBiz(ctx: StepContext): number {
  return isTail(ctx.flow) ? tail.bkdataBizId(ctx.flow.bk_biz_id, ctx.settings) : ctx.flow.bk_biz_id;
}

/** The clean's result table: returned by the create (tail sampling) or known in advance (virtual metric). */
function cleanRt(flow: Flow): string | null {
  return isTail(flow) ? flow.databus_clean_result_table_id : metric.cleanResultTableId(identity(flow));
}

/** A canonical form ignoring object key order and list order (the reference compares MD5s of such a form). */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

/** Reference `_is_diff`: order-insensitive deep comparison, optionally ignoring some top-level keys. */
export function configDiffers(stored: Record<string, unknown> | null, params: Record<string, unknown>, ignore: readonly string[] = []): boolean {
  if (!stored) return true;
  const strip = (o: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(o).filter(([k]) => !ignore.includes(k)));
  return !deepEqual(canonical(strip(stored)), canonical(strip(params)));
}

async function cleanStatus(ctx: StepContext, rt: string): Promise<string | null> {
  const list = await ctx.call<{ processing_id?: string; status?: string }[] | null>('get_databus_cleans', {
    raw_data_id: ctx.flow.deploy_data_id,
    bk_username: ctx.settings.operator,
  });
  return (list ?? []).find((c) => c.processing_id === rt)?.status ?? null;
}

/** Looks the dataflow up by name when its id is not known (or no longer exists). */
async function findDataflowId(ctx: StepContext): Promise<number | null> {
  const name = isTail(ctx.flow) ? tail.flowName(identity(ctx.flow), ctx.settings) : metric.flowName(identity(ctx.flow));
  const list = await ctx.call<{ flow_id: number; flow_name: string }[] | null>('get_data_flow_list', { project_id: projectId(ctx) });
  return (list ?? []).find((f) => f.flow_name === name)?.flow_id ?? null;
}

function nodeDefs(ctx: StepContext): NodeDef[] | string {
  const flow = ctx.flow;
  if (!isTail(flow)) return metric.virtualMetricNodes(identity(flow), ctx.settings);
  const rt = flow.databus_clean_result_table_id;
  const es = flow.state.es_cluster;
  if (!rt) return 'failed to create flow instance, cleans result table id not found';
  if (!es) return 'ES resource set not registered (register_storage did not run)';
  return tail.tailSamplingNodes(identity(flow), tailConfig(flow), ctx.settings, rt, es);
}

// ---------------------------------------------------------------------------------------------------------
// steps of create_or_update

const deployDataSource: StepDef = {
  name: 'deploy_data_source',
  failure: 'config_deploy_failed',
  async run(ctx) {
    const flow = ctx.flow;
    flow.deploy_bk_biz_id = bkdataBiz(ctx);
    const tailFlow = isTail(flow);
    // Virtual metric: created once, never updated (reference).
    if (flow.deploy_data_id && !tailFlow) {
      ctx.log(`datasource exists, will use raw_data_id: ${flow.deploy_data_id}`);
      return advance;
    }
    const params = tailFlow ? tail.deployParams(identity(flow), tailConfig(flow), ctx.settings) : metric.deployParams(identity(flow), metricConfig(flow), ctx.settings);
    if (flow.deploy_data_id) {
      if (!configDiffers(flow.deploy_config, params)) {
        ctx.log(`datasource configuration not updates, will use: ${flow.deploy_data_id}`);
        return advance;
      }
      await ctx.call('update_deploy_plan', { raw_data_id: flow.deploy_data_id, ...params });
      flow.deploy_config = params;
      ctx.log(`datasource configuration updates successfully, will use: ${flow.deploy_data_id}`);
      return advance;
    }
    const { value: res, adopted } = await createOrAdopt(ctx, 'raw data', () => ctx.call<{ raw_data_id?: unknown }>('access_deploy_plan', params), () => findRawData(ctx, params));
    if (typeof res?.raw_data_id !== 'number') return fail(`create deploy failed: response has no raw_data_id: ${JSON.stringify(res)}`);
    flow.deploy_data_id = res.raw_data_id;
    // An adopted raw data may carry another config: tail sampling brings it up to date.
    if (adopted && tailFlow) await ctx.call('update_deploy_plan', { raw_data_id: res.raw_data_id, ...params });
    flow.deploy_config = params;
    ctx.log(`create deploy successfully, raw_data_id: ${res.raw_data_id}(name: ${String((params.access_raw_data as Params).raw_data_name)}) in bkdata-bk_biz_id: ${flow.deploy_bk_biz_id}`);
    return advance;
  },
};

const cleanConfig: StepDef = {
  name: 'clean_config',
  failure: 'config_cleans_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const rawDataId = flow.deploy_data_id;
    if (!rawDataId) return fail('deploy data id not found');
    const id = identity(flow);
    const tailFlow = isTail(flow);
    const params = tailFlow ? tail.cleanParams(id, ctx.settings, rawDataId) : metric.cleanParams(id, ctx.settings, rawDataId);
    const rt = `${params.bk_biz_id as number}_${params.result_table_name as string}`;
    let update = false;
    if (!flow.databus_clean_id && !flow.databus_clean_config) {
      const { value: res, adopted } = await createOrAdopt(ctx, `clean ${rt}`, () => ctx.call<{ id?: unknown; result_table_id?: unknown }>('databus_cleans', params), () => findClean(ctx, rawDataId, rt));
      if (typeof res?.id !== 'number' || typeof res.result_table_id !== 'string') return fail(`create cleans failed: unexpected response ${JSON.stringify(res)}`);
      flow.databus_clean_id = res.id;
      flow.databus_clean_result_table_id = res.result_table_id;
      if (!adopted) {
        flow.databus_clean_config = params;
        ctx.log(`create databus cleans: ${params.clean_config_name as string} successfully, result table: ${res.result_table_id}`);
        return advance;
      }
      update = true; // an adopted clean may carry another config
    } else if (tailFlow) {
      update = configDiffers(flow.databus_clean_config, params, ['result_table_name']);
    } else {
      // Virtual metric: only the ETL (json_config) is compared.
      const stored = flow.databus_clean_config?.json_config;
      update = typeof stored !== 'string' || !deepEqual(JSON.parse(stored), JSON.parse(params.json_config as string));
    }
    if (update) {
      if (tailFlow) {
        await ctx.call('update_databus_cleans', { processing_id: flow.databus_clean_id ?? rt, ...params });
      } else {
        // The reference stops a virtual-metric clean before updating it.
        await ctx.call('stop_databus_cleans', { result_table_id: rt, storages: ['kafka'], bk_username: ctx.settings.operator });
        await ctx.call('update_databus_cleans', { ...params, processing_id: rt });
      }
      ctx.log('databus cleans configuration update successfully');
    }
    flow.databus_clean_config = params;
    flow.databus_clean_result_table_id ??= rt;
    return advance;
  },
};

const startClean: StepDef = {
  name: 'start_clean',
  failure: 'config_cleans_start_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const rt = cleanRt(flow);
    if (!rt) return fail('cleans table id not found');
    if (!flow.deploy_data_id) return fail('get etl status failed: deploy data id not found');
    const progress = (flow.state.clean ??= { polls: 0 });
    const start = (): Promise<unknown> => ctx.call('start_databus_cleans', { result_table_id: rt, storages: ['kafka'], bk_username: ctx.settings.operator });

    if (!isTail(flow)) {
      // Virtual metric: start, read; then up to N retries, 1 s apart, until running.
      if (!progress.started) {
        await start();
        progress.started = true;
      }
      if (progress.status === undefined) progress.status = await cleanStatus(ctx, rt);
      while (progress.status !== 'running') {
        if (progress.polls >= ctx.limits.virtualMetricCleanRetries) return fail(`failed to start databus cleans after ${progress.polls} retries, status: ${progress.status ?? 'unknown'}`);
        // A retry counts when it completes or BKData refuses it; a retriable error leaves it to the engine.
        try {
          await start();
          progress.status = await cleanStatus(ctx, rt);
          progress.polls++;
          ctx.log(`retry: ${progress.polls} start databus clean, status: ${progress.status ?? 'unknown'}`);
          if (progress.status !== 'running') return { kind: 'poll', delayMs: ctx.limits.cleanPollIntervalMs };
        } catch (err) {
          if (!isBusinessError(err)) throw err;
          progress.polls++;
          ctx.log(`start databus occur exception: ${errorText(err)}`);
        }
      }
      delete flow.state.clean;
      return advance;
    }

    // Tail sampling: read; up to N iterations of start + read, 1 s apart (no pause after an API error).
    if (progress.status === undefined) progress.status = await cleanStatus(ctx, rt);
    for (;;) {
      if (progress.status === 'running') {
        ctx.log(`check etl status: running, break. loop: ${progress.polls}`);
        delete flow.state.clean;
        return advance;
      }
      if (progress.polls >= ctx.limits.fetchStatusThreshold) return fail('failed to start databus cleans, status is not running');
      try {
        await start();
        progress.status = await cleanStatus(ctx, rt);
        progress.polls++;
        ctx.log(`check etl status: ${progress.status ?? 'unknown'}, loop: ${progress.polls - 1}`);
        if (progress.status !== 'running') return { kind: 'poll', delayMs: ctx.limits.cleanPollIntervalMs };
      } catch (err) {
        if (!isBusinessError(err)) throw err;
        progress.polls++;
        ctx.log(`start databus cleans failed: ${errorText(err)}, loop: ${progress.polls - 1}`);
      }
    }
  },
};

const authorizeProject: StepDef = {
  name: 'authorize_project',
  failure: 'auth_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const project = projectId(ctx);
    flow.project_id = project;
    const rt = cleanRt(flow);
    if (!rt) return fail('cleans result table id not found');
    let permitted = false;
    try {
      permitted = (await ctx.call<unknown>('auth_projects_data_check', { project_id: project, result_table_id: rt, action_id: 'result_table.query_data' })) === true;
    } catch (err) {
      // Reference: an API error of the check counts as "no permission". Retriable errors are retried instead.
      if (!isBusinessError(err)) throw err;
      ctx.log(`check permission of project ${project} on ${rt} failed: ${errorText(err)}`);
    }
    if (permitted) return advance;
    ctx.log(`project id: ${project} cleans result table id: ${rt} no permission, authorization is required`);
    await ctx.call('auth_result_table', { project_id: project, object_id: rt, bk_biz_id: bkdataBiz(ctx) });
    ctx.log('auth project successfully');
    return advance;
  },
};

const registerStorage: StepDef = {
  name: 'register_storage',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const config = tailConfig(flow);
    const id = identity(flow);
    const params = tail.resourceSetParams(id, config, ctx.settings);
    let setId = params.resource_set_id as string;
    const resources = await ctx.call<{ resource_group_id?: string }[] | null>('query_resource_list', {});
    if (!(resources ?? []).some((r) => r.resource_group_id === setId)) {
      ctx.log(`resource_set_id: ${setId} not in resource list, start check if registry`);
      const res = await ctx.call<{ resource_set_id?: unknown; resource_set_name?: unknown }>('get_or_create_resource_set', params);
      if (typeof res?.resource_set_id !== 'string' || res.resource_set_id === '') return fail(`[get_or_create_resource_set] response abnormal, response: ${JSON.stringify(res)}`);
      if (res.resource_set_id !== setId) ctx.log(`ES ${String((params.connection_info as Params).host)} is registered already, will use resource set ${res.resource_set_id}`);
      setId = res.resource_set_id;
    }
    const info = await ctx.call<{ authorized_projects?: { id?: unknown }[] }>('get_resource_set', { resource_set_id: setId });
    const authorized = (info?.authorized_projects ?? []).map((p) => p.id);
    const project = ctx.settings.tailSamplingProjectId;
    if (!authorized.includes(project)) {
      await ctx.call('update_resource_set', { resource_set_id: setId, bk_username: ctx.settings.operator, authorized_projects: [...authorized, project] });
      ctx.log(`${project} <-------> ${setId} auth successfully`);
    }
    flow.state.es_cluster = setId;
    return advance;
  },
};

const ensureDataflow: StepDef = {
  name: 'ensure_dataflow',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const project = projectId(ctx);
    flow.project_id = project;
    const existing = await findDataflowId(ctx);
    if (existing !== null) {
      flow.flow_id = existing;
      return advance;
    }
    const name = isTail(flow) ? tail.flowName(identity(flow), ctx.settings) : metric.flowName(identity(flow));
    const res = await ctx.call<{ flow_id?: unknown }>('create_data_flow', { project_id: project, flow_name: name });
    if (typeof res?.flow_id !== 'number') return fail(`create dataflow ${name} failed: unexpected response ${JSON.stringify(res)}`);
    flow.flow_id = res.flow_id;
    ctx.log(`create dataflow ${name} successfully, flow_id: ${res.flow_id}`);
    return advance;
  },
};

const syncNodes: StepDef = {
  name: 'sync_nodes',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const flowId = flow.flow_id;
    if (!flowId) return fail('dataflow id not found');
    const defs = nodeDefs(ctx);
    if (typeof defs === 'string') return fail(defs);
    const graph = (await ctx.call<{ nodes?: GraphNode[] } | null>('get_data_flow_graph', { flow_id: flowId }))?.nodes ?? [];
    const place = positions(defs);
    const ids: Record<string, number> = {};
    for (const def of defs) {
      const config = def.config(ids);
      const match = findNode(def, config, graph);
      if (match && !needsUpdate(config, match.node_config)) {
        ids[def.key] = match.node_id;
        continue;
      }
      // Remember the pending restart before the write, so a crash right after it cannot lose it.
      const restart = (flow.state.restart ??= { modified: false, sql_changed: false });
      restart.modified = true;
      restart.sql_changed ||= sqlChanged(config, match?.node_config);
      await ctx.checkpoint();
      const payload = nodePayload(flowId, def, config, ids, place[def.key] ?? { x: 100, y: 100 }, ctx.now());
      if (match) {
        await ctx.call('update_data_flow_node', { ...payload, node_id: match.node_id });
        ids[def.key] = match.node_id;
        ctx.log(`update node(${def.key}) to flow(${flowId}) success`);
      } else {
        const res = await ctx.call<{ node_id?: unknown }>('add_data_flow_node', payload);
        if (typeof res?.node_id !== 'number') return fail(`add node(${def.key}) to flow(${flowId}) failed: unexpected response ${JSON.stringify(res)}`);
        ids[def.key] = res.node_id;
        ctx.log(`add node(${def.key}) to flow(${flowId}) success, node_id: ${res.node_id}`);
      }
    }
    flow.state.node_ids = ids;
    return advance;
  },
};

const startDataflow: StepDef = {
  name: 'start_dataflow',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const flowId = flow.flow_id;
    if (!flowId) return fail('dataflow id not found');
    const restart = flow.state.restart ?? { modified: false, sql_changed: false };
    const mode = restart.sql_changed ? 'from_tail' : undefined;
    const info = await ctx.call<{ status?: string }>('get_data_flow', { flow_id: flowId });
    const deployed = await ctx.call<unknown>('get_latest_deploy_data_flow', { flow_id: flowId });
    const status = info?.status;
    const cluster = ctx.settings.flowClusterGroup;
    const unsure = flow.state.uncertain === 'start_data_flow' || flow.state.uncertain === 'restart_data_flow';
    if (unsure && (status === 'running' || status === 'starting')) {
      // The (re)start of an earlier attempt went through although its answer was lost.
      ctx.log(`dataflow(${flowId}) is ${status}: the earlier ${flow.state.uncertain} took effect`);
    } else if (status === 'no-start') {
      const consuming = (deployed ? mode : undefined) ?? 'from_tail';
      await ctx.call('start_data_flow', { flow_id: flowId, consuming_mode: consuming, cluster_group: cluster, check_and_start_clean_task: true });
      ctx.log(`start flow successfully, flow_id: ${flowId}, consuming_mode: ${consuming}`);
    } else if (status === 'running' && !restart.modified) {
      ctx.log(`dataflow(${flowId}) has not changed.`);
    } else {
      const consuming = mode ?? 'continue';
      await ctx.call('restart_data_flow', { flow_id: flowId, consuming_mode: consuming, cluster_group: cluster });
      ctx.log(`restart flow successfully, flow_id: ${flowId} (was ${status ?? 'unknown'}), consuming_mode: ${consuming}`);
    }
    delete flow.state.restart;
    return advance;
  },
};

// ---------------------------------------------------------------------------------------------------------
// steps of stop and delete (not in the reference)

/** Business errors that mean "that dataflow is gone". */
function isNotFound(err: unknown): boolean {
  return isBusinessError(err) && ((err as { bkCode?: string }).bkCode === '1500404' || (err as { httpStatus?: number }).httpStatus === 404);
}

const stopDataflow: StepDef = {
  name: 'stop_dataflow',
  failure: 'stop_failed',
  async run(ctx) {
    const flow = ctx.flow;
    flow.flow_id ??= await findDataflowId(ctx);
    if (!flow.flow_id) {
      ctx.log('no dataflow to stop');
      return advance;
    }
    let status: string | undefined;
    try {
      status = (await ctx.call<{ status?: string }>('get_data_flow', { flow_id: flow.flow_id }))?.status;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      ctx.log(`dataflow ${flow.flow_id} no longer exists`);
      flow.flow_id = null;
      return advance;
    }
    if (status !== 'no-start') {
      await ctx.call('stop_data_flow', { flow_id: flow.flow_id });
      ctx.log(`dataflow(${flow.flow_id}) in status(${status ?? 'unknown'}), stop it`);
    }
    flow.state.stop_polls = 0;
    return advance;
  },
};

const waitDataflowStopped: StepDef = {
  name: 'wait_dataflow_stopped',
  failure: 'stop_failed',
  async run(ctx) {
    const flow = ctx.flow;
    if (!flow.flow_id) return advance;
    const status = (await ctx.call<{ status?: string }>('get_data_flow', { flow_id: flow.flow_id }))?.status;
    if (status === 'no-start') {
      delete flow.state.stop_polls;
      ctx.log(`dataflow(${flow.flow_id}) stopped`);
      return advance;
    }
    const polls = (flow.state.stop_polls ?? 0) + 1;
    flow.state.stop_polls = polls;
    if (polls >= ctx.limits.stopMaxPolls) return fail(`dataflow ${flow.flow_id} still ${status ?? 'unknown'} after ${polls} polls`);
    return { kind: 'poll', delayMs: ctx.limits.stopPollIntervalMs };
  },
};

const deleteDataflow: StepDef = {
  name: 'delete_dataflow',
  failure: 'delete_failed',
  async run(ctx) {
    const flow = ctx.flow;
    if (!flow.flow_id) return advance;
    try {
      await ctx.call('delete_data_flow', { flow_id: flow.flow_id });
      ctx.log(`dataflow(${flow.flow_id}) deleted`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    flow.flow_id = null;
    delete flow.state.node_ids;
    delete flow.state.restart;
    return advance;
  },
};

const stopClean: StepDef = {
  name: 'stop_clean',
  failure: 'stop_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const rt = flow.databus_clean_result_table_id;
    if (!rt || !flow.deploy_data_id) return advance;
    const status = await cleanStatus(ctx, rt);
    if (status === null || status === 'stopped') return advance;
    await ctx.call('stop_databus_cleans', { result_table_id: rt, storages: ['kafka'], bk_username: ctx.settings.operator });
    ctx.log(`databus clean ${rt} stopped`);
    return advance;
  },
};

export const STEPS: Record<StepName, StepDef> = {
  deploy_data_source: deployDataSource,
  clean_config: cleanConfig,
  start_clean: startClean,
  authorize_project: authorizeProject,
  register_storage: registerStorage,
  ensure_dataflow: ensureDataflow,
  sync_nodes: syncNodes,
  start_dataflow: startDataflow,
  stop_dataflow: stopDataflow,
  wait_dataflow_stopped: waitDataflowStopped,
  delete_dataflow: deleteDataflow,
  stop_clean: stopClean,
};
