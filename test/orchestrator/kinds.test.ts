/**
 * Conformance of the flow kinds: the same checks run over every kind of the registry (kinds/index.ts),
 * so a new flow type is held to what the shared steps rely on. Plans: the shared steps in order, the
 * README's plan table. Bad config: the keys every kind has, an unknown key, stop/delete without config.
 * Builders: deterministic requests, a clean result table the steps can find again. Lifecycle, in memory
 * (no broker, no HTTP): the create plan run against bkdata-sim's own route handlers reaches a running
 * dataflow with the kind's node graph; run again it changes nothing in BKData; stop, then delete, take
 * it down.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SimState } from '../../services/bkdata-sim/state.ts';
import { loadConfig } from '../../services/common/config.ts';
import { ValidationError } from '../../services/common/errors.ts';
import { BKDATA_APIS, type Params } from '../../services/orchestrator/bkdata-client.ts';
import { deepEqual } from '../../services/orchestrator/compare.ts';
import { flowSettings, orchestratorSpec } from '../../services/orchestrator/config.ts';
import { parseCommand, parseFlowConfig } from '../../services/orchestrator/intake.ts';
import { FLOW_KINDS, FLOW_TYPES, kindOf, planOf } from '../../services/orchestrator/kinds/index.ts';
import { identityOf, type FlowKind, type StepDef } from '../../services/orchestrator/kinds/kind.ts';
import { FAILURE_STATUSES, type Desired } from '../../services/orchestrator/model.ts';
import { checkGraph } from '../../services/orchestrator/nodes.ts';
import { DELETE_PLAN, STOP_PLAN } from '../../services/orchestrator/steps/teardown.ts';
import { memoryBkdata, runPlan, sampleFlow } from './memory-bkdata.ts';

const settings = flowSettings(loadConfig(orchestratorSpec, { env: { BKDATA_API_URL: 'http://127.0.0.1:8090/' } }));
/** The config every kind accepts: a data id (the key every kind has); the rest has defaults. */
const MINIMAL_CONFIG = { data_id: 1_700_001 };
/** The shared create steps, in the order they depend on each other (each kind's plan keeps this order). */
const SHARED_CREATE_ORDER = ['deploy_data_source', 'clean_config', 'start_clean', 'authorize_project', 'ensure_dataflow', 'sync_nodes', 'start_dataflow'];

/** BKData's objects, to compare before and after. */
function snapshot(state: SimState): unknown {
  return structuredClone({ raw: [...state.rawData], cleans: [...state.cleans], grants: [...state.grants], flows: [...state.flows], sets: [...state.resourceSets], seq: state.seq });
}

const names = (plan: readonly StepDef[]): string[] => plan.map((s) => s.name);

test('the registry: every flow type has its kind under its own name', (t) => {
  t.deepEqual([...FLOW_TYPES].sort(), Object.keys(FLOW_KINDS).sort());
  for (const type of FLOW_TYPES) t.is(kindOf(type)?.type, type);
  t.is(kindOf('no_such_type'), undefined);
  t.is(kindOf('constructor'), undefined);
});

test("the README's plan table is the registry's", (t) => {
  const readme = readFileSync(resolve(import.meta.dirname, '../../services/orchestrator/README.md'), 'utf8');
  const kinds = Object.values(FLOW_KINDS);
  const rows = (['running', 'stopped', 'deleted'] as const).map((desired) => {
    const label = { running: 'running (`create_or_update`)', stopped: 'stopped (`stop`)', deleted: 'deleted (`delete`)' }[desired];
    return `| ${label} | ${kinds.map((k) => names(planOf(k.type, desired)).join(' → ')).join(' | ')} |`;
  });
  const table = [`| desired | ${kinds.map((k) => `\`${k.type}\``).join(' | ')} |`, `| --- |${' --- |'.repeat(kinds.length)}`, ...rows].join('\n');
  t.is(/<!-- plans:start -->\n([\s\S]*?)\n<!-- plans:end -->/.exec(readme)?.[1], table);
});

const plans = test.macro((t, kind: FlowKind) => {
  const create = names(kind.createPlan);
  t.true(create.length > 0);
  t.is(new Set(create).size, create.length, 'step names are unique');
  t.false(create.includes('done'));
  t.deepEqual(create.filter((n) => SHARED_CREATE_ORDER.includes(n)), SHARED_CREATE_ORDER, 'the shared create steps, in their order');
  for (const step of kind.createPlan) t.true(FAILURE_STATUSES.includes(step.failure), `${step.name}: ${step.failure}`);
  t.deepEqual(names(planOf(kind.type, 'running')), create);
  t.deepEqual(names(planOf(kind.type, 'stopped')), names(STOP_PLAN));
  t.deepEqual(names(planOf(kind.type, 'deleted')), names(DELETE_PLAN));
});

const badConfig = test.macro((t, kind: FlowKind) => {
  t.deepEqual(parseFlowConfig(kind.type, 'create_or_update', MINIMAL_CONFIG), MINIMAL_CONFIG);
  t.deepEqual(parseFlowConfig(kind.type, 'create_or_update', JSON.stringify(MINIMAL_CONFIG)), MINIMAL_CONFIG);
  t.throws(() => parseFlowConfig(kind.type, 'create_or_update', {}), { instanceOf: ValidationError, message: /config\.data_id must be a positive integer/ });
  t.throws(() => parseFlowConfig(kind.type, 'create_or_update', { ...MINIMAL_CONFIG, app_creator: 5 }), { message: /config\.app_creator must be a string/ });
  t.throws(() => parseFlowConfig(kind.type, 'create_or_update', { ...MINIMAL_CONFIG, bogus: 1 }), { message: new RegExp(`config\\.bogus: unknown key for ${kind.type}`) });
  t.throws(() => parseFlowConfig(kind.type, 'create_or_update', '[1]'), { message: /must be a JSON object/ });
  for (const action of ['stop', 'delete'] as const) t.deepEqual(parseFlowConfig(kind.type, action, undefined), {}, `${action} needs no config`);
  t.false(kind.configKeys.includes('data_id') || kind.configKeys.includes('app_creator'), 'the keys every kind has are not repeated');
  t.is(new Set(kind.configKeys).size, kind.configKeys.length);
  t.is(kind.checkBiz(2), undefined, 'runs for a business');
  t.is(parseCommand({ action: 'create_or_update', flow_type: kind.type, bk_biz_id: 2, app_name: 'a', config: MINIMAL_CONFIG }).flow_type, kind.type);
});

const builders = test.macro((t, kind: FlowKind) => {
  const flow = sampleFlow(kind, MINIMAL_CONFIG);
  const id = identityOf(flow);
  const deploy = kind.deployParams(flow, settings);
  t.true(deepEqual(deploy, kind.deployParams(flow, settings)), 'deterministic: no needless update_deploy_plan');
  t.is(deploy.bk_biz_id, kind.bkdataBizId(id, settings));
  t.is(typeof (deploy.access_raw_data as Params).raw_data_name, 'string');

  const clean = kind.cleanParams(id, settings, 77);
  t.is(clean.raw_data_id, 77);
  t.notThrows(() => JSON.parse(clean.json_config as string) as unknown);
  t.true(kind.cleanDiffers(null, clean), 'no stored config: update');
  t.false(kind.cleanDiffers(structuredClone(clean), clean), 'the same config: no update');
  const rt = `${clean.bk_biz_id as number}_${clean.result_table_name as string}`;
  t.true([null, rt].includes(kind.cleanResultTableId(flow)), 'before the clean exists: unknown, or known in advance');
  flow.databus_clean_result_table_id = rt;
  t.is(kind.cleanResultTableId(flow), rt, 'once created, the steps find the clean by it');
  const update = kind.cleanUpdate(flow, rt, clean, settings).at(-1);
  t.is(update?.api, 'update_databus_cleans');
  t.truthy(update?.params.processing_id);

  t.is(kind.flowName(id, settings), kind.flowName(identityOf(sampleFlow(kind, MINIMAL_CONFIG)), settings));
  t.not(kind.flowName(id, settings), kind.flowName(identityOf(sampleFlow(kind, MINIMAL_CONFIG, 'other-app')), settings));
  t.true(kind.projectId(settings) > 0);
});

const lifecycle = test.macro(async (t, kind: FlowKind) => {
  const bkdata = memoryBkdata();
  const flow = sampleFlow(kind, MINIMAL_CONFIG);
  await runPlan(t, planOf(kind.type, 'running'), kind, flow, bkdata.call, settings);
  t.truthy(flow.deploy_data_id);
  t.truthy(flow.databus_clean_result_table_id);
  const df = bkdata.state.flows.get(flow.flow_id as number);
  t.is(df?.flow_name, kind.flowName(identityOf(flow), settings));
  t.is(df?.project_id, kind.projectId(settings));
  const defs = kind.nodeDefs(flow, settings);
  if (typeof defs === 'string') return void t.fail(defs);
  t.notThrows(() => checkGraph(defs));
  t.deepEqual(df?.nodes.map((n) => n.node_type), defs.map((d) => d.nodeType));
  t.deepEqual(defs[0]?.config({}).from_result_table_ids, [kind.cleanResultTableId(flow)], 'the graph reads the clean');
  t.is(df?.target, 'running');
  t.true(bkdata.state.grants.has(`${kind.projectId(settings)}|${kind.cleanResultTableId(flow)}`), 'the project may read the clean');
  t.is(bkdata.state.cleans.get(kind.cleanResultTableId(flow) as string)?.state, 'started');

  // The same command again changes nothing in BKData (a kind may re-send an idempotent start, as the
  // virtual metric's reference clean start does, but creates and updates nothing).
  const before = snapshot(bkdata.state);
  const mark = bkdata.calls.length;
  await runPlan(t, planOf(kind.type, 'running'), kind, flow, bkdata.call, settings);
  t.deepEqual(snapshot(bkdata.state), before);
  t.deepEqual(bkdata.calls.slice(mark).filter((api) => BKDATA_APIS[api].write && api !== 'start_databus_cleans'), []);

  const takeDown = async (desired: Desired): Promise<void> => {
    flow.desired = desired;
    await runPlan(t, planOf(kind.type, desired), kind, flow, bkdata.call, settings);
  };
  await takeDown('stopped');
  t.is(bkdata.state.flows.get(df?.flow_id as number)?.target, 'no-start');
  t.is(bkdata.state.cleans.get(flow.databus_clean_result_table_id as string)?.state, 'stopped');
  await takeDown('deleted');
  t.false(bkdata.state.flows.has(df?.flow_id as number));
  t.is(flow.flow_id, null);
});

for (const kind of Object.values(FLOW_KINDS)) {
  test(`${kind.type}: plans`, plans, kind);
  test(`${kind.type}: bad config`, badConfig, kind);
  test(`${kind.type}: builders`, builders, kind);
  test(`${kind.type}: create, again without writes, stop, delete (in memory)`, lifecycle, kind);
}
