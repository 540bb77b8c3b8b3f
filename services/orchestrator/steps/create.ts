/**
 * The steps of `create_or_update` every flow kind shares (README, How it works), each one idempotent the
 * way the reference makes it: the deploy plan and the clean are updated only when their config differs,
 * the clean status is read before it is started, permission is checked before it is granted, the
 * dataflow is matched by name, nodes are diffed against the graph, and the dataflow is (re)started only
 * when its status or a node change asks for it. Loops of the reference that sleep (clean start) become
 * polls: the step returns `poll` and runs again later, with its progress saved in `ctx.flow.state`.
 *
 * Also the two clean-start loops of the reference, which kinds choose from.
 */
import { isBusinessError, type Params } from '../bkdata-client.ts';
import { configDiffers } from '../compare.ts';
import { findNode, needsUpdate, nodePayload, positions, sqlChanged, type GraphNode } from '../nodes.ts';
import { identityOf, type CleanStart, type StepContext, type StepDef, type StepResult } from '../kinds/kind.ts';
import { advance, cleanStatus, cleanTaskParams, createOrAdopt, errorText, fail, findDataflowId, poll } from './context.ts';

async function findRawData(ctx: StepContext, params: Params): Promise<{ raw_data_id?: unknown } | undefined> {
  const name = (params.access_raw_data as Params).raw_data_name;
  const list = await ctx.call<{ id?: unknown; raw_data_id?: unknown; raw_data_name?: unknown }[] | null>('list_raw_data', { bk_biz_id: params.bk_biz_id, raw_data_name: name });
  const hit = (list ?? []).find((r) => r.raw_data_name === name);
  return hit ? { raw_data_id: hit.raw_data_id ?? hit.id } : undefined;
}

async function findClean(ctx: StepContext, rawDataId: number, rt: string): Promise<{ id?: unknown; result_table_id?: unknown } | undefined> {
  const list = await ctx.call<{ id?: unknown; processing_id?: string }[] | null>('get_databus_cleans', { raw_data_id: rawDataId, bk_username: ctx.settings.operator });
  const hit = (list ?? []).find((c) => c.processing_id === rt);
  return hit ? { id: hit.id, result_table_id: rt } : undefined;
}

export const deployDataSource: StepDef = {
  name: 'deploy_data_source',
  failure: 'config_deploy_failed',
  async run(ctx) {
    const { flow, kind } = ctx;
    flow.deploy_bk_biz_id = kind.bkdataBizId(identityOf(flow), ctx.settings);
    // A kind that does not keep its raw data up to date creates it once and never updates it (virtual metric).
    if (flow.deploy_data_id && !kind.updatesDeployPlan) {
      ctx.log(`datasource exists, will use raw_data_id: ${flow.deploy_data_id}`);
      return advance;
    }
    const params = kind.deployParams(flow, ctx.settings);
    if (flow.deploy_data_id) {
      if (!configDiffers(ctx.reveal(flow.deploy_config, 'deploy_config'), params)) {
        ctx.log(`datasource configuration not updates, will use: ${flow.deploy_data_id}`);
        return advance;
      }
      await ctx.call('update_deploy_plan', { raw_data_id: flow.deploy_data_id, ...params });
      flow.deploy_config = ctx.conceal(params, 'deploy_config');
      ctx.log(`datasource configuration updates successfully, will use: ${flow.deploy_data_id}`);
      return advance;
    }
    const { value: res, adopted, unchanged } = await createOrAdopt<{ raw_data_id?: unknown }>(ctx, 'raw data', 'access_deploy_plan', params, () => findRawData(ctx, params));
    if (typeof res?.raw_data_id !== 'number') return fail(`create deploy failed: response has no raw_data_id: ${JSON.stringify(res)}`);
    flow.deploy_data_id = res.raw_data_id;
    // An adopted raw data may carry another config (unless an earlier attempt created it with this very
    // request): a kind that keeps it up to date brings it up to date.
    if (adopted && !unchanged && kind.updatesDeployPlan) await ctx.call('update_deploy_plan', { raw_data_id: res.raw_data_id, ...params });
    flow.deploy_config = ctx.conceal(params, 'deploy_config');
    ctx.log(`create deploy successfully, raw_data_id: ${res.raw_data_id}(name: ${String((params.access_raw_data as Params).raw_data_name)}) in bkdata-bk_biz_id: ${flow.deploy_bk_biz_id}`);
    return advance;
  },
};

export const cleanConfig: StepDef = {
  name: 'clean_config',
  failure: 'config_cleans_failed',
  async run(ctx) {
    const { flow, kind } = ctx;
    const rawDataId = flow.deploy_data_id;
    if (!rawDataId) return fail('deploy data id not found');
    const params = kind.cleanParams(identityOf(flow), ctx.settings, rawDataId);
    const rt = `${params.bk_biz_id as number}_${params.result_table_name as string}`;
    let update: boolean;
    if (!flow.databus_clean_id && !flow.databus_clean_config) {
      const { value: res, adopted, unchanged } = await createOrAdopt<{ id?: unknown; result_table_id?: unknown }>(ctx, `clean ${rt}`, 'databus_cleans', params, () => findClean(ctx, rawDataId, rt));
      if (typeof res?.id !== 'number' || typeof res.result_table_id !== 'string') return fail(`create cleans failed: unexpected response ${JSON.stringify(res)}`);
      flow.databus_clean_id = res.id;
      flow.databus_clean_result_table_id = res.result_table_id;
      if (!adopted) {
        flow.databus_clean_config = params;
        ctx.log(`create databus cleans: ${params.clean_config_name as string} successfully, result table: ${res.result_table_id}`);
        return advance;
      }
      // An adopted clean may carry another config, unless an earlier attempt created it with this very request.
      update = !unchanged;
    } else {
      update = kind.cleanDiffers(flow.databus_clean_config, params);
    }
    if (update) {
      for (const request of kind.cleanUpdate(flow, rt, params, ctx.settings)) await ctx.call(request.api, request.params);
      ctx.log('databus cleans configuration update successfully');
    }
    flow.databus_clean_config = params;
    flow.databus_clean_result_table_id ??= rt;
    return advance;
  },
};

export const startClean: StepDef = {
  name: 'start_clean',
  failure: 'config_cleans_start_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const rt = ctx.kind.cleanResultTableId(flow);
    if (!rt) return fail('cleans table id not found');
    if (!flow.deploy_data_id) return fail('get etl status failed: deploy data id not found');
    const progress = (flow.state.clean ??= { polls: 0 });
    return ctx.kind.startClean(ctx, { rt, progress, start: () => ctx.call('start_databus_cleans', cleanTaskParams(rt, ctx.settings.operator)) });
  },
};

/**
 * The tail-sampling clean start (reference ApmFlow): read the status; then up to
 * `fetchStatusThreshold` iterations of start + read, `cleanPollIntervalMs` apart (no pause after an API
 * business error, which counts as an iteration).
 */
export async function startCleanReadFirst(ctx: StepContext, { rt, progress, start }: CleanStart): Promise<StepResult> {
  const flow = ctx.flow;
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
      if (progress.status !== 'running') return poll(ctx.limits.cleanPollIntervalMs);
    } catch (err) {
      if (!isBusinessError(err)) throw err;
      progress.polls++;
      ctx.log(`start databus cleans failed: ${errorText(err)}, loop: ${progress.polls - 1}`);
    }
  }
}

/**
 * The virtual-metric clean start (reference VirtualMetricFlow): start, read; then up to
 * `virtualMetricCleanRetries` retries, `cleanPollIntervalMs` apart, until it runs. A retry counts when it
 * completes or BKData refuses it; a retriable error leaves it to the engine.
 */
export async function startCleanStartFirst(ctx: StepContext, { rt, progress, start }: CleanStart): Promise<StepResult> {
  if (!progress.started) {
    await start();
    progress.started = true;
  }
  if (progress.status === undefined) progress.status = await cleanStatus(ctx, rt);
  while (progress.status !== 'running') {
    if (progress.polls >= ctx.limits.virtualMetricCleanRetries) return fail(`failed to start databus cleans after ${progress.polls} retries, status: ${progress.status ?? 'unknown'}`);
    try {
      await start();
      progress.status = await cleanStatus(ctx, rt);
      progress.polls++;
      ctx.log(`retry: ${progress.polls} start databus clean, status: ${progress.status ?? 'unknown'}`);
      if (progress.status !== 'running') return poll(ctx.limits.cleanPollIntervalMs);
    } catch (err) {
      if (!isBusinessError(err)) throw err;
      progress.polls++;
      ctx.log(`start databus occur exception: ${errorText(err)}`);
    }
  }
  delete ctx.flow.state.clean;
  return advance;
}

export const authorizeProject: StepDef = {
  name: 'authorize_project',
  failure: 'auth_failed',
  async run(ctx) {
    const { flow, kind } = ctx;
    const project = kind.projectId(ctx.settings);
    flow.project_id = project;
    const rt = kind.cleanResultTableId(flow);
    if (!rt) return fail('cleans result table id not found');
    let permitted = false;
    try {
      permitted = (await ctx.call<unknown>('auth_projects_data_check', { project_id: project, result_table_id: rt, action_id: 'result_table.query_data' })) === true;
    } catch (err) {
      // Reference: an API (business) error of the check counts as "no permission". Retriable errors are retried instead.
      if (!isBusinessError(err)) throw err;
      ctx.log(`check permission of project ${project} on ${rt} failed: ${errorText(err)}`);
    }
    if (permitted) return advance;
    ctx.log(`project id: ${project} cleans result table id: ${rt} no permission, authorization is required`);
    await ctx.call('auth_result_table', { project_id: project, object_id: rt, bk_biz_id: kind.bkdataBizId(identityOf(flow), ctx.settings) });
    ctx.log('auth project successfully');
    return advance;
  },
};

export const ensureDataflow: StepDef = {
  name: 'ensure_dataflow',
  failure: 'config_flow_failed',
  async run(ctx) {
    const { flow, kind } = ctx;
    const project = kind.projectId(ctx.settings);
    flow.project_id = project;
    const existing = await findDataflowId(ctx);
    if (existing !== null) {
      flow.flow_id = existing;
      return advance;
    }
    const name = kind.flowName(identityOf(flow), ctx.settings);
    const res = await ctx.call<{ flow_id?: unknown }>('create_data_flow', { project_id: project, flow_name: name });
    if (typeof res?.flow_id !== 'number') return fail(`create dataflow ${name} failed: unexpected response ${JSON.stringify(res)}`);
    flow.flow_id = res.flow_id;
    ctx.log(`create dataflow ${name} successfully, flow_id: ${res.flow_id}`);
    return advance;
  },
};

export const syncNodes: StepDef = {
  name: 'sync_nodes',
  failure: 'config_flow_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const flowId = flow.flow_id;
    if (!flowId) return fail('dataflow id not found');
    const defs = ctx.kind.nodeDefs(flow, ctx.settings);
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

export const startDataflow: StepDef = {
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
