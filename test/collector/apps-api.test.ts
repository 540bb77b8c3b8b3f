/**
 * The application registry over the collector's admin API, and `bkstream apps` falling back to it when
 * the embedded store is held by a running process (bkstream up).
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { hashToken } from '../../services/collector/applications.ts';
import { ADMIN_ENV, jsonHeaders } from '../common/auth-kit.ts';
import { startReceiver } from './helpers.ts';

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
