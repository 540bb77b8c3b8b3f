/**
 * The command APIs: FlowCommand records on flow.commands (with every transition coming back on
 * flow.status, and bad commands dead-lettered), the HTTP API and the gRPC API.
 */
import test from 'ava';
import { DLQ_HEADERS, type Batch } from '../../services/common/bus/index.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import type { FlowCommand, FlowStatus } from '../../services/common/records.ts';
import { topicName } from '../../services/common/topics.ts';
import { flowServiceDefinition } from '../../services/orchestrator/grpc-api.ts';
import { GrpcMetadata, grpcCredentials, grpcStatus, type ServiceError } from '../../services/common/grpc.ts';
import { bearer, jsonHeaders, TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { keyOf, setup, tailCommand, waitForFlow } from './kit.ts';

test.serial('commands on flow.commands drive a flow; every transition is published on flow.status', async (t) => {
  const { kit, prefix, orch } = await setup(t);
  const statuses: FlowStatus[] = [];
  const consumer = kit.bus.consumer<FlowStatus>({
    groupId: uniqueName('status-reader'),
    topics: [topicName(prefix, 'flowStatus')],
    codec: codecFor('FlowStatus'),
    dlqTopic: topicName(prefix, 'dlq'),
    maxWaitTimeMs: 100,
    handler: async (batch: Batch<FlowStatus>) => {
      for (const r of batch.records) statuses.push(r.value);
    },
  });
  t.teardown(() => consumer.stop(0));
  await consumer.start();

  const command: FlowCommand = {
    command_id: uniqueName('cmd'),
    action: 'create_or_update',
    flow_type: 'tail_sampling',
    bk_biz_id: 7,
    app_name: 'kafka-app',
    config: JSON.stringify({ data_id: 1_700_001, tail_percentage: 20 }),
    operator: 'tester',
    requested_at: Date.now(),
  };
  await kit.produce(topicName(prefix, 'flowCommands'), [{ key: '7:kafka-app:tail_sampling', value: codecFor('FlowCommand').encode(command) }]);
  const flow = await waitForFlow(orch, { bk_biz_id: 7, app_name: 'kafka-app', flow_type: 'tail_sampling' }, ['success']);
  t.is(flow.command_id, command.command_id);

  await waitFor('the success status on flow.status', () => statuses.some((s) => s.status === 'success'));
  t.true(statuses.every((s) => s.flow_key === '7:kafka-app:tail_sampling' && s.command_id === command.command_id));
  t.deepEqual(statuses[0] && [statuses[0].status, statuses[0].step], ['pending', 'deploy_data_source']);
  const steps = statuses.filter((s) => s.status === 'running').map((s) => s.step);
  for (const step of ['clean_config', 'start_clean', 'authorize_project', 'register_storage', 'ensure_dataflow', 'sync_nodes', 'start_dataflow']) {
    t.true(steps.includes(step), `a running transition into ${step}`);
  }
  t.deepEqual(statuses.at(-1) && [statuses.at(-1)?.status, statuses.at(-1)?.step], ['success', 'done']);
  t.true(statuses.every((s, i) => i === 0 || s.at >= (statuses[i - 1] as FlowStatus).at), 'in order');
  t.is(await orch.flows.outboxSize(), 0, 'the outbox is drained');
});

test.serial('an invalid command is dead-lettered with its reason and does not stop the consumer', async (t) => {
  const { kit, prefix, orch } = await setup(t);
  const dead: { reason: string }[] = [];
  const dlq = kit.bus.consumer<Buffer>({
    groupId: uniqueName('dlq-reader'),
    topics: [topicName(prefix, 'dlq')],
    codec: { decode: (b) => b },
    dlqTopic: uniqueName('unused'),
    maxWaitTimeMs: 100,
    handler: async (batch) => {
      for (const r of batch.records) dead.push({ reason: String(r.headers[DLQ_HEADERS.errorMessage]) });
    },
  });
  t.teardown(() => dlq.stop(0));
  await dlq.start();
  const codec = codecFor('FlowCommand');
  const bad: FlowCommand = { command_id: 'bad-1', action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: -3, app_name: 'x', config: '{"data_id": "nope"}', operator: '', requested_at: 1 };
  const good: FlowCommand = { ...bad, command_id: uniqueName('good'), bk_biz_id: 3, config: '{"data_id": 42}' };
  await kit.produce(topicName(prefix, 'flowCommands'), [
    { key: 'k', value: codec.encode(bad) },
    { key: 'k', value: Buffer.from('not avro') },
    { key: 'k', value: codec.encode(good) },
  ]);
  await waitFor('two dead letters', () => dead.length === 2);
  t.true(dead.some((d) => /bk_biz_id must be > 0 for virtual_metric/.test(d.reason) && /config.data_id must be a positive integer/.test(d.reason)));
  const flow = await waitForFlow(orch, { bk_biz_id: 3, app_name: 'x', flow_type: 'virtual_metric' }, ['success']);
  t.is(flow.command_id, good.command_id);
});

test.serial('HTTP API: submit, get, list, retry, breakers, and clear errors for bad input', async (t) => {
  const { orch, sim } = await setup(t, { BKDATA_SIM_STUCK_CLEANS: '*' }, { BKDATA_FETCH_STATUS_THRESHOLD: '2' });
  const base = `http://127.0.0.1:${orch.httpPort()}`;
  const post = (path: string, body: unknown): Promise<Response> => fetch(`${base}${path}`, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(body) });
  const get = (path: string): Promise<Response> => fetch(`${base}${path}`, { headers: bearer() });

  const bad = await post('/api/v1/flows', { action: 'explode', flow_type: 'tail_sampling', bk_biz_id: 'x', app_name: '' });
  t.is(bad.status, 400);
  const badBody = (await bad.json()) as { error: string };
  t.regex(badBody.error, /action must be one of/);
  t.regex(badBody.error, /bk_biz_id must be an integer/);
  t.regex(badBody.error, /app_name/);

  const cmd = tailCommand('http-app');
  const res = await post('/api/v1/flows', cmd);
  t.is(res.status, 202);
  const accepted = (await res.json()) as { outcome: string; command_id: string; flow: { status: string } };
  t.is(accepted.outcome, 'accepted');
  t.is(accepted.flow.status, 'pending');

  await waitForFlow(orch, keyOf(cmd), ['config_cleans_start_failed']);
  const one = await get(`/api/v1/flows/2/http-app/tail_sampling`);
  t.is(one.status, 200);
  const detail = (await one.json()) as { flow: { status: string; step: string }; steps: { step: string; status: string }[] };
  t.is(detail.flow.status, 'config_cleans_start_failed');
  t.is(detail.steps[0]?.status, 'failed');

  const list = (await (await get(`/api/v1/flows?status=config_cleans_start_failed`)).json()) as { count: number };
  t.is(list.count, 1);
  t.is(((await (await get(`/api/v1/flows?flow_type=virtual_metric`)).json()) as { count: number }).count, 0);
  t.is((await get(`/api/v1/flows?bk_biz_id=abc`)).status, 400);
  t.is((await get(`/api/v1/flows/2/nope/tail_sampling`)).status, 404);

  sim.faults.stuckCleans = [];
  const retry = await post('/api/v1/flows/2/http-app/tail_sampling/retry', {});
  t.is(retry.status, 200);
  await waitForFlow(orch, keyOf(cmd), ['success']);
  const again = await post('/api/v1/flows/2/http-app/tail_sampling/retry', {});
  t.is(again.status, 409, 'only failed or waiting flows can be retried');

  const breakers = (await (await get(`/api/v1/breakers`)).json()) as Record<string, string>;
  t.deepEqual(breakers, { access: 'closed', databus: 'closed', auth: 'closed', dataflow: 'closed', resourcecenter: 'closed' });
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.regex(metrics, /bkstream_breaker_state\{breaker="dataflow"\} 0/);
  t.regex(metrics, /bkstream_flow_commands_total\{source="http",outcome="accepted"\} 1/);
  t.is((await fetch(`${base}/healthz`)).status, 200);
});

test.serial('gRPC API: Submit, Get, List, Retry with gRPC status codes', async (t) => {
  const { orch } = await setup(t);
  const FlowService = flowServiceDefinition();
  const client = new FlowService(`127.0.0.1:${orch.grpcPort()}`, grpcCredentials.createInsecure()) as unknown as Record<string, (req: unknown, md: GrpcMetadata, cb: (err: ServiceError | null, res: Record<string, unknown>) => void) => void>;
  t.teardown(() => (client as unknown as { close(): void }).close());
  const md = new GrpcMetadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  const call = (method: string, req: unknown): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => (client[method] as (r: unknown, m: GrpcMetadata, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void).call(client, req, md, (err, res) => (err ? reject(err) : resolve(res))));

  const invalid = await t.throwsAsync(call('Submit', { action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 5, app_name: 'g', config_json: '{' }));
  t.is((invalid as unknown as ServiceError).code, grpcStatus.INVALID_ARGUMENT);
  t.regex(invalid?.message ?? '', /config is not valid JSON/);

  const submitted = await call('Submit', { action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 5, app_name: 'grpc-app', config_json: '{"data_id": 99}', operator: 'me' });
  t.is(submitted.outcome, 'accepted');
  await waitForFlow(orch, { bk_biz_id: 5, app_name: 'grpc-app', flow_type: 'virtual_metric' }, ['success']);

  const detail = await call('Get', { key: { bk_biz_id: 5, app_name: 'grpc-app', flow_type: 'virtual_metric' }, steps: 3 });
  t.is((detail.flow as { status: string }).status, 'success');
  t.is((detail.steps as unknown[]).length, 3);
  const listed = await call('List', { flow_type: 'virtual_metric', has_bk_biz_id: true, bk_biz_id: 5 });
  t.deepEqual((listed.flows as { app_name: string }[]).map((f) => f.app_name), ['grpc-app']);

  const missing = await t.throwsAsync(call('Get', { key: { bk_biz_id: 5, app_name: 'nope', flow_type: 'virtual_metric' } }));
  t.is((missing as unknown as ServiceError).code, grpcStatus.NOT_FOUND);
  const notFailed = await t.throwsAsync(call('Retry', { bk_biz_id: 5, app_name: 'grpc-app', flow_type: 'virtual_metric' }));
  t.is((notFailed as unknown as ServiceError).code, grpcStatus.FAILED_PRECONDITION);
});
