/**
 * The demo application and its tail-sampling flow.
 *
 * - The application is registered with the collector's registry code (collector/applications.ts, what
 *   `bkstream apps create` and the admin API run): created on the first demo run, its token rotated on
 *   later ones (a token is shown once and stored only hashed, so a new run needs a new one).
 * - The flow is a FlowCommand on `<prefix>.flow.commands`, the orchestrator's command topic, so it is
 *   taken the way any producer's command is, by whichever orchestrator consumes that topic; its progress
 *   is read from the flow's durable state (bkdata_flow) until the command's run ends.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { codecFor } from '../../common/avro/index.ts';
import type { BusProducer } from '../../common/bus/index.ts';
import { ConflictError } from '../../common/errors.ts';
import type { FlowCommand } from '../../common/records.ts';
import type { Store } from '../../common/store/index.ts';
import { topicName } from '../../common/topics.ts';
import { createApplication, rotateToken, type Application, type NewApplication } from '../../collector/applications.ts';
import { FlowStore } from '../../orchestrator/flow-store.ts';
import { isTerminal, type Flow, type FlowKey } from '../../orchestrator/model.ts';

/** The demo application: business 2, `demo-shop`, with a traces data id for its BKData flow. */
export const DEMO_APP = {
  bkBizId: 2,
  appName: 'demo-shop',
  appAlias: 'bkstream demo shop',
  description: 'traffic of `bkstream up --demo` (services/cli/demo)',
  tracesDataId: 1_509_999,
} as const satisfies NewApplication;

/** The demo application and a fresh token for it; `created` is false when it existed (its token was rotated). */
export async function ensureDemoApp(store: Store, app: NewApplication = DEMO_APP): Promise<{ application: Application; token: string; created: boolean }> {
  try {
    const { application, token } = await createApplication(store, app);
    return { application, token, created: true };
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    const { application, token } = await rotateToken(store, app.bkBizId, app.appName);
    return { application, token, created: false };
  }
}

/** The tail-sampling command of an application (its traces data id, half of the traces kept). */
export function tailSamplingCommand(app: Pick<Application, 'bkBizId' | 'appName' | 'tracesDataId'>, nowMs: number = Date.now()): FlowCommand {
  return {
    command_id: randomUUID(),
    action: 'create_or_update',
    flow_type: 'tail_sampling',
    bk_biz_id: app.bkBizId,
    app_name: app.appName,
    config: JSON.stringify({ data_id: app.tracesDataId > 0 ? app.tracesDataId : DEMO_APP.tracesDataId, tail_percentage: 50, app_creator: 'bkstream-demo' }),
    operator: 'bkstream-demo',
    requested_at: nowMs,
  };
}

export const flowKeyOf = (c: Pick<FlowCommand, 'bk_biz_id' | 'app_name' | 'flow_type'>): FlowKey => ({ bk_biz_id: c.bk_biz_id, app_name: c.app_name, flow_type: c.flow_type });

/** Publishes a flow command on `<prefix>.flow.commands` (key `biz:app:flow_type`, as the topic is keyed). */
export async function submitFlowCommand(producer: BusProducer, topicPrefix: string, command: FlowCommand): Promise<void> {
  await producer.send(topicName(topicPrefix, 'flowCommands'), [
    { key: `${command.bk_biz_id}:${command.app_name}:${command.flow_type}`, value: codecFor('FlowCommand').encode(command) },
  ]);
}

/**
 * The flow once the run of `command` ended (success, or a failure status), read from the store every
 * `pollMs`; rejects after `timeoutMs` with the status it was in, or when `signal` aborts.
 */
export async function waitForFlowCommand(store: Store, command: FlowCommand, options: { timeoutMs: number; pollMs?: number; signal?: AbortSignal }): Promise<Flow> {
  const flows = new FlowStore(store);
  const key = flowKeyOf(command);
  const deadline = Date.now() + options.timeoutMs;
  let last: Flow | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    last = await flows.get(key);
    if (last && last.command_id === command.command_id && isTerminal(last.status)) return last;
    if (Date.now() >= deadline) {
      const where = last && last.command_id === command.command_id ? `${last.status} at step ${last.step}${last.message ? ` (${last.message})` : ''}` : 'not taken by an orchestrator yet';
      throw new Error(`the ${command.flow_type} flow of ${command.bk_biz_id}/${command.app_name} did not finish within ${options.timeoutMs} ms: ${where}`);
    }
    await sleep(options.pollMs ?? 500, undefined, options.signal ? { signal: options.signal } : undefined);
  }
}
