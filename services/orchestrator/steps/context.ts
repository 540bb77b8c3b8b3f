/**
 * What the steps share (README, How it works): how an attempt ends, creating an object or adopting the
 * one an earlier attempt created (after a business error of its create), and the lookups by name
 * (clean status, dataflow id) that make every step safe to run again.
 *
 * A step works on the worker's copy of the flow (`ctx.flow`), records BKData ids and stored configs on
 * it, and returns what happens next. Errors it throws are classified by the engine (engine.ts):
 * retriable ones are retried or wait for their breaker; business errors fail the flow with the step's
 * reference status. Where the flow types differ, a step asks the flow's kind (`ctx.kind`, kinds/).
 */
import { createHash } from 'node:crypto';
import { maskSecretKeys } from '../../common/secrets.ts';
import { isBusinessError, type ApiName, type Params } from '../bkdata-client.ts';
import { canonical } from '../compare.ts';
import { identityOf, type StepContext, type StepResult } from '../kinds/kind.ts';

export const advance: StepResult = { kind: 'advance' };
export const fail = (message: string): StepResult => ({ kind: 'fail', message });
/** Run the step again after `delayMs` (its progress is saved on the flow). */
export const poll = (delayMs: number): StepResult => ({ kind: 'poll', delayMs });

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The parameters of `start_databus_cleans` and `stop_databus_cleans`: the clean's Kafka task. */
export function cleanTaskParams(rt: string, operator: string): Params {
  return { result_table_id: rt, storages: ['kafka'], bk_username: operator };
}

/** A digest of a request (order-insensitive, secrets masked): what {@link createOrAdopt} remembers of a create. */
export function requestDigest(params: Params): string {
  return createHash('sha256').update(JSON.stringify(canonical(maskSecretKeys(params)))).digest('hex').slice(0, 32);
}

/**
 * Creates an object, or adopts it when BKData refuses the create (a business error such as "already
 * exists") and the lookup finds it: an earlier attempt created it but its answer was lost (a timeout,
 * a crash between the call and the save). Anything else is the create's own error.
 *
 * The request is remembered (flow state `creating`, saved before the call), so an adoption can tell
 * whether the adopted object was made by an earlier attempt of this very request — `unchanged`: it
 * needs no update — or may carry another config.
 */
export async function createOrAdopt<T>(ctx: StepContext, what: string, api: ApiName, params: Params, lookup: () => Promise<T | undefined>): Promise<{ value: T; adopted: boolean; unchanged: boolean }> {
  const digest = requestDigest(params);
  const earlier = ctx.flow.state.creating;
  ctx.flow.state.creating = { api, digest };
  await ctx.checkpoint();
  try {
    const value = await ctx.call<T>(api, params);
    delete ctx.flow.state.creating;
    return { value, adopted: false, unchanged: true };
  } catch (err) {
    if (!isBusinessError(err)) throw err;
    const found = await lookup();
    if (found === undefined) throw err;
    delete ctx.flow.state.creating;
    const unchanged = earlier?.api === api && earlier.digest === digest;
    ctx.log(`${what} exists already (created by an earlier attempt whose answer was lost): adopted${unchanged ? ', its config is the one sent' : ''}`);
    return { value: found, adopted: true, unchanged };
  }
}

/** The status of the clean of result table `rt` on the flow's raw data, or null when there is none. */
export async function cleanStatus(ctx: StepContext, rt: string): Promise<string | null> {
  const list = await ctx.call<{ processing_id?: string; status?: string }[] | null>('get_databus_cleans', {
    raw_data_id: ctx.flow.deploy_data_id,
    bk_username: ctx.settings.operator,
  });
  return (list ?? []).find((c) => c.processing_id === rt)?.status ?? null;
}

/** Looks the dataflow up by name when its id is not known (or no longer exists). */
export async function findDataflowId(ctx: StepContext): Promise<number | null> {
  const name = ctx.kind.flowName(identityOf(ctx.flow), ctx.settings);
  const list = await ctx.call<{ flow_id: number; flow_name: string }[] | null>('get_data_flow_list', { project_id: ctx.kind.projectId(ctx.settings) });
  return (list ?? []).find((f) => f.flow_name === name)?.flow_id ?? null;
}
