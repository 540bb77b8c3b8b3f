/**
 * Health that tells the truth (issue 16), for the collector: readiness turns 503 within 5 s of losing
 * the broker or the database and 200 within 5 s of their return, liveness stays 200 throughout; outages
 * reach clients as 503 / UNAVAILABLE naming the part, never an address; and the process comes up
 * without Kafka, answering UNAVAILABLE until it arrives.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createApplication } from '../../services/collector/applications.ts';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { encodeRequest } from '../../services/common/otlp/index.ts';
import { waitFor } from '../helpers/kafka.ts';
import { ADMIN_ENV, bearer } from '../common/auth-kit.ts';
import { FLIP_LIMIT_MS, measureFlips, ownBroker, proxiedDatabase, readyStatus } from '../common/fault-kit.ts';
import { grpcExport, httpPost, startReceiver } from './helpers.ts';

const MAIN = resolve(import.meta.dirname, '../../services/collector/main.ts');
const probe = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 5), spanId: Buffer.alloc(8, 6), name: 'p', startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }] });

/** No internal address, driver message or stack in what a client sees. */
function leaks(text: string): boolean {
  return /127\.0\.0\.1|ECONNREFUSED|ECONNRESET|\bat \w+ \(|\.ts:\d+/.test(text);
}

test('readiness follows the broker and the database within 5 s both ways; outages are 503 naming the part', async (t) => {
  t.timeout(300_000);
  const broker = await ownBroker(t);
  const db = await proxiedDatabase(t);
  const kit = await startReceiver(t, { store: db.store, brokers: broker.brokers, createTopics: false, waitReady: false, partitions: 2 });
  await broker.ensureTopics([{ topic: kit.topic, numPartitions: 2 }]);
  await waitFor('the receiver to reach Kafka', () => kit.collector.ready(), 60_000);

  // The broker goes away and comes back.
  const kafka = await measureFlips(kit.adminUrl, () => broker.stop(), () => broker.start());
  t.log(`broker: not ready after ${kafka.downMs} ms, ready again ${kafka.upMs} ms after it was back`);
  t.true(kafka.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${kafka.downMs} ms after the broker stopped`);
  t.true(kafka.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${kafka.upMs} ms after the broker was back`);

  // The database goes away: readiness, and what clients see meanwhile.
  let during: { apps: { status: number; body: string }; export: { code: number; details: string }; live: number } | undefined;
  const database = await measureFlips(kit.adminUrl, () => db.proxy.stop(), async () => {
    // Observed once readiness said 503, before the database comes back.
    const res = await fetch(`${kit.adminUrl}/api/v1/apps`, { headers: bearer() });
    const fresh = await grpcExport(kit, probe, 'bkst_a-token-nobody-has-resolved-yet');
    during = { apps: { status: res.status, body: await res.text() }, export: fresh, live: (await fetch(`${kit.adminUrl}/livez`)).status };
    await db.proxy.start();
  });
  t.log(`database: not ready after ${database.downMs} ms, ready again ${database.upMs} ms after it was back`);
  t.true(database.downMs <= FLIP_LIMIT_MS, `readiness turned 503 ${database.downMs} ms after the database went away`);
  t.true(database.upMs <= FLIP_LIMIT_MS, `readiness turned 200 ${database.upMs} ms after the database was back`);
  if (!during) throw new Error('no observation during the outage');
  t.is(during.live, 200, 'liveness is not readiness: no restart for a database outage');
  t.is(during.apps.status, 503);
  t.is((JSON.parse(during.apps.body) as { error: string }).error, 'the database is unavailable');
  t.false(leaks(during.apps.body), during.apps.body);
  t.is(during.export.code, status.UNAVAILABLE, 'an uncached token cannot be checked: retry later');
  t.is(during.export.details, 'the database is unavailable');

  // Everything works again.
  t.is((await httpPost(kit.httpUrl, probe, { 'content-type': 'application/x-protobuf', 'x-bk-token': kit.token })).status, 200);
  const app = await createApplication(db.store, { bkBizId: 3, appName: 'after-outage' });
  t.is((await grpcExport(kit, probe, app.token)).code, status.OK);
});

test('the collector process comes up without Kafka: listeners answer, readiness is 503, exports get UNAVAILABLE', async (t) => {
  t.timeout(120_000);
  const dataDir = mkdtempSync(join(tmpdir(), 'bkcollector-nokafka-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      ...ADMIN_ENV,
      KAFKA_BROKERS: '127.0.0.1:1', // nothing listens there
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      LOG_LEVEL: 'info',
      COLLECTOR_OTLP_GRPC_PORT: '0',
      COLLECTOR_OTLP_HTTP_PORT: '0',
      COLLECTOR_ADMIN_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  child.stdout.on('data', (b: Buffer) => {
    const lines = (pending + b.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  const started = await waitFor('the collector to start without Kafka', () => {
    if (child.exitCode !== null) throw new Error(`the collector exited with ${child.exitCode}`);
    return logs.find((l) => l.message === 'started');
  }, 90_000);
  const admin = `http://127.0.0.1:${started.admin as number}`;
  t.is((await fetch(`${admin}/livez`)).status, 200);
  t.is(await readyStatus(admin), 503);
  const ready = (await (await fetch(`${admin}/readyz`)).json()) as { dependencies: Record<string, string> };
  t.is(ready.dependencies.kafka, 'unavailable');
  t.is(ready.dependencies.database, 'ok');
  const exported = await grpcExport({ grpcUrl: `http://127.0.0.1:${started.grpc as number}` }, probe, 'bkst_any');
  t.is(exported.code, status.UNAVAILABLE);
  t.is(exported.details, 'the Kafka broker is unavailable');
  const registered = await fetch(`${admin}/api/v1/apps`, { method: 'POST', headers: bearer(undefined, { 'content-type': 'application/json' }), body: JSON.stringify({ bk_biz_id: 2, app_name: 'no-kafka' }) });
  t.is(registered.status, 201, 'the admin API works without Kafka');
  t.is(child.exitCode, null, 'still running');
  child.kill('SIGTERM');
  await waitFor('the collector to exit', () => child.exitCode !== null, 30_000);
  t.is(child.exitCode, 0);
});
