/**
 * The collector as its own process (`node services/collector/main.ts`): started on port 0 with its own
 * embedded store, fed by gRPC and HTTP clients, then stopped by SIGTERM with a drain deadline of 0 ms, so the
 * deadline cuts requests and sends in flight. Every part must still stop within its share of the deadline:
 * the process exits 0 (a failed stop exits 1).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Bus } from '../../services/common/bus/index.ts';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { silentLogger } from '../../services/common/log.ts';
import { brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { ADMIN_ENV, jsonHeaders } from '../common/auth-kit.ts';
import { grpcExport, httpPost } from './helpers.ts';
import { sampleRequest } from './otlp-fixtures.ts';

const MAIN = resolve(import.meta.dirname, '../../services/collector/main.ts');

test('SIGTERM with COLLECTOR_SHUTDOWN_TIMEOUT_MS=0 under load: every part stops within the deadline, the process exits 0', async (t) => {
  const prefix = uniqueName('main');
  const topic = `${prefix}.spans`;
  const admin = new Bus({ brokers: brokers(), clientId: uniqueName('main-admin'), logger: silentLogger }).admin();
  await admin.start();
  await admin.ensureTopics([{ topic, numPartitions: 3, retentionMs: 3_600_000 }]);
  t.teardown(async () => {
    await admin.deleteTopics([topic]).catch(() => undefined);
    await admin.stop();
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'bkcollector-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));

  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      KAFKA_BROKERS: brokers().join(','),
      TOPIC_PREFIX: prefix,
      DATA_DIR: dataDir,
      DATABASE_URL: '',
      LOG_LEVEL: 'info',
      COLLECTOR_OTLP_GRPC_PORT: '0',
      COLLECTOR_OTLP_HTTP_PORT: '0',
      COLLECTOR_ADMIN_PORT: '0',
      COLLECTOR_SHUTDOWN_TIMEOUT_MS: '0',
      ...ADMIN_ENV,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const logs: Record<string, unknown>[] = [];
  let stderr = '';
  let pending = '';
  child.stdout.on('data', (b: Buffer) => {
    const lines = (pending + b.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) if (line.startsWith('{')) logs.push(JSON.parse(line) as Record<string, unknown>);
  });
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));

  const started = await waitFor('the collector to start', () => logs.find((l) => l.message === 'started'), 90_000);
  await waitFor('the collector to reach Kafka', () => logs.some((l) => l.message === 'connected to Kafka'), 60_000);
  const kit = { grpcUrl: `http://127.0.0.1:${started.grpc as number}` };
  const httpUrl = `http://127.0.0.1:${started.http as number}/v1/traces`;
  const registered = await fetch(`http://127.0.0.1:${started.admin as number}/api/v1/apps`, {
    method: 'POST',
    headers: jsonHeaders(),
    body: JSON.stringify({ bk_biz_id: 2, app_name: 'main-test' }),
  });
  t.is(registered.status, 201);
  const { token } = (await registered.json()) as { token: string };

  let ok = 0;
  let seed = 0;
  let sending = true;
  const grpcClient = async (): Promise<void> => {
    while (sending) if ((await grpcExport(kit, sampleRequest(++seed, 20), token)).code === status.OK) ok++;
  };
  const httpClient = async (): Promise<void> => {
    while (sending) {
      const res = await httpPost(httpUrl, sampleRequest(++seed, 20), { 'content-type': 'application/x-protobuf', 'x-bk-token': token }).catch(() => undefined);
      if (res?.status === 200) ok++;
    }
  };
  const clients = [...Array.from({ length: 3 }, () => grpcClient()), ...Array.from({ length: 3 }, () => httpClient())];
  await waitFor('exports accepted', () => ok >= 20, 60_000);
  child.kill('SIGTERM');
  const code = await exited;
  sending = false;
  await Promise.all(clients);
  t.is(code, 0, `exit code 0 (a failed stop exits 1): ${stderr}${logs.filter((l) => l.level === 'error').map((l) => JSON.stringify(l)).join('\n')}`);
  t.true(logs.some((l) => l.message === 'stopped'), 'the collector logged its stop');
});
