/**
 * `bkstream admin`: admin tokens and the secret key (SECURITY.md).
 *
 *   bkstream admin token [--name <name>]        create an admin token; printed once, stored as its hash
 *   bkstream admin tokens                       list admin tokens (hints, last use, revocation)
 *   bkstream admin revoke --id <n> [--force]    revoke one (not the last active one unless --force)
 *   bkstream admin secret-key                   print a fresh key for BKSTREAM_SECRET_KEY
 *
 * Like `bkstream apps`, they open the store directly (DATABASE_URL or the embedded one), or go through
 * a running collector's admin API — which needs an admin token already (BKSTREAM_ADMIN_TOKEN /
 * BKSTREAM_ADMIN_TOKEN_FILE) — while `bkstream up` holds the embedded store.
 */
import { createAdminToken, listAdminTokens, revokeAdminToken, type AdminTokenInfo } from '../../common/auth.ts';
import { generateKey } from '../../common/secrets.ts';
import { printJson } from '../api.ts';
import { defineCommand, defineGroup, type Command } from '../command.ts';
import { adminApiCall } from '../credentials.ts';
import { withStoreOrAdminApi } from '../local-store.ts';

const NOTES = 'They open the store (DATABASE_URL, or the embedded one under DATA_DIR), or — while a running `bkstream up` holds\nthe embedded store — go through its collector admin API (COLLECTOR_ADMIN_URL) with the admin token of the environment.';

/** The lines that hand a new admin token over, once. */
export function adminTokenHelp(token: string): string {
  return [
    `admin token (shown once, it cannot be displayed again; keep it now): ${token}`,
    'the CLI reads it from BKSTREAM_ADMIN_TOKEN, or from a file of mode 0600 named by BKSTREAM_ADMIN_TOKEN_FILE;',
    'API clients (and the console) send it as "Authorization: Bearer <token>".',
  ].join('\n');
}

type Listed = Omit<AdminTokenInfo, 'createdAt' | 'lastUsedAt' | 'revokedAt'> & { createdAt: string | Date; lastUsedAt: string | Date | null; revokedAt: string | Date | null };

const when = (d: string | Date | null): string => (d === null ? '-' : new Date(d).toISOString().replace('T', ' ').slice(0, 19));

function table(tokens: readonly Listed[]): string {
  const rows = tokens.map((x) => [String(x.id), x.name, `${x.hint}…`, when(x.createdAt), when(x.lastUsedAt), x.revokedAt === null ? 'active' : `revoked ${when(x.revokedAt)}`]);
  const head = ['ID', 'NAME', 'TOKEN', 'CREATED', 'LAST USED', 'STATE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  return [head, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

const token = defineCommand({
  name: 'admin token',
  summary: 'create an admin token; printed once, stored as its hash',
  options: { name: { type: 'string', default: 'admin', help: 'a name to recognise it by' } },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const created = await withStoreOrAdminApi(env,
    (store) => createAdminToken(store, values.name),
    (url) => adminApiCall<AdminTokenInfo & { token: string }>(url, env, 'POST', '/api/v1/admin/tokens', { name: values.name }, "the collector's admin API"));
  print(`created admin token ${created.id} (${created.name})`);
  print(adminTokenHelp(created.token));
  return 0;
});

const tokens = defineCommand({
  name: 'admin tokens',
  summary: 'list admin tokens (hints, creation, last use, revocation)',
  options: { json: { type: 'boolean', help: 'print the tokens (never their values) as JSON on stdout' } },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const list = await withStoreOrAdminApi<Listed[]>(env,
    (store) => listAdminTokens(store),
    async (url) => (await adminApiCall<{ tokens: Listed[] }>(url, env, 'GET', '/api/v1/admin/tokens', undefined, "the collector's admin API")).tokens);
  if (values.json) printJson(print, { tokens: list });
  else print(list.length === 0 ? 'no admin tokens (bkstream admin token --name <name>)' : table(list));
  return 0;
});

const revoke = defineCommand({
  name: 'admin revoke',
  summary: 'revoke an admin token (not the last active one unless --force)',
  options: {
    id: { type: 'integer', value: 'n', required: true, help: 'the token\'s id (bkstream admin tokens lists them)' },
    force: { type: 'boolean', help: 'revoke it even when it is the last active one' },
  },
  notes: NOTES,
}, async ({ values }, env, print) => {
  const id = values.id;
  const revoked = await withStoreOrAdminApi(env,
    (store) => revokeAdminToken(store, id, values.force),
    (url) => adminApiCall<Listed>(url, env, 'DELETE', `/api/v1/admin/tokens/${id}${values.force ? '?force=true' : ''}`, undefined, "the collector's admin API"));
  print(`revoked admin token ${revoked.id} (${revoked.name}); other processes stop accepting it within 10 s`);
  return 0;
});

const secretKey = defineCommand({
  name: 'admin secret-key',
  summary: 'print a fresh key for BKSTREAM_SECRET_KEY',
  options: {},
}, async (_input, _env, print) => {
  print(generateKey());
  return 0;
});

export const command: Command = defineGroup('admin', 'admin tokens (create, list, revoke) and secret keys', { token, tokens, revoke, 'secret-key': secretKey });
