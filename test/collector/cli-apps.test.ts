/**
 * `bkstream apps` against a PostgreSQL database of the test's own: the token is printed once and only its
 * hash is stored; listings show the hint; usage errors exit 2, conflicts 1; the flow switches of create,
 * update and delete and the flow commands they queue; show.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { hashToken } from '../../services/collector/applications.ts';
import { freshDatabase } from '../helpers/store.ts';

const CLI = resolve(import.meta.dirname, '../../services/cli/bkstream.ts');

function bkstream(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

test('apps create prints the token once and stores its hash; list shows the hint; errors exit 1 or 2', async (t) => {
  const url = await freshDatabase(t);
  const env = { DATABASE_URL: url, LOG_LEVEL: 'silent' };
  const created = await bkstream(['apps', 'create', '--biz', '2', '--app', 'shop', '--traces-data-id', '1500001', '--qps', '50', '--burst', '80'], env);
  t.is(created.code, 0, created.stderr);
  const token = /token \(shown once[^)]*\): (bkst_\S+)/.exec(created.stdout)?.[1];
  if (!token) throw new Error(`no token in: ${created.stdout}`);
  t.regex(created.stdout, /registered application 2\/shop/);

  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 1 });
  await store.start();
  t.teardown(() => store.stop());
  const { rows } = await store.query<{ token_hash: string; rate_limit_qps: number; traces_data_id: number }>(
    'SELECT token_hash, rate_limit_qps, traces_data_id FROM apm_application WHERE app_name = $1',
    ['shop'],
  );
  t.is(rows[0]?.token_hash, hashToken(token));
  t.is(rows[0]?.rate_limit_qps, 50);
  t.is(rows[0]?.traces_data_id, 1_500_001);

  const list = await bkstream(['apps', 'list'], env);
  t.is(list.code, 0, list.stderr);
  t.regex(list.stdout, new RegExp(`2\\s+shop\\s+${token.slice(0, 12)}…\\s+1500001\\s+50/s burst 80`));
  t.false(list.stdout.includes(token), 'the token is never shown again');

  const json = await bkstream(['apps', 'list', '--json'], env);
  t.is(json.code, 0, json.stderr);
  const listed = (JSON.parse(json.stdout) as { applications: { bkBizId: number; appName: string; tokenHint: string }[] }).applications;
  t.like(listed[0], { bkBizId: 2, appName: 'shop', tokenHint: token.slice(0, 12) });
  t.false(json.stdout.includes(token), 'nor in JSON');

  const again = await bkstream(['apps', 'create', '--biz', '2', '--app', 'shop'], env);
  t.is(again.code, 1);
  t.regex(again.stderr, /already exists/);
  const usage = await bkstream(['apps', 'create', '--biz', 'two'], env);
  t.is(usage.code, 2);
  t.regex(usage.stderr, /--biz must be an integer/);
  t.is((await bkstream(['apps', 'frobnicate'], env)).code, 2);

  const rotated = await bkstream(['apps', 'rotate-token', '--biz', '2', '--app', 'shop'], env);
  t.is(rotated.code, 0, rotated.stderr);
  const next = /token \(shown once[^)]*\): (bkst_\S+)/.exec(rotated.stdout)?.[1];
  t.truthy(next);
  t.not(next, token);
});

test('apps create/update/show/delete switch the flows and say which flow commands they queued', async (t) => {
  const url = await freshDatabase(t);
  const env = { DATABASE_URL: url, LOG_LEVEL: 'silent', USER: 'tester' };
  const created = await bkstream(
    ['apps', 'create', '--biz', '3', '--app', 'flows', '--traces-data-id', '1500003', '--tail-sampling', 'on', '--tail-percentage', '15',
      '--tail-conditions', '[{"condition":"and","key":"http.status_code","method":"gte","value":["500"]}]'],
    env,
  );
  t.is(created.code, 0, created.stderr);
  t.regex(created.stdout, /flow commands \(queued in the store; a collector on this database sends them[^\n]*\n {2}create_or_update tail_sampling \(command [0-9a-f-]{36}\)/);

  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 1 });
  await store.start();
  t.teardown(() => store.stop());
  const queued = async (): Promise<{ action: string; flow_type: string; operator: string; config: Record<string, unknown> }[]> =>
    (await store.query<{ payload: { action: string; flow_type: string; operator: string; config: Record<string, unknown> } }>('SELECT payload FROM apm_application_flow_outbox ORDER BY id')).rows.map((r) => r.payload);
  const [first] = await queued();
  t.like(first, { action: 'create_or_update', flow_type: 'tail_sampling', operator: 'cli:tester' });
  t.deepEqual(first?.config, { data_id: 1_500_003, es_retention_days: 7, tail_percentage: 15, tail_conditions: [{ condition: 'and', key: 'http.status_code', method: 'gte', value: ['500'] }] });

  const shown = await bkstream(['apps', 'show', '--biz', '3', '--app', 'flows'], env);
  t.is(shown.code, 0, shown.stderr);
  t.regex(shown.stdout, /tail sampling +on \{.*"tail_percentage":15/);
  t.regex(shown.stdout, /virtual metrics +off/);
  t.regex(shown.stdout, /flows provisioned +tail_sampling/);

  const updated = await bkstream(['apps', 'update', '--biz', '3', '--app', 'flows', '--tail-sampling', 'off', '--tail-percentage', 'default'], env);
  t.is(updated.code, 0, updated.stderr);
  t.regex(updated.stdout, /stop tail_sampling/);
  const list = await bkstream(['apps', 'list'], env);
  t.regex(list.stdout, /FLOWS/);
  t.regex(list.stdout, /3\s+flows\s+\S+\s+1500003\s+default\s+7d\s+-/);

  const refused = await bkstream(['apps', 'update', '--biz', '3', '--app', 'flows', '--virtual-metric', 'on'], env);
  t.is(refused.code, 1);
  t.regex(refused.stderr, /virtual metrics need the metrics data id/);
  t.is((await bkstream(['apps', 'update', '--biz', '3', '--app', 'flows', '--tail-sampling', 'maybe'], env)).code, 2);
  t.is((await bkstream(['apps', 'update', '--biz', '3', '--app', 'flows'], env)).code, 2, 'nothing to change');

  const unconfirmed = await bkstream(['apps', 'delete', '--biz', '3', '--app', 'flows'], env);
  t.is(unconfirmed.code, 2);
  t.regex(unconfirmed.stderr, /add --yes/);
  const deleted = await bkstream(['apps', 'delete', '--biz', '3', '--app', 'flows', '--yes'], env);
  t.is(deleted.code, 0, deleted.stderr);
  t.regex(deleted.stdout, /delete tail_sampling/);
  t.deepEqual((await queued()).map((c) => `${c.action}:${c.flow_type}`), ['delete:tail_sampling'], 'unsent commands of a deleted application are dropped');
  const gone = await bkstream(['apps', 'show', '--biz', '3', '--app', 'flows'], env);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /no application flows in business 3/);
});
