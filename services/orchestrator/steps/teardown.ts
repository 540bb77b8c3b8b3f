/**
 * The steps of `stop` and `delete`, the same for every flow kind (README, How it works; the reference has
 * neither for APM flows). Built like the create steps: read first, write only what is needed; waiting
 * for a dataflow to stop is a poll of the state machine.
 */
import { isNotFound } from '../bkdata-client.ts';
import type { StepDef } from '../kinds/kind.ts';
import { advance, cleanStatus, cleanTaskParams, fail, findDataflowId, poll } from './context.ts';

export const stopDataflow: StepDef = {
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

export const waitDataflowStopped: StepDef = {
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
    return poll(ctx.limits.stopPollIntervalMs);
  },
};

export const deleteDataflow: StepDef = {
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

export const stopClean: StepDef = {
  name: 'stop_clean',
  failure: 'stop_failed',
  async run(ctx) {
    const flow = ctx.flow;
    const rt = flow.databus_clean_result_table_id;
    if (!rt || !flow.deploy_data_id) return advance;
    const status = await cleanStatus(ctx, rt);
    if (status === null || status === 'stopped') return advance;
    await ctx.call('stop_databus_cleans', cleanTaskParams(rt, ctx.settings.operator));
    ctx.log(`databus clean ${rt} stopped`);
    return advance;
  },
};

/** The steps of `stop`. */
export const STOP_PLAN: readonly StepDef[] = [stopDataflow, waitDataflowStopped, stopClean];
/** The steps of `delete`: the dataflow is deleted too; raw data and clean stay (README, Differences from the reference). */
export const DELETE_PLAN: readonly StepDef[] = [stopDataflow, waitDataflowStopped, deleteDataflow, stopClean];
