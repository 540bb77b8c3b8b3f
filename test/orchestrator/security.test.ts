/**
 * The orchestrator attacked as issue 16 found it: flow commands, retries and listings over HTTP and gRPC
 * from anyone; passwords of flow configs stored in plain text and returned by `GET /api/v1/flows…` and
 * gRPC `List`. Each attack beside the legitimate call; and the secrets: sealed at rest (AES-GCM, existing
 * rows migrated, keys rotated), sent to BKData in the clear, never returned, printed or logged.
 */
import test from 'ava';
import { PassThrough } from 'node:stream';
import { createApplication } from '../../services/collector/applications.ts';
import { runFlows } from '../../services/cli/commands/flows.ts';
import { GrpcMetadata, grpcCredentials, grpcStatus, type ServiceError } from '../../services/common/grpc.ts';
import { createLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { SecretBox } from '../../services/common/secrets.ts';
import { flowServiceDefinition } from '../../services/orchestrator/grpc-api.ts';
import { createOrchestrator, orchestratorService } from '../../services/orchestrator/service.ts';
import { ADMIN_ENV, bearer, jsonHeaders, TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';
import { rawRequest } from '../common/http-kit.ts';
import { fastEnv, keyOf, metricCommand, setup, startOrchestrator, tailCommand, TEST_SECRET_KEY, waitForFlow } from './kit.ts';

const ES_PASSWORD = 'es-Pa55word-that-must-not-leak';
const KAFKA_PASSWORD = 'kafka-Pa55word-that-must-not-leak';

test.serial('HTTP: commands, retries, listings and breakers need an admin token; JSON only; no DNS rebinding', async (t) => {
  const { orch, store } = await setup(t);
  const app = await createApplication(store, { bkBizId: 2, appName: 'sec-app' });
  const base = `http://127.0.0.1:${orch.httpPort()}`;
  const cmd = tailCommand('sec-app');
  const submit = (headers: Record<string, string>, body: string = JSON.stringify(cmd)) => fetch(`${base}/api/v1/flows`, { method: 'POST', headers, body });

  // Attacks
  t.is((await submit({ 'content-type': 'application/json' })).status, 401, 'create without credentials');
  t.is((await submit(jsonHeaders(app.token))).status, 403, "an application's token is no admin token");
  t.is((await submit(jsonHeaders('bkadm_not-a-real-admin-token-0000000000000000'))).status, 401);
  t.is((await submit(bearer(undefined, { 'content-type': 'text/plain' }))).status, 415, 'a cross-site text/plain POST');
  t.is((await fetch(`${base}/api/v1/flows`)).status, 401, 'listing without credentials');
  t.is((await fetch(`${base}/api/v1/flows/2/sec-app/tail_sampling`)).status, 401);
  t.is((await fetch(`${base}/api/v1/flows/2/sec-app/tail_sampling`, { headers: bearer(app.token) })).status, 403);
  t.is((await fetch(`${base}/api/v1/flows/2/sec-app/tail_sampling/retry`, { method: 'POST' })).status, 401, 'retry without credentials');
  t.is((await fetch(`${base}/api/v1/breakers`)).status, 401);
  const port = orch.httpPort();
  t.is((await rawRequest(port, { path: '/api/v1/flows', headers: { ...bearer(), host: `orchestrator.attacker.example:${port}` } })).status, 403, 'DNS rebinding');
  t.is(await orch.flows.get(keyOf(cmd)), undefined, 'no refused call created a flow');

  // Legitimate
  t.is((await submit(jsonHeaders())).status, 202);
  await waitForFlow(orch, keyOf(cmd), ['success']);
  t.is((await fetch(`${base}/api/v1/flows`, { headers: bearer() })).status, 200);
  t.is((await fetch(`${base}/api/v1/breakers`, { headers: bearer() })).status, 200);
  for (const path of ['/metrics', '/livez', '/readyz', '/healthz']) t.is((await fetch(`${base}${path}`)).status, 200, `${path} is public`);
});

test.serial('gRPC: every call needs an admin token in its metadata (UNAUTHENTICATED / PERMISSION_DENIED otherwise)', async (t) => {
  const { orch, store } = await setup(t);
  const app = await createApplication(store, { bkBizId: 2, appName: 'grpc-sec' });
  const FlowService = flowServiceDefinition();
  const client = new FlowService(`127.0.0.1:${orch.grpcPort()}`, grpcCredentials.createInsecure()) as unknown as Record<string, (req: unknown, md: GrpcMetadata, cb: (err: ServiceError | null, res: Record<string, unknown>) => void) => void>;
  t.teardown(() => (client as unknown as { close(): void }).close());
  const call = (method: string, req: unknown, token?: string): Promise<{ code: number; res?: Record<string, unknown> }> => {
    const md = new GrpcMetadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    return new Promise((resolve) => (client[method] as (r: unknown, m: GrpcMetadata, cb: (e: ServiceError | null, r: Record<string, unknown>) => void) => void).call(client, req, md, (err, res) => resolve(err ? { code: err.code } : { code: grpcStatus.OK, res })));
  };
  const submit = { action: 'create_or_update', flow_type: 'virtual_metric', bk_biz_id: 5, app_name: 'grpc-sec', config_json: '{"data_id": 99}' };
  t.is((await call('Submit', submit)).code, grpcStatus.UNAUTHENTICATED);
  t.is((await call('Submit', submit, app.token)).code, grpcStatus.PERMISSION_DENIED);
  t.is((await call('List', {})).code, grpcStatus.UNAUTHENTICATED);
  t.is((await call('Retry', { bk_biz_id: 5, app_name: 'grpc-sec', flow_type: 'virtual_metric' })).code, grpcStatus.UNAUTHENTICATED);
  t.is(await orch.flows.get({ bk_biz_id: 5, app_name: 'grpc-sec', flow_type: 'virtual_metric' }), undefined);
  t.is((await call('Submit', submit, TEST_ADMIN_TOKEN)).code, grpcStatus.OK);
  t.is((await call('List', {}, TEST_ADMIN_TOKEN)).code, grpcStatus.OK);
});

test.serial('flow-config passwords: sealed at rest, sent to BKData, never returned by HTTP, gRPC or the CLI, nor logged', async (t) => {
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter((l) => l !== '')));
  const { kit, prefix, store, sim } = await setup(t);
  const registry = createRegistry();
  const config = orchestratorService.config({ ...fastEnv(sim), TOPIC_PREFIX: prefix, BKDATA_APP_SECRET: 'bkdata-app-secret-value', LOG_LEVEL: 'debug' });
  const orch = createOrchestrator({ store, bus: kit.bus, logger: createLogger({ level: 'debug', stream }), registry }, config);
  t.teardown(() => orch.stop());
  await orch.start();
  // This orchestrator reads the store's application registry (no test double): the applications are registered.
  for (const appName of ['secret-tail', 'secret-metric']) await createApplication(store, { bkBizId: 2, appName });
  const tail = tailCommand('secret-tail', { es_cluster: { cluster_id: 7, cluster_name: 'es7', host: 'es.internal', port: 9200, username: 'elastic', password: ES_PASSWORD } });
  const metric = metricCommand('secret-metric', { kafka: { host: 'kafka.internal', port: 9092, username: 'u', password: KAFKA_PASSWORD, use_sasl: true } });
  const base = `http://127.0.0.1:${orch.httpPort()}`;
  for (const cmd of [tail, metric]) t.is((await fetch(`${base}/api/v1/flows`, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(cmd) })).status, 202);
  await waitForFlow(orch, keyOf(tail), ['success']);
  await waitForFlow(orch, keyOf(metric), ['success']);

  // At rest: sealed, in the config and in the stored deploy request alike.
  const { rows } = await store.query<{ config: unknown; deploy_config: unknown; state: unknown; process_info: unknown }>('SELECT config, deploy_config, state, process_info FROM bkdata_flow');
  const stored = JSON.stringify(rows);
  t.false(stored.includes(ES_PASSWORD) || stored.includes(KAFKA_PASSWORD), 'no password in plain text in bkdata_flow');
  t.regex(stored, /"password": ?"enc:v1:[0-9a-f]{8}:/);
  // BKData got the real ones (the flows work).
  t.true(JSON.stringify([...sim.state.resourceSets.values()]).includes(ES_PASSWORD), 'the ES resource set was registered with the password');
  t.true(JSON.stringify([...sim.state.rawData.values()]).includes(KAFKA_PASSWORD), 'the Kafka raw data was deployed with the password');

  // Never returned.
  const got = await (await fetch(`${base}/api/v1/flows/2/secret-tail/tail_sampling`, { headers: bearer() })).text();
  const listed = await (await fetch(`${base}/api/v1/flows`, { headers: bearer() })).text();
  for (const text of [got, listed]) {
    t.false(text.includes(ES_PASSWORD) || text.includes(KAFKA_PASSWORD));
    t.false(text.includes('enc:v1:'), 'not even sealed');
  }
  t.is((JSON.parse(got) as { flow: { config: { es_cluster: { password: string; username: string } } } }).flow.config.es_cluster.password, '******');
  const FlowService = flowServiceDefinition();
  const client = new FlowService(`127.0.0.1:${orch.grpcPort()}`, grpcCredentials.createInsecure()) as unknown as { List(req: unknown, md: GrpcMetadata, cb: (e: ServiceError | null, r: { flows: { config_json: string }[] }) => void): void; close(): void };
  t.teardown(() => client.close());
  const md = new GrpcMetadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  const grpcList = await new Promise<{ flows: { config_json: string }[] }>((resolve, reject) => client.List({}, md, (e, r) => (e ? reject(e) : resolve(r))));
  const grpcText = JSON.stringify(grpcList);
  t.false(grpcText.includes(ES_PASSWORD) || grpcText.includes(KAFKA_PASSWORD) || grpcText.includes('enc:v1:'), 'gRPC List');
  t.regex(grpcText, /\\"password\\":\\"\*\*\*\*\*\*\\"/);
  const out: string[] = [];
  t.is(await runFlows(['get', '2', 'secret-metric', 'virtual_metric'], { ORCHESTRATOR_URL: base, ...ADMIN_ENV }, (l) => out.push(l)), 0);
  t.false(out.join('\n').includes(KAFKA_PASSWORD), 'the CLI prints no password');
  t.regex(out.join('\n'), /"password": "\*\*\*\*\*\*"/);

  // Never logged, nor the BKData app secret.
  await orch.stop();
  const logs = lines.join('\n');
  t.true(lines.length > 0);
  for (const secret of [ES_PASSWORD, KAFKA_PASSWORD, 'bkdata-app-secret-value']) t.false(logs.includes(secret), `no log line holds ${secret.slice(0, 12)}…`);
});

test.serial('existing plain-text passwords are sealed at start (the data migration), and a key rotation reseals them', async (t) => {
  const { kit, prefix, store, sim, orch } = await setup(t);
  const tail = tailCommand('legacy', { es_cluster: { cluster_id: 8, cluster_name: 'es8', host: 'es8.internal', port: 9200, username: 'elastic', password: ES_PASSWORD } });
  await orch.operations.submit(tail, 'http');
  await waitForFlow(orch, keyOf(tail), ['success']);
  await orch.stop();
  // As a flow stored before issue 16 was: the password in plain text.
  await store.query(`UPDATE bkdata_flow SET config = jsonb_set(config, '{es_cluster,password}', to_jsonb($1::text)) WHERE app_name = 'legacy'`, [ES_PASSWORD]);
  const plain = await store.query<{ config: { es_cluster: { password: string } } }>("SELECT config FROM bkdata_flow WHERE app_name = 'legacy'");
  t.is(plain.rows[0]?.config.es_cluster.password, ES_PASSWORD);

  // Start again: sealed with the current key.
  const first = await startOrchestrator(t, { store, bus: kit.bus, sim, prefix });
  const sealed = (await store.query<{ config: { es_cluster: { password: string } } }>("SELECT config FROM bkdata_flow WHERE app_name = 'legacy'")).rows[0]?.config.es_cluster.password ?? '';
  const oldKey = new SecretBox(Buffer.from(TEST_SECRET_KEY, 'base64'));
  t.true(sealed.startsWith(`enc:v1:${oldKey.keyId}:`), sealed.slice(0, 20));
  t.is(oldKey.open(sealed, 'config.es_cluster.password'), ES_PASSWORD);
  await first.orch.stop();

  // Rotation: a new key, the old one listed as previous: resealed at start, and the flow still runs.
  const newKey = Buffer.alloc(32, 9).toString('base64');
  const second = await startOrchestrator(t, { store, bus: kit.bus, sim, prefix, env: { BKSTREAM_SECRET_KEY: newKey, BKSTREAM_SECRET_KEY_PREVIOUS: TEST_SECRET_KEY } });
  const resealed = (await store.query<{ config: { es_cluster: { password: string } } }>("SELECT config FROM bkdata_flow WHERE app_name = 'legacy'")).rows[0]?.config.es_cluster.password ?? '';
  const box = new SecretBox(Buffer.from(newKey, 'base64'));
  t.true(resealed.startsWith(`enc:v1:${box.keyId}:`), 'resealed with the new key');
  t.is(box.open(resealed, 'config.es_cluster.password'), ES_PASSWORD);
  await second.orch.operations.submit({ ...tail, config: { ...(tail.config as Record<string, unknown>), tail_percentage: 20 } }, 'http');
  t.is((await waitForFlow(second.orch, keyOf(tail), ['success'])).status, 'success');
});
