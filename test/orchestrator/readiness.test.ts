/**
 * Health that tells the truth (issue 16), for the orchestrator: readiness turns 503 within 5 s of losing
 * the broker or the database and 200 within 5 s of their return; during a database outage the API
 * answers 503 "the database is unavailable" (not 500 with an address) over HTTP and gRPC; and after a
 * crash its API answers at once, while the consumer group still waits for the dead member's session to
 * expire (it used to come up only after the rejoin).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { GrpcMetadata, grpcCredentials, grpcStatus, type ServiceError } from '../../services/common/grpc.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { createStore } from '../../services/common/store/index.ts';
import { topicName } from '../../services/common/topics.ts';
import { flowServiceDefinition } from '../../services/orchestrator/grpc-api.ts';
import { createOrchestrator, orchestratorService } from '../../services/orchestrator/service.ts';
import { Bus } from '../../services/common/bus/index.ts';
import { brokerKit, brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { bearer, TEST_ADMIN_TOKEN } from '../common/auth-kit.ts';
import { FLIP_LIMIT_MS, measureFlips, ownBroker, proxiedDatabase, readyStatus } from '../common/fault-kit.ts';
import { timeUntil } from '../common/http-kit.ts';
import { fastEnv, flowTopics, startSim } from './kit.ts';

const MAIN = new URL('../../services/orchestrator/main.ts', import.meta.url).pathname;

test('readiness follows the broker and the database within 5 s both ways; the APIs name the outage', async (t) => {
  t.timeout(300_000);
  const broker = await ownBroker(t);
  const db = await proxiedDatabase(t);
  const sim = await startSim(t);
  const prefix = uniqueName('orch-ready');
  await broker.ensureTopics((['flowCommands', 'flowStatus', 'dlq'] as const).map((k) => ({ topic: topicName(prefix, k), numPartitions: 1 })));
  const bus = new Bus({ brokers: broker.brokers, clientId: uniqueName('orch-fault'), logger: silentLogger, retries: 2 });
  const config = orchestratorService.config({ ...fastEnv(sim), TOPIC_PREFIX: prefix, KAFKA_BROKERS: broker.brokers.join(',') });
  const orch = createOrchestrator({ store: db.store, bus, logger: silentLogger, registry: createRegistry() }, config);
  t.teardown(() => orch.stop());
  await orch.start();
  const base = `http://127.0.0.1:${orch.httpPort()}`;
  await timeUntil('ready', async () => (await readyStatus(base)) === 200, 60_000);

  const kafka = await measureFlips(base, () => broker.stop(), () => broker.start());
  t.log(`broker: not ready after ${kafka.downMs} ms, ready again ${kafka.upMs} ms after it was back`);
  t.true(kafka.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${kafka.downMs} ms after the broker stopped`);
  t.true(kafka.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${kafka.upMs} ms after the broker was back`);

  const FlowService = flowServiceDefinition();
  const client = new FlowService(`127.0.0.1:${orch.grpcPort()}`, grpcCredentials.createInsecure()) as unknown as { List(req: unknown, md: GrpcMetadata, cb: (e: ServiceError | null, r: unknown) => void): void; close(): void };
  t.teardown(() => client.close());
  const md = new GrpcMetadata();
  md.set('authorization', `Bearer ${TEST_ADMIN_TOKEN}`);
  let during: { status: number; body: string; grpc: { code: number; details: string }; live: number } | undefined;
  const database = await measureFlips(base, () => db.proxy.stop(), async () => {
    const res = await fetch(`${base}/api/v1/flows`, { headers: bearer() });
    const grpc = await new Promise<{ code: number; details: string }>((resolve) => client.List({}, md, (e) => resolve(e ? { code: e.code, details: e.details } : { code: 0, details: '' })));
    during = { status: res.status, body: await res.text(), grpc, live: (await fetch(`${base}/livez`)).status };
    await db.proxy.start();
  });
  t.log(`database: not ready after ${database.downMs} ms, ready again ${database.upMs} ms after it was back`);
  t.true(database.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${database.downMs} ms after the database went away`);
  t.true(database.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${database.upMs} ms after the database was back`);
  if (!during) throw new Error('no observation during the outage');
  t.is(during.live, 200);
  t.is(during.status, 503, 'not 500');
  t.is((JSON.parse(during.body) as { error: string }).error, 'the database is unavailable');
  t.notRegex(during.body, /127\.0\.0\.1|ECONN|\.ts:\d+/);
  t.is(during.grpc.code, grpcStatus.UNAVAILABLE);
  t.is(during.grpc.details, 'the database is unavailable');
  t.is((await fetch(`${base}/api/v1/flows`, { headers: bearer() })).status, 200, 'the API answers again');
});

test('after a crash the APIs answer within seconds, before the consumer group has re-joined', async (t) => {
  t.timeout(240_000);
  const kit = await brokerKit(t);
  const prefix = await flowTopics(t, kit);
  const sim = await startSim(t);
  const url = await freshDatabase(t);
  const setupStore = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 1 });
  await setupStore.start();
  await setupStore.migrate();
  await setupStore.stop();
  // A session long enough that a rejoin after a crash visibly waits for it.
  const env = { ...process.env, ...fastEnv(sim), ORCH_INSTANCE_ID: uniqueName('crash'), ORCH_CONSUMER_SESSION_TIMEOUT_MS: '25000', TOPIC_PREFIX: prefix, KAFKA_BROKERS: brokers().join(','), DATABASE_URL: url, ORCH_HTTP_PORT: '0', LOG_LEVEL: 'info' };
  const run = () => {
    const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const logs: Record<string, unknown>[] = [];
    let pending = '';
    child.stdout.on('data', (b: Buffer) => {
      const lines = (pending + b.toString()).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
    });
    t.teardown(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    return { child, logs };
  };
  const first = run();
  await waitFor('the first instance to join its group', () => first.logs.some((l) => l.message === 'partitions assigned'), 90_000);
  const exited = once(first.child, 'exit');
  first.child.kill('SIGKILL');
  await exited;

  const startedAt = Date.now();
  const second = run();
  const listening = await waitFor('the second instance to listen', () => second.logs.find((l) => l.message === 'orchestrator started'), 90_000);
  const base = `http://127.0.0.1:${listening.http_port as number}`;
  await timeUntil('the API to be ready', async () => (await readyStatus(base)) === 200, 30_000);
  const apiMs = Date.now() - startedAt;
  t.is((await fetch(`${base}/api/v1/flows`, { headers: bearer() })).status, 200);
  const joined = second.logs.some((l) => l.message === 'partitions assigned');
  t.log(`API ready ${apiMs} ms after the restart; group joined by then: ${joined}`);
  t.true(apiMs < 20_000, `the API answered ${apiMs} ms after the restart`);
  await waitFor('the group to re-join (after the dead member\'s session)', () => second.logs.some((l) => l.message === 'partitions assigned'), 120_000);
  const joinMs = Date.now() - startedAt;
  t.log(`group re-joined ${joinMs} ms after the restart`);
  t.true(joinMs > apiMs, 'the API did not wait for the group');
  second.child.kill('SIGTERM');
  await once(second.child, 'exit');
});
