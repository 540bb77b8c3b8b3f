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
import { parseArgs } from 'node:util';
import { createAdminToken, listAdminTokens, revokeAdminToken, type AdminTokenInfo } from '../../common/auth.ts';
import { BkError, errorMessage } from '../../common/errors.ts';
import { generateKey } from '../../common/secrets.ts';
import type { Command } from '../command.ts';
import { adminApiCall } from '../credentials.ts';
import { withStoreOrAdminApi } from '../local-store.ts';

const USAGE = `bkstream admin token [--name <name>]
bkstream admin tokens
bkstream admin revoke --id <n> [--force]
bkstream admin secret-key`;

class UsageError extends Error {}

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

async function token(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { name: { type: 'string', default: 'admin' } } });
  const created = await withStoreOrAdminApi(env,
    (store) => createAdminToken(store, values.name),
    (url) => adminApiCall<AdminTokenInfo & { token: string }>(url, env, 'POST', '/api/v1/admin/tokens', { name: values.name }, "the collector's admin API"));
  console.log(`created admin token ${created.id} (${created.name})`);
  console.log(adminTokenHelp(created.token));
  return 0;
}

async function tokens(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  parseArgs({ args, strict: true, options: {} });
  const list = await withStoreOrAdminApi<Listed[]>(env,
    (store) => listAdminTokens(store),
    async (url) => (await adminApiCall<{ tokens: Listed[] }>(url, env, 'GET', '/api/v1/admin/tokens', undefined, "the collector's admin API")).tokens);
  console.log(list.length === 0 ? 'no admin tokens (bkstream admin token --name <name>)' : table(list));
  return 0;
}

async function revoke(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values } = parseArgs({ args, strict: true, options: { id: { type: 'string' }, force: { type: 'boolean', default: false } } });
  if (values.id === undefined || !/^\d+$/.test(values.id)) throw new UsageError('--id <n> is required (bkstream admin tokens lists them)');
  const id = Number(values.id);
  const revoked = await withStoreOrAdminApi(env,
    (store) => revokeAdminToken(store, id, values.force),
    (url) => adminApiCall<Listed>(url, env, 'DELETE', `/api/v1/admin/tokens/${id}${values.force ? '?force=true' : ''}`, undefined, "the collector's admin API"));
  console.log(`revoked admin token ${revoked.id} (${revoked.name}); other processes stop accepting it within 10 s`);
  return 0;
}

async function secretKey(args: string[]): Promise<number> {
  parseArgs({ args, strict: true, options: {} });
  console.log(generateKey());
  return 0;
}

const SUBCOMMANDS: Record<string, (args: string[], env: NodeJS.ProcessEnv) => Promise<number>> = {
  token,
  tokens,
  revoke,
  'secret-key': secretKey,
};

export const command: Command = {
  summary: 'admin tokens (create, list, revoke) and secret keys',
  usage: USAGE.split('\n')[0] ?? USAGE,
  async run(args, env) {
    const [sub, ...rest] = args;
    const run = sub ? SUBCOMMANDS[sub] : undefined;
    if (!run) {
      console.error(`usage:\n${USAGE}`);
      return 2;
    }
    try {
      return await run(rest, env);
    } catch (err) {
      if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
        console.error(`bkstream admin ${sub}: ${errorMessage(err)}\nusage:\n${USAGE}`);
        return 2;
      }
      if (err instanceof BkError && !err.retriable && err.code !== 'config_invalid') {
        console.error(`bkstream admin ${sub}: ${err.message}`);
        return 1;
      }
      throw err;
    }
  },
};
