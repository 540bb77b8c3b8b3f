/**
 * Configuration of the web console (env keys `CONSOLE_*`), validated at start-up with every problem
 * reported at once. {@link validateConsole} checks what no single field can.
 */
import { int, list, optionalStr, str, url, type Config, type Spec } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';

/** Host names a browser may use to reach a console bound to a loopback address. */
export const LOOPBACK_HOSTS: readonly string[] = ['127.0.0.1', 'localhost', '[::1]', '::1'];

// Keys differ from commonSpec's (a service's config is `{ ...commonSpec, ...consoleSpec }`): `allowedHosts`
// here would hide BKSTREAM_ALLOWED_HOSTS, hence `consoleAllowedHosts`.
export const consoleSpec = {
  host: str({ env: 'CONSOLE_HOST', default: '127.0.0.1', doc: 'interface the console (pages, API proxy, /metrics, /healthz) listens on' }),
  port: int({ env: 'CONSOLE_PORT', default: 8080, min: 0, max: 65535, doc: 'port of the console (0 = any free port)' }),
  discoveryUrl: url({ env: 'CONSOLE_DISCOVERY_URL', default: 'http://127.0.0.1:8081', protocols: ['http', 'https'], doc: 'base URL of the discovery query API (`/api/discovery/…` is proxied to `<url>/api/v1/…`)' }),
  storageUrl: url({ env: 'CONSOLE_STORAGE_URL', default: 'http://127.0.0.1:8083', protocols: ['http', 'https'], doc: 'base URL of the storage query API (`/api/storage/…`)' }),
  orchestratorUrl: url({ env: 'CONSOLE_ORCHESTRATOR_URL', default: 'http://127.0.0.1:8082', protocols: ['http', 'https'], doc: 'base URL of the orchestrator HTTP API (`/api/orchestrator/…`)' }),
  collectorAdminUrl: url({ env: 'CONSOLE_COLLECTOR_ADMIN_URL', default: 'http://127.0.0.1:4310', protocols: ['http', 'https'], doc: 'base URL of the collector admin API, the application registry (`/api/collector/…`)' }),
  otlpHttpUrl: url({ env: 'CONSOLE_OTLP_HTTP_URL', default: 'http://127.0.0.1:4318/v1/traces', protocols: ['http', 'https'], doc: 'OTLP/HTTP traces URL shown in the SDK snippet of a new application (what SDKs on other hosts reach)' }),
  otlpGrpcUrl: url({ env: 'CONSOLE_OTLP_GRPC_URL', default: 'http://127.0.0.1:4317', protocols: ['http', 'https'], doc: 'OTLP/gRPC endpoint shown in the SDK snippet of a new application' }),
  upstreamTimeoutMs: int({ env: 'CONSOLE_UPSTREAM_TIMEOUT_MS', default: 15_000, min: 100, doc: 'longest a proxied call may take (request sent to the whole answer read) before 504, ms' }),
  refreshIntervalMs: int({ env: 'CONSOLE_REFRESH_INTERVAL_MS', default: 5_000, min: 500, max: 600_000, doc: 'how often an open page asks its APIs again (pages poll while visible), ms' }),
  maxBodyBytes: int({ env: 'CONSOLE_MAX_BODY_BYTES', default: 1 << 20, min: 1024, doc: 'largest request body the proxy forwards, bytes (larger: 413)' }),
  consoleAllowedHosts: list({ env: 'CONSOLE_ALLOWED_HOSTS', default: [], doc: 'host names (comma separated; a port is ignored) the console answers to besides the loopback names and CONSOLE_HOST; a request naming another Host gets 403 (DNS-rebinding guard)' }),
  assetsDir: optionalStr({ env: 'CONSOLE_ASSETS_DIR', doc: 'folder of the built front end; unset = services/console/dist, built at start when missing' }),
} satisfies Spec;

export type ConsoleConfig = Config<typeof consoleSpec>;

const UPSTREAMS = [
  ['discoveryUrl', 'CONSOLE_DISCOVERY_URL'],
  ['storageUrl', 'CONSOLE_STORAGE_URL'],
  ['orchestratorUrl', 'CONSOLE_ORCHESTRATOR_URL'],
  ['collectorAdminUrl', 'CONSOLE_COLLECTOR_ADMIN_URL'],
] as const;

function isLoopback(host: string): boolean {
  return LOOPBACK_HOSTS.includes(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** Cross-field checks, run once every field parsed: each problem named by the key to change. */
export function validateConsole(c: ConsoleConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const [field, key] of UPSTREAMS) {
    const u = new URL(c[field]);
    if (u.search !== '' || u.hash !== '') problems.push({ key, message: 'must be a base URL without query or fragment' });
    const port = Number(u.port || (u.protocol === 'https:' ? 443 : 80));
    const host = u.hostname.replace(/^\[|\]$/g, '');
    const sameHost = host === c.host || (isLoopback(host) && isLoopback(c.host)) || c.host === '0.0.0.0' || c.host === '::';
    if (c.port !== 0 && port === c.port && sameHost) problems.push({ key, message: `points at the console itself (CONSOLE_HOST:CONSOLE_PORT ${c.host}:${c.port}): the proxy would call itself` });
  }
  if (!isLoopback(c.host) && c.consoleAllowedHosts.length === 0) {
    problems.push({ key: 'CONSOLE_ALLOWED_HOSTS', message: `CONSOLE_HOST ${c.host} is not a loopback address: name the host names users reach the console by (only loopback names are answered otherwise)` });
  }
  return problems;
}
