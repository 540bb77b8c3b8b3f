/**
 * The application registry over the collector's admin API, and `bkstream apps` falling back to it when
 * the embedded store is held by a running process (bkstream up); show, change and delete; the flow
 * commands of application changes published on flow.commands.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createApplication, findByTokenHash, hashToken, updateApplication } from '../../services/collector/applications.ts';
import { queuedCommands } from '../../services/collector/flow-outbox.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import type { Bus } from '../../services/common/bus/index.ts';
import type { FlowCommand } from '../../services/common/records.ts';
import { topicName } from '../../services/common/topics.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { ADMIN_ENV, jsonHeaders } from '../common/auth-kit.ts';
import { startReceiver, toPlain } from './helpers.ts';

const CLI = resolve(import.meta.dirname, '../../services/cli/bkstream.ts');

async function call(url: string, method: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method, headers: jsonHeaders(), ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

test('register, list and rotate over HTTP; the token is returned once and only its hash is stored', async (t) => {
  const kit = await startReceiver(t);
  const created = await call(`${kit.adminUrl}/api/v1/apps`, 'POST', { bk_biz_id: 3, app_name: 'api-app', trace_retention_days: 14 });
  t.is(created.status, 201);
  const token = created.json.token as string;
  t.regex(token, /^bkst_/);
  const { rows } = await kit.store.query<{ token_hash: string; trace_retention_days: number }>('SELECT token_hash, trace_retention_days FROM apm_application WHERE app_name = $1', ['api-app']);
  t.is(rows[0]?.token_hash, hashToken(token));
  t.is(rows[0]?.trace_retention_days, 14);

  const listed = await call(`${kit.adminUrl}/api/v1/apps?bk_biz_id=3`, 'GET');
  t.is(listed.status, 200);
  t.false(JSON.stringify(listed.json).includes(token), 'listings never carry tokens');
  t.deepEqual((listed.json.applications as { appName: string }[]).map((a) => a.appName), ['api-app']);

  const rotated = await call(`${kit.adminUrl}/api/v1/apps/3/api-app/rotate-token`, 'POST');
  t.is(rotated.status, 200);
  t.not(rotated.json.token, token);

  t.is((await call(`${kit.adminUrl}/api/v1/apps`, 'POST', { bk_biz_id: 3, app_name: 'api-app' })).status, 409);
  t.is((await call(`${kit.adminUrl}/api/v1/apps/3/nope/rotate-token`, 'POST')).status, 404);
  const bad = await call(`${kit.adminUrl}/api/v1/apps`, 'POST', { bk_biz_id: 'x', color: 'red' });
  t.is(bad.status, 400);
  t.regex(bad.json.error as string, /unknown field color; bk_biz_id must be a number; app_name is required/);
});

test('bkstream apps uses the running collector when the embedded store is held by another process', async (t) => {
  const kit = await startReceiver(t);
  const dataDir = mkdtempSync(join(tmpdir(), 'bkdata-'));
  mkdirSync(join(dataDir, 'pglite'));
  writeFileSync(join(dataDir, 'pglite.lock'), '1\n'); // pid 1: alive and not ours
  const out = await new Promise<{ code: number; stdout: string; stderr: string }>((done, fail) => {
    const child = spawn(process.execPath, [CLI, 'apps', 'create', '--biz', '4', '--app', 'via-api'], {
      env: { ...process.env, ...ADMIN_ENV, DATA_DIR: dataDir, DATABASE_URL: '', COLLECTOR_ADMIN_URL: `${kit.adminUrl}/`, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
  t.is(out.code, 0, out.stderr);
  t.regex(out.stderr, /in use by process 1 .*; using the running collector's admin API/);
  t.regex(out.stdout, /registered application 4\/via-api/);
  const token = /(bkst_\S+)/.exec(out.stdout)?.[1] ?? '';
  const { rows } = await kit.store.query<{ token_hash: string }>('SELECT token_hash FROM apm_application WHERE app_name = $1', ['via-api']);
  t.is(rows[0]?.token_hash, hashToken(token), 'written through the collector into its store');
});

/** Creates `<prefix>.flow.commands` and reads it from the beginning, for the test's life. */
async function readFlowCommands(t: ExecutionContext, bus: Bus, prefix: string): Promise<{ key: string; command: FlowCommand }[]> {
  const topic = topicName(prefix, 'flowCommands');
  const admin = bus.admin();
  await admin.start();
  await admin.ensureTopics([{ topic, numPartitions: 3, retentionMs: 3_600_000 }]);
  await admin.stop();
  const read: { key: string; command: FlowCommand }[] = [];
  const groupId = uniqueName('flow-commands-read');
  const consumer = bus.consumer<FlowCommand>({
    groupId,
    topics: [topic],
    codec: codecFor('FlowCommand'),
    dlqTopic: `${topic}.unused-dlq`,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 500,
    maxWaitTimeMs: 100,
    handler: async (batch) => {
      for (const r of batch.records) read.push({ key: r.key?.toString() ?? '', command: toPlain(r.value) });
    },
  });
  t.teardown(async () => {
    await consumer.stop(0);
    const a = bus.admin();
    await a.start().catch(() => undefined);
    await a.deleteGroup(groupId).catch(() => undefined);
    await a.deleteTopics([topic]).catch(() => undefined);
    await a.stop().catch(() => undefined);
  });
  await consumer.start();
  return read;
}

test('show, change and delete an application; its flow commands reach flow.commands', async (t) => {
  const kit = await startReceiver(t, { env: { COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS: '300' } });
  const read = await readFlowCommands(t, kit.bus, kit.prefix);
  const apps = `${kit.adminUrl}/api/v1/apps`;
  const brief = (from: number): string[] => read.slice(from).map((r) => `${r.key} ${r.command.action}`);

  const created = await call(apps, 'POST', {
    bk_biz_id: 5,
    app_name: 'flowing',
    traces_data_id: 1_500_005,
    metrics_data_id: 1_600_005,
    tail_sampling: true,
    tail_sampling_config: { tail_percentage: 25, tail_conditions: [{ condition: 'and', key: 'http.status_code', method: 'gte', value: ['500'] }] },
    virtual_metric: true,
  });
  t.is(created.status, 201, JSON.stringify(created.json));
  t.deepEqual((created.json.flowCommands as { action: string }[]).map((c) => c.action), ['create_or_update', 'create_or_update']);
  await waitFor('the create commands on flow.commands', () => read.length >= 2);
  t.deepEqual(brief(0), ['5:flowing:tail_sampling create_or_update', '5:flowing:virtual_metric create_or_update']);
  const tail = read[0]?.command;
  t.like(tail, { bk_biz_id: 5, app_name: 'flowing', flow_type: 'tail_sampling', operator: 'BKSTREAM_ADMIN_TOKEN' }, 'the admin token\'s name is the operator');
  t.deepEqual(JSON.parse(tail?.config ?? '{}'), { data_id: 1_500_005, es_retention_days: 7, tail_percentage: 25, tail_conditions: [{ condition: 'and', key: 'http.status_code', method: 'gte', value: ['500'] }] });
  t.is(tail?.command_id, (created.json.flowCommands as { command_id: string }[])[0]?.command_id);

  const shown = await call(`${apps}/5/flowing`, 'GET');
  t.is(shown.status, 200);
  t.like(shown.json.application, { appName: 'flowing', tailSampling: true, virtualMetric: true, tailSamplingConfig: { tail_percentage: 25 }, provisionedFlows: ['tail_sampling', 'virtual_metric'] });
  t.false(JSON.stringify(shown.json).includes(created.json.token as string));

  const changed = await call(`${apps}/5/flowing`, 'PATCH', { tail_sampling: false, trace_retention_days: 30, rate_limit_qps: null });
  t.is(changed.status, 200, JSON.stringify(changed.json));
  t.like(changed.json.application, { tailSampling: false, traceRetentionDays: 30 });
  await waitFor('the stop command', () => read.length >= 3);
  t.deepEqual(brief(2), ['5:flowing:tail_sampling stop']);

  const refused = await call(`${apps}/5/flowing`, 'PATCH', { app_name: 'other', tail_sampling_config: { tail_percentage: 'all' }, colour: 1 });
  t.is(refused.status, 400);
  t.is(refused.json.error, 'unknown field colour; app_name cannot be changed (delete the application and register it again)');
  const invalid = await call(`${apps}/5/flowing`, 'PATCH', { tail_sampling_config: { tail_percentage: 101 } });
  t.is(invalid.status, 400);
  t.regex(invalid.json.error as string, /tail_sampling_config.tail_percentage must be an integer from 0 to 100/);

  // bkstream apps against the store queues the same way; the collector publishes within its poll interval
  await updateApplication(kit.store, 5, 'flowing', { tailSampling: true }, 'cli-user');
  await waitFor('the command queued by another process', () => read.length >= 4);
  t.deepEqual(brief(3), ['5:flowing:tail_sampling create_or_update']);
  t.is(read[3]?.command.operator, 'cli-user');

  const deleted = await call(`${apps}/5/flowing`, 'DELETE');
  t.is(deleted.status, 200, JSON.stringify(deleted.json));
  await waitFor('the delete commands', () => read.length >= 6);
  t.deepEqual(brief(4), ['5:flowing:tail_sampling delete', '5:flowing:virtual_metric delete']);
  t.is(await findByTokenHash(kit.store, hashToken(created.json.token as string)), undefined, 'its token is gone');
  const gone = await call(`${apps}/5/flowing`, 'GET');
  t.is(gone.status, 404);
  t.is(gone.json.error, 'no application flowing in business 5');
  t.is((await call(`${apps}/5/flowing`, 'DELETE')).status, 404);
  t.is((await call(`${apps}/5/flowing`, 'PATCH', {})).status, 404);
  await waitFor('the outbox drained', async () => (await queuedCommands(kit.store)).length === 0);
  t.is(read.length, 6, 'each command published once');
});

test('the deleted application\'s token is refused by the receiver at once; deleting needs an admin token', async (t) => {
  const kit = await startReceiver(t);
  const other = await createApplication(kit.store, { bkBizId: 6, appName: 'doomed' });
  const anonymous = await fetch(`${kit.adminUrl}/api/v1/apps/6/doomed`, { method: 'DELETE' });
  t.is(anonymous.status, 401);
  const withAppToken = await fetch(`${kit.adminUrl}/api/v1/apps/6/doomed`, { method: 'DELETE', headers: jsonHeaders(other.token) });
  t.is(withAppToken.status, 403, "an application's own token cannot delete it");
  const before = await fetch(kit.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-bk-token': other.token }, body: '{"resourceSpans":[{}]}' });
  t.not(before.status, 401, 'the token works before the deletion (and is now cached)');
  t.is((await call(`${kit.adminUrl}/api/v1/apps/6/doomed`, 'DELETE')).status, 200);
  const after = await fetch(kit.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'x-bk-token': other.token }, body: '{"resourceSpans":[{}]}' });
  t.is(after.status, 401, 'the token cache was cleared by the deletion');
});
