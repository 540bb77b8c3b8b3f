/**
 * Flows belong to registered applications (services/orchestrator/applications.ts), with the orchestrator
 * reading the store's application registry: a flow of an unknown application is refused over HTTP (404),
 * gRPC (NOT_FOUND) and Kafka (dead-lettered with the reason, counted, never run); a stop or delete of an
 * application already deleted is taken while its flow exists. End to end: the collector's admin API
 * registers an application with tail sampling, its flow runs to success, deleting the application
 * deletes the flow.
 */
import test from 'ava';
import { DLQ_HEADERS } from '../../services/common/bus/index.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { GrpcMetadata, grpcCredentials, grpcStatus, type ServiceError } from '../../services/common/grpc.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import type { FlowCommand } from '../../services/common/records.ts';
import { topicName } from '../../services/common/topics.ts';
import { createApplication, deleteApplication } from '../../services/collector/applications.ts';
import { createCollector } from '../../services/collector/service.ts';
import { checkApplication, storeApplications, UnknownApplicationError, type ApplicationRegistry } from '../../services/orchestrator/applications.ts';
import type { Command } from '../../services/orchestrator/model.ts';
import { flowServiceDefinition } from '../../services/orchestrator/grpc-api.ts';
import { jsonHeaders, TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';
import { brokerKit, brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { flowTopics, keyOf, startOrchestrator, startSim, tailCommand, waitForFlow } from './kit.ts';

/** An orchestrator that reads the store's registry (not the kit's any-application double). */
async function setupRegistered(t: Parameters<typeof brokerKit>[0]) {
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit);
  const store = await pgliteStore(t, { migrated: true });
  const sim = await startSim(t);
  const { orch, registry } = await startOrchestrator(t, { store, bus: kit.bus, sim, prefix, applications: storeApplications(store) });
  return { kit, prefix, store, sim, orch, registry };
}

async function commandsCounted(registry: ReturnType<typeof createRegistry>, source: string, outcome: string): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'bkstream_flow_commands_total');
  return Number(metric?.values.find((v) => v.labels.source === source && v.labels.outcome === outcome)?.value ?? 0);
}

test('the rule: create_or_update needs a registered application; stop and delete need it or the flow', async (t) => {
  const registry: ApplicationRegistry = { isRegistered: async (biz, app) => biz === 2 && app === 'known' };
  const command = (app: string, action: Command['action']): Command => ({ command_id: 'c', action, flow_type: 'tail_sampling', bk_biz_id: 2, app_name: app, config: {}, operator: '', requested_at: 0 });
  const noFlow = async (): Promise<boolean> => false;
  const aFlow = async (): Promise<boolean> => true;
  for (const action of ['create_or_update', 'stop', 'delete'] as const) await t.notThrowsAsync(checkApplication(registry, command('known', action), noFlow), action);
  await t.throwsAsync(checkApplication(registry, command('ghost', 'create_or_update'), aFlow), { instanceOf: UnknownApplicationError, message: /^no application ghost in business 2: flows run for registered applications only/ }, 'an existing flow does not make a new create_or_update acceptable');
  for (const action of ['stop', 'delete'] as const) {
    await t.notThrowsAsync(checkApplication(registry, command('ghost', action), aFlow), `${action} of a deleted application's flow`);
    await t.throwsAsync(checkApplication(registry, command('ghost', action), noFlow), { instanceOf: UnknownApplicationError, message: `no application ghost in business 2 and no tail_sampling flow of it to ${action}` });
  }
});

test.serial('HTTP and gRPC: a flow of an application that is not registered is refused with 404 / NOT_FOUND naming it', async (t) => {
  const { store, orch, registry } = await setupRegistered(t);
  const base = `http://127.0.0.1:${orch.httpPort()}/api/v1/flows`;
  const unknown = await fetch(base, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(tailCommand('ghost')) });
  t.is(unknown.status, 404);
  const body = (await unknown.json()) as { error: string; code: string };
  t.is(body.code, 'not_found');
  t.is(body.error, 'no application ghost in business 2: flows run for registered applications only (register it first: bkstream apps create --biz 2 --app ghost)');
  t.is(await orch.flows.get(keyOf(tailCommand('ghost'))), undefined, 'no flow row');
  const stop = await fetch(base, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify({ ...tailCommand('ghost'), action: 'stop', config: {} }) });
  t.is(stop.status, 404);
  t.regex(((await stop.json()) as { error: string }).error, /no application ghost in business 2 and no tail_sampling flow of it to stop/);

  const FlowService = flowServiceDefinition();
  const client = new FlowService(`127.0.0.1:${orch.grpcPort()}`, grpcCredentials.createInsecure()) as unknown as { Submit(req: unknown, md: GrpcMetadata, cb: (e: ServiceError | null) => void): void; close(): void };
  t.teardown(() => client.close());
  const md = new GrpcMetadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  const err = await new Promise<ServiceError | null>((resolve) => client.Submit({ action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 5, app_name: 'ghost', config_json: '{"data_id": 99}' }, md, resolve));
  t.is(err?.code, grpcStatus.NOT_FOUND);
  t.regex(err?.message ?? '', /no application ghost in business 5/);
  t.is(await commandsCounted(registry, 'http', 'unknown_application'), 2);
  t.is(await commandsCounted(registry, 'grpc', 'unknown_application'), 1);

  // registered: taken and run
  await createApplication(store, { bkBizId: 2, appName: 'known' });
  t.is((await fetch(base, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(tailCommand('known')) })).status, 202);
  await waitForFlow(orch, keyOf(tailCommand('known')), ['success']);

  // deleted: its flow may still be stopped and deleted (the collector asks for that after removing the row)
  await deleteApplication(store, 2, 'known');
  t.is((await fetch(base, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(tailCommand('known', {}, { requested_at: Date.now() + 1 })) })).status, 404, 'no new create_or_update');
  t.is((await fetch(base, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify({ ...tailCommand('known'), action: 'delete', config: {}, requested_at: Date.now() + 2 }) })).status, 202);
  await waitForFlow(orch, keyOf(tailCommand('known')), ['deleted']);
});

test.serial('Kafka: a command of an application that is not registered is dead-lettered with the reason and counted, never run', async (t) => {
  const { kit, prefix, store, orch, registry } = await setupRegistered(t);
  const dead: { error: string; message: string }[] = [];
  const dlq = kit.bus.consumer<Buffer>({
    groupId: uniqueName('dlq-reader'),
    topics: [topicName(prefix, 'dlq')],
    codec: { decode: (b) => b },
    dlqTopic: uniqueName('unused'),
    maxWaitTimeMs: 100,
    handler: async (batch) => {
      for (const r of batch.records) dead.push({ error: String(r.headers[DLQ_HEADERS.errorClass]), message: String(r.headers[DLQ_HEADERS.errorMessage]) });
    },
  });
  t.teardown(() => dlq.stop(0));
  await dlq.start();
  await createApplication(store, { bkBizId: 3, appName: 'listed' });
  const codec = codecFor('FlowCommand');
  const ghost: FlowCommand = { command_id: uniqueName('ghost'), action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 3, app_name: 'unlisted', config: '{"data_id": 42}', operator: '', requested_at: Date.now() };
  const listed: FlowCommand = { ...ghost, command_id: uniqueName('listed'), app_name: 'listed' };
  await kit.produce(topicName(prefix, 'flowCommands'), [
    { key: '3:unlisted:virtual_metric', value: codec.encode(ghost) },
    { key: '3:listed:virtual_metric', value: codec.encode(listed) },
  ]);
  await waitForFlow(orch, { bk_biz_id: 3, app_name: 'listed', flow_type: 'virtual_metric' }, ['success']);
  await waitFor('the dead letter', () => dead.length === 1);
  t.deepEqual(dead, [{ error: 'not_found', message: 'no application unlisted in business 3: flows run for registered applications only (register it first: bkstream apps create --biz 3 --app unlisted)' }]);
  t.is(await orch.flows.get({ bk_biz_id: 3, app_name: 'unlisted', flow_type: 'virtual_metric' }), undefined, 'never run');
  t.true((await commandsCounted(registry, 'kafka', 'unknown_application')) >= 1, 'counted (a batch refused whole is retried record by record, so it may count twice)');
});

test.serial("end to end: the collector's admin API registers an application with tail sampling, its flow runs; deleting the application deletes it", async (t) => {
  const { kit, prefix, store, orch } = await setupRegistered(t);
  const env: NodeJS.ProcessEnv = {
    TOPIC_PREFIX: prefix,
    KAFKA_BROKERS: brokers().join(','),
    COLLECTOR_OTLP_GRPC_PORT: '0',
    COLLECTOR_OTLP_HTTP_PORT: '0',
    COLLECTOR_ADMIN_PORT: '0',
    BKSTREAM_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
  };
  const collector = createCollector({ env, logger: silentLogger, registry: createRegistry(), store, bus: kit.bus, common: loadConfig(commonSpec, { env }) });
  t.teardown(() => collector.stop());
  await collector.start();
  const apps = `http://127.0.0.1:${collector.ports().admin}/api/v1/apps`;
  const created = await fetch(apps, {
    method: 'POST',
    headers: jsonHeaders(),
    body: JSON.stringify({ bk_biz_id: 2, app_name: 'e2e-shop', traces_data_id: 1_500_009, trace_retention_days: 14, tail_sampling: true, tail_sampling_config: { tail_percentage: 30 } }),
  });
  t.is(created.status, 201);
  const key = { bk_biz_id: 2, app_name: 'e2e-shop', flow_type: 'tail_sampling' as const };
  const flow = await waitForFlow(orch, key, ['success']);
  t.like(flow.config, { data_id: 1_500_009, es_retention_days: 14, tail_percentage: 30 });
  t.is(flow.operator, 'BKSTREAM_ADMIN_TOKEN');

  const changed = await fetch(`${apps}/2/e2e-shop`, { method: 'PATCH', headers: jsonHeaders(), body: JSON.stringify({ tail_sampling_config: { tail_percentage: 60 } }) });
  t.is(changed.status, 200);
  await waitFor('the new percentage', async () => (await orch.flows.get(key))?.config.tail_percentage === 60 && (await orch.flows.get(key))?.status === 'success');

  t.is((await fetch(`${apps}/2/e2e-shop`, { method: 'DELETE', headers: jsonHeaders() })).status, 200);
  await waitForFlow(orch, key, ['deleted']);
});
