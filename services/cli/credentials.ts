/**
 * The credentials the CLI sends to the APIs (SECURITY.md): the admin token from BKSTREAM_ADMIN_TOKEN, or
 * from the file BKSTREAM_ADMIN_TOKEN_FILE names, which must not be readable by other users (mode 0600
 * or stricter: a looser one is refused, not read). Commands that open the database directly need no
 * token: the database's own credentials are the authority there.
 */
import { readPrivateFile } from '../common/config.ts';
import { BkError, ConfigError, errorMessage } from '../common/errors.ts';
import { innermostMessage } from './messages.ts';

/** The admin token of the environment, if any; throws ConfigError for a file that is missing or too open. */
export function adminTokenOf(env: NodeJS.ProcessEnv): string | undefined {
  const direct = env.BKSTREAM_ADMIN_TOKEN?.trim();
  const file = env.BKSTREAM_ADMIN_TOKEN_FILE?.trim();
  if (direct && file) throw new ConfigError([{ key: 'BKSTREAM_ADMIN_TOKEN_FILE', message: 'set BKSTREAM_ADMIN_TOKEN or BKSTREAM_ADMIN_TOKEN_FILE, not both' }]);
  if (direct) return direct;
  if (!file) return undefined;
  try {
    return readPrivateFile(file);
  } catch (err) {
    throw new ConfigError([{ key: 'BKSTREAM_ADMIN_TOKEN_FILE', message: errorMessage(err) }]);
  }
}

/** `Authorization: Bearer <admin token>` when the environment has one. */
export function authHeaders(env: NodeJS.ProcessEnv): Record<string, string> {
  const token = adminTokenOf(env);
  return token ? { authorization: `Bearer ${token}` } : {};
}

/** A hint for a 401 / 403 answer: where the CLI takes its token from. */
export function credentialsHint(status: number, env: NodeJS.ProcessEnv): string {
  if (status !== 401 && status !== 403) return '';
  return adminTokenOf(env)
    ? ' (the admin token in BKSTREAM_ADMIN_TOKEN / BKSTREAM_ADMIN_TOKEN_FILE was refused)'
    : ' (set BKSTREAM_ADMIN_TOKEN, or BKSTREAM_ADMIN_TOKEN_FILE naming a 0600 file: `bkstream up` prints a token on its first run, `bkstream admin token` makes one)';
}

/** Calls an admin API (JSON in and out, the admin token attached); throws BkError with the API's message on failure. */
export async function adminApiCall<T>(baseUrl: string, env: NodeJS.ProcessEnv, method: string, path: string, body?: unknown, what = 'the admin API'): Promise<T> {
  let res: Response;
  try {
    res = await fetch(new URL(path, baseUrl), {
      method,
      headers: { 'content-type': 'application/json', ...authHeaders(env) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch (err) {
    throw new BkError('unavailable', `cannot reach ${what} at ${baseUrl}: ${innermostMessage(err)}`, true);
  }
  const payload = (await res.json().catch(() => ({}))) as { error?: string; code?: string };
  if (!res.ok) throw new BkError(payload.code ?? `http_${res.status}`, `${payload.error ?? `HTTP ${res.status}`}${credentialsHint(res.status, env)}`, res.status >= 500);
  return payload as T;
}
