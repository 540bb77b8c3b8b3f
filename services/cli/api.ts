/**
 * How commands call the services' HTTP APIs: the base URL from the environment, the admin token attached
 * (credentials.ts), a deadline, and one-line errors — `cannot reach the orchestrator at … (set
 * ORCHESTRATOR_URL): connect ECONNREFUSED …` when nothing answers, `the orchestrator answered HTTP 409: …`
 * when the API refuses. The base URL is the API's URL variable (ORCHESTRATOR_URL, …), or else the
 * service's own host and port settings (ORCH_HOST/ORCH_HTTP_PORT, …: the environment `bkstream up` ran
 * with reaches the ports it listens on), or else the default port on loopback.
 */
import { BkError, UnavailableError } from '../common/errors.ts';
import { maskSecretKeys } from '../common/secrets.ts';
import { authHeaders, credentialsHint } from './credentials.ts';
import { innermostMessage } from './messages.ts';

/** A service's HTTP API as the CLI finds it. */
export interface ServiceApi {
  /** For messages: `the orchestrator`. */
  readonly name: string;
  /** The environment variable holding its base URL. */
  readonly envKey: string;
  /** The service's own settings of its HTTP listener, the URL's fallback (`bkstream up` reads the same). */
  readonly hostKey?: string;
  readonly portKey?: string;
  readonly defaultUrl: string;
}

export const APIS = {
  orchestrator: { name: 'the orchestrator', envKey: 'ORCHESTRATOR_URL', hostKey: 'ORCH_HOST', portKey: 'ORCH_HTTP_PORT', defaultUrl: 'http://127.0.0.1:8082' },
  storage: { name: 'the storage service', envKey: 'STORAGE_URL', hostKey: 'STORAGE_HTTP_HOST', portKey: 'STORAGE_HTTP_PORT', defaultUrl: 'http://127.0.0.1:8083' },
  discovery: { name: 'the discovery service', envKey: 'DISCOVERY_URL', hostKey: 'DISCOVERY_HTTP_HOST', portKey: 'DISCOVERY_HTTP_PORT', defaultUrl: 'http://127.0.0.1:8081' },
} as const satisfies Record<string, ServiceApi>;

/** Default deadline of one API call, ms. */
export const API_TIMEOUT_MS = 10_000;

export interface Reply {
  status: number;
  body: Record<string, unknown>;
}

/**
 * The API's base URL: its URL variable; else its host and port settings when the port is set (a wildcard
 * or unset host is reached on loopback; port 0, any free port, names no address); else the default.
 */
export function baseUrlOf(api: ServiceApi, env: NodeJS.ProcessEnv): string {
  const url = env[api.envKey];
  if (url) return url.replace(/\/+$/, '');
  const port = api.portKey ? env[api.portKey]?.trim() : undefined;
  if (port && /^\d+$/.test(port) && Number(port) > 0) {
    const configured = api.hostKey ? env[api.hostKey]?.trim() : undefined;
    const host = !configured || configured === '0.0.0.0' || configured === '::' ? '127.0.0.1' : configured;
    return `http://${host.includes(':') ? `[${host}]` : host}:${Number(port)}`;
  }
  return api.defaultUrl;
}

/**
 * Calls `api` (JSON in and out, the admin token of the environment attached); throws UnavailableError when
 * it cannot be reached. Any HTTP status is returned: see {@link expectStatus}.
 */
export async function apiCall(api: ServiceApi, env: NodeJS.ProcessEnv, method: string, path: string, body?: unknown, timeoutMs = API_TIMEOUT_MS): Promise<Reply> {
  const base = baseUrlOf(api, env);
  // Read before anything is sent: a token file other users may read stops the command (ConfigError).
  const headers = { 'content-type': 'application/json', ...authHeaders(env) };
  let text: string;
  let status: number;
  try {
    const res = await fetch(`${base}${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), signal: AbortSignal.timeout(timeoutMs) });
    status = res.status;
    text = await res.text();
  } catch (err) {
    throw new UnavailableError(`cannot reach ${api.name} at ${base} (set ${api.envKey}): ${innermostMessage(err)}`, { cause: err });
  }
  let parsed: Record<string, unknown>;
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    parsed = { error: text.slice(0, 300) };
  }
  return { status, body: parsed };
}

/** The one-line description of a refusal: `the orchestrator answered HTTP 409: …` plus a credentials hint. */
export function refusal(api: ServiceApi, r: Reply, env: NodeJS.ProcessEnv): string {
  const error = typeof r.body.error === 'string' ? r.body.error : JSON.stringify(maskSecretKeys(r.body));
  return `${api.name} answered HTTP ${r.status}: ${error}${credentialsHint(r.status, env)}`;
}

/** `r` when its status is `ok`; else throws a BkError describing the refusal. */
export function expectStatus(api: ServiceApi, r: Reply, env: NodeJS.ProcessEnv, ok = 200): Reply {
  if (r.status === ok) return r;
  const code = typeof r.body.code === 'string' ? r.body.code : `http_${r.status}`;
  throw new BkError(code, refusal(api, r, env), r.status >= 500);
}

/** GET `path` of `api`, expecting 200. */
export async function apiGet(api: ServiceApi, env: NodeJS.ProcessEnv, path: string, timeoutMs = API_TIMEOUT_MS): Promise<Reply> {
  return expectStatus(api, await apiCall(api, env, 'GET', path, undefined, timeoutMs), env);
}

/** Prints `value` as one JSON document (the `--json` output of every listing). */
export function printJson(print: (line: string) => void, value: unknown): void {
  print(JSON.stringify(value, null, 2));
}
