/**
 * `bkstream admin` and how the CLI takes its admin token (SECURITY.md): tokens printed once and stored
 * as hashes, listed by hint, the last one not revoked by accident; the token read from
 * BKSTREAM_ADMIN_TOKEN or a file of mode 0600 (a looser one is refused); a fresh secret key.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { adminTokenOf } from '../../services/cli/credentials.ts';
import { hashToken } from '../../services/common/auth.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { parseKey } from '../../services/common/secrets.ts';
import { createStore } from '../../services/common/store/index.ts';
import { freshDatabase } from '../helpers/store.ts';

const CLI = resolve(import.meta.dirname, '../../services/cli/bkstream.ts');

function bkstream(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, BKSTREAM_ADMIN_TOKEN: '', BKSTREAM_ADMIN_TOKEN_FILE: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.once('error', fail);
    child.once('exit', (code) => done({ code: code ?? -1, stdout, stderr }));
  });
}

test('admin token: printed once, stored as its hash, listed by hint, revoked (never the last one by accident)', async (t) => {
  const url = await freshDatabase(t);
  const env = { DATABASE_URL: url, LOG_LEVEL: 'silent' };
  const made = await bkstream(['admin', 'token', '--name', 'ops'], env);
  t.is(made.code, 0, made.stderr);
  const token = /admin token \(shown once[^)]*\): (bkadm_\S+)/.exec(made.stdout)?.[1];
  if (!token) throw new Error(`no token in: ${made.stdout}`);
  const store = createStore({ databaseUrl: url, logger: silentLogger, poolSize: 1 });
  await store.start();
  t.teardown(() => store.stop());
  const { rows } = await store.query<{ id: number; token_hash: string }>("SELECT id, token_hash FROM bkstream_admin_token WHERE name = 'ops'");
  t.is(rows[0]?.token_hash, hashToken(token));

  const listed = await bkstream(['admin', 'tokens'], env);
  t.is(listed.code, 0, listed.stderr);
  t.regex(listed.stdout, new RegExp(`\\d+\\s+ops\\s+${token.slice(0, 12)}…`));
  t.false(listed.stdout.includes(token), 'never shown again');

  const last = await bkstream(['admin', 'revoke', '--id', String(rows[0]?.id)], env);
  t.is(last.code, 1);
  t.regex(last.stderr, /last active admin token/);
  t.is((await bkstream(['admin', 'revoke', '--id', String(rows[0]?.id), '--force'], env)).code, 0);
  t.regex((await bkstream(['admin', 'tokens'], env)).stdout, /ops\s+\S+…\s+.*revoked/);
  t.is((await bkstream(['admin', 'revoke'], env)).code, 2, 'usage');
});

test('the CLI reads the admin token from the environment, or from a file only when no one else may read it', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'admin-token');
  writeFileSync(file, 'bkadm_from-a-file-0123456789abcdefghijklmnopqrstuv\n');
  chmodSync(file, 0o644);
  const loose = t.throws(() => adminTokenOf({ BKSTREAM_ADMIN_TOKEN_FILE: file }), { instanceOf: ConfigError });
  t.regex(loose?.message ?? '', /accessible to other users \(mode 0644\): chmod 600/);
  t.false(loose?.message.includes('from-a-file'), 'the token is not shown');
  chmodSync(file, 0o600);
  t.is(adminTokenOf({ BKSTREAM_ADMIN_TOKEN_FILE: file }), 'bkadm_from-a-file-0123456789abcdefghijklmnopqrstuv');
  chmodSync(file, 0o400);
  t.is(adminTokenOf({ BKSTREAM_ADMIN_TOKEN_FILE: file }), 'bkadm_from-a-file-0123456789abcdefghijklmnopqrstuv', '0400 is stricter: fine');
  t.is(adminTokenOf({ BKSTREAM_ADMIN_TOKEN: 'bkadm_direct' }), 'bkadm_direct');
  t.is(adminTokenOf({}), undefined);
  t.throws(() => adminTokenOf({ BKSTREAM_ADMIN_TOKEN: 'x', BKSTREAM_ADMIN_TOKEN_FILE: file }), { message: /not both/ });
});

test('a looser token file stops a command before it sends anything (exit 2)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bkstream-token-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'admin-token');
  writeFileSync(file, 'bkadm_from-a-file-0123456789abcdefghijklmnopqrstuv\n', { mode: 0o664 });
  chmodSync(file, 0o664);
  const out = await bkstream(['flows', 'list'], { BKSTREAM_ADMIN_TOKEN_FILE: file, ORCHESTRATOR_URL: 'http://127.0.0.1:1' });
  t.is(out.code, 2);
  t.regex(out.stderr, /BKSTREAM_ADMIN_TOKEN_FILE: .*mode 0664/);
});

test('admin secret-key prints a key BKSTREAM_SECRET_KEY accepts', async (t) => {
  const out = await bkstream(['admin', 'secret-key'], {});
  t.is(out.code, 0, out.stderr);
  t.is(parseKey(out.stdout.trim()).length, 32);
});
