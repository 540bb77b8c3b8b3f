/**
 * The console service without a browser: its configuration (defaults, every bad key at once, the
 * cross-field checks), its lifecycle, the front end it serves (CSP, caching, gzip), and the proxy
 * against recording upstreams — forwarded paths, the token header, streamed bodies, the route list, the
 * Host/Origin/Content-Type guards, body limit, unreachable and slow upstreams.
 */
import test, { type ExecutionContext } from 'ava';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { commonSpec, configTable, loadConfig } from '../../services/common/config.ts';
import { ConfigError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { consoleMetrics } from '../../services/console/metrics.ts';
import { proxyAllows } from '../../services/console/proxy.ts';
import { consoleService, createConsole, loadConsoleConfig, type ConsoleService } from '../../services/console/service.ts';
import { createService } from '../helpers/service.ts';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A stand-in upstream that records each request and answers with `answer` (or hangs when told to). */
async function upstream(t: ExecutionContext, answer: (req: IncomingMessage, body: string) => { status: number; body: string; headers?: Record<string, string> } | 'hang' = () => ({ status: 200, body: '{"ok":true}' })): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const a = answer(req, body);
      if (a === 'hang') return;
      res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
      res.end(a.body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.close(() => r());
    server.closeAllConnections();
  }));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function startConsole(t: ExecutionContext, env: NodeJS.ProcessEnv): Promise<ConsoleService> {
  const c = createConsole({ logger: silentLogger, registry: createRegistry() }, loadConsoleConfig({ CONSOLE_PORT: '0', ...env }));
  t.teardown(() => c.stop());
  await c.start();
  return c;
}

/** A raw request (fetch cannot set Host or Origin). */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer }> {
  return new Promise((resolveRes, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveRes({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

test('config: defaults, every bad key at once, and the cross-field checks', (t) => {
  const c = loadConsoleConfig({});
  t.like(c, { host: '127.0.0.1', port: 8080, discoveryUrl: 'http://127.0.0.1:8081', storageUrl: 'http://127.0.0.1:8083', orchestratorUrl: 'http://127.0.0.1:8082', collectorAdminUrl: 'http://127.0.0.1:4310', refreshIntervalMs: 5_000 });
  const bad = t.throws(() => loadConsoleConfig({ CONSOLE_PORT: '70000', CONSOLE_STORAGE_URL: 'ftp://x', CONSOLE_REFRESH_INTERVAL_MS: '10', LOG_LEVEL: 'loud' }), { instanceOf: ConfigError });
  for (const key of ['CONSOLE_PORT', 'CONSOLE_STORAGE_URL', 'CONSOLE_REFRESH_INTERVAL_MS', 'LOG_LEVEL']) t.regex(bad.message, new RegExp(key));
  const loop = t.throws(() => loadConsoleConfig({ CONSOLE_DISCOVERY_URL: 'http://localhost:8080', CONSOLE_ORCHESTRATOR_URL: 'http://127.0.0.1:8082/?x=1' }), { instanceOf: ConfigError });
  t.regex(loop.message, /CONSOLE_DISCOVERY_URL: points at the console itself/);
  t.regex(loop.message, /CONSOLE_ORCHESTRATOR_URL: must be a base URL without query or fragment/);
  const exposed = t.throws(() => loadConsoleConfig({ CONSOLE_HOST: '0.0.0.0' }), { instanceOf: ConfigError });
  t.regex(exposed.message, /CONSOLE_ALLOWED_HOSTS: CONSOLE_HOST 0\.0\.0\.0 is not a loopback address/);
  t.notThrows(() => loadConsoleConfig({ CONSOLE_HOST: '0.0.0.0', CONSOLE_ALLOWED_HOSTS: 'console.example.test' }));
  t.is(consoleService.name, 'console');
  t.deepEqual(consoleService.needs, []);
});

test('the proxy list: the console forwards only the APIs the pages use', (t) => {
  t.true(proxyAllows('discovery', 'GET', '/apps/2/shop/nodes'));
  t.false(proxyAllows('discovery', 'POST', '/apps/2/shop/nodes'));
  t.true(proxyAllows('storage', 'POST', '/apps/2/shop/traces'));
  t.true(proxyAllows('storage', 'GET', '/apps/-3/shop/traces/abc'));
  t.true(proxyAllows('collector', 'DELETE', '/apps/2/shop'));
  t.true(proxyAllows('collector', 'PATCH', '/apps/2/shop'), 'an application\'s flow switches and retention are changed through the console');
  t.true(proxyAllows('collector', 'GET', '/apps/2/shop'));
  t.false(proxyAllows('collector', 'PATCH', '/apps'));
  t.true(proxyAllows('orchestrator', 'POST', '/flows/2/shop/tail_sampling/retry'));
  t.true(proxyAllows('orchestrator', 'GET', '/flows'), 'the flows of one application: GET /flows?bk_biz_id=&app_name= (the query is forwarded as it is)');
  t.false(proxyAllows('collector', 'POST', '/-/reload'));
  t.false(proxyAllows('orchestrator', 'GET', '/flows/../../admin'));
});

test('lifecycle: stop without start; start → serves the front end, health, metrics, settings → stop', async (t) => {
  const idle = await createService(consoleService, { env: { CONSOLE_PORT: '0' }, logger: silentLogger, registry: createRegistry(), common: loadConfig(commonSpec, { env: {} }) });
  await t.notThrowsAsync(idle.stop());
  t.is(idle.name, 'console');

  const c = await startConsole(t, { CONSOLE_REFRESH_INTERVAL_MS: '2500', CONSOLE_OTLP_HTTP_URL: 'http://collector.test:4318/v1/traces' });
  const index = await raw(`${c.url()}/`, { headers: { 'accept-encoding': 'gzip' } });
  t.is(index.status, 200);
  t.regex(String(index.headers['content-security-policy']), /default-src 'self'; script-src 'self'/);
  t.is(index.headers['cache-control'], 'no-cache');
  const html = (index.headers['content-encoding'] === 'gzip' ? gunzipSync(index.body) : index.body).toString();
  const script = /<script type="module" src="(\/assets\/app-[^"]+\.js)"><\/script>/.exec(html)?.[1];
  t.truthy(script, html);
  t.notRegex(html, /(src|href)="https?:/, 'nothing loaded from another origin');
  t.true(html.includes('<meta name="bkstream-settings" content="{&quot;refreshIntervalMs&quot;:2500,'), 'the settings are in the page');
  const js = await raw(`${c.url()}${script as string}`, { headers: { 'accept-encoding': 'gzip' } });
  t.is(js.status, 200);
  t.is(js.headers['content-encoding'], 'gzip');
  t.regex(String(js.headers['cache-control']), /immutable/);
  const again = await raw(`${c.url()}${script as string}`, { headers: { 'if-none-match': String(js.headers.etag) } });
  t.is(again.status, 304);
  t.is((await raw(`${c.url()}/assets/nothing.js`)).status, 404);
  t.deepEqual(await (await fetch(`${c.url()}/console/settings.json`)).json(), { refreshIntervalMs: 2500, otlpHttpUrl: 'http://collector.test:4318/v1/traces', otlpGrpcUrl: 'http://127.0.0.1:4317' });
  const health = await fetch(`${c.url()}/healthz`);
  t.is(health.status, 200);
  t.like(await health.json(), { status: 'ok' });
  t.regex(await (await fetch(`${c.url()}/metrics`)).text(), /bkstream_console_assets_total\{code="200"/);
  await c.stop();
  await t.notThrowsAsync(c.stop(), 'stop is idempotent');
});

test('proxy: paths, query, the bearer token and bodies reach the upstream; answers come back with their status', async (t) => {
  const disc = await upstream(t, () => ({ status: 200, body: '{"total":1,"items":[{"topo_key":"gateway"}]}' }));
  const coll = await upstream(t, (req) => (req.method === 'DELETE' ? { status: 401, body: '{"error":"token refused"}', headers: { 'www-authenticate': 'Bearer' } } : { status: 201, body: '{"token":"bkst_x"}' }));
  const c = await startConsole(t, { CONSOLE_DISCOVERY_URL: `${disc.url}/base/`, CONSOLE_COLLECTOR_ADMIN_URL: coll.url });
  const got = await fetch(`${c.url()}/api/discovery/apps/2/shop/nodes?page_size=5&topo_key=a%20b`, { headers: { authorization: 'Bearer admin-token', cookie: 'x=1' } });
  t.is(got.status, 200);
  t.is(got.headers.get('cache-control'), 'no-store');
  t.deepEqual(await got.json(), { total: 1, items: [{ topo_key: 'gateway' }] });
  t.is(disc.seen[0]?.url, '/base/api/v1/apps/2/shop/nodes?page_size=5&topo_key=a%20b');
  t.is(disc.seen[0]?.headers.authorization, 'Bearer admin-token');
  t.is(disc.seen[0]?.headers.cookie, undefined, 'cookies stay with the console');

  const big = JSON.stringify({ bk_biz_id: 2, app_name: 'shop', description: 'x'.repeat(200_000) });
  const created = await fetch(`${c.url()}/api/collector/apps`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer admin-token' }, body: big });
  t.is(created.status, 201);
  t.is(coll.seen[0]?.body, big, 'the body is streamed through whole');
  t.is(coll.seen[0]?.headers['content-type'], 'application/json');

  const refused = await fetch(`${c.url()}/api/collector/apps/2/shop`, { method: 'DELETE', headers: { authorization: 'Bearer app-token' } });
  t.is(refused.status, 401, 'an upstream refusal reaches the browser as it is');
  t.is(refused.headers.get('www-authenticate'), 'Bearer');
  t.is(coll.seen[1]?.method, 'DELETE');

  const noToken = await fetch(`${c.url()}/api/discovery/apps/2/shop/hosts`);
  t.is(noToken.status, 200);
  t.is(disc.seen[1]?.headers.authorization, undefined, 'the console adds no credentials of its own');
});

test('proxy guards: route list, Host, Origin, content type and body size are checked before any upstream sees the call', async (t) => {
  const up = await upstream(t);
  const c = await startConsole(t, { CONSOLE_COLLECTOR_ADMIN_URL: up.url, CONSOLE_ORCHESTRATOR_URL: up.url, CONSOLE_MAX_BODY_BYTES: '2048' });
  const port = c.port();
  const url = (p: string): string => `http://127.0.0.1:${port}${p}`;
  t.is((await raw(url('/api/collector/-/reload'), { method: 'POST' })).status, 404);
  t.is((await raw(url('/api/bkdata/anything'))).status, 404);
  t.is((await raw(url('/api/collector/apps'), { headers: { host: 'evil.example:8080' } })).status, 403, 'DNS rebinding: a foreign Host is refused');
  t.is((await raw(url('/'), { headers: { host: `localhost:${port}` } })).status, 200, 'loopback names are answered');
  // a kubelet probe or a scraper names the pod's address: health and metrics answer for any Host, nothing else does
  for (const p of ['/livez', '/readyz', '/healthz', '/metrics']) t.is((await raw(url(p), { headers: { host: '10.1.2.3:8080' } })).status, 200, `${p} for a pod address`);
  t.is((await raw(url('/'), { headers: { host: '10.1.2.3:8080' } })).status, 403, 'the pages are not answered for a Host not allowed');
  t.is((await raw(url('/livez?x'), { headers: { host: 'evil.example' } })).status, 200);
  t.is((await raw(url('/api/collector/apps?/livez'), { headers: { host: 'evil.example' } })).status, 403, 'a query naming a health path does not pass the Host check');
  const json = { 'content-type': 'application/json' };
  t.is((await raw(url('/api/collector/apps'), { method: 'POST', headers: { ...json, origin: 'http://evil.example' }, body: '{}' })).status, 403, 'cross-origin POST');
  t.is((await raw(url('/api/collector/apps'), { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' })).status, 415);
  t.is((await raw(url('/api/collector/apps'), { method: 'POST', headers: json, body: 'x'.repeat(4096) })).status, 413);
  t.is(up.seen.length, 0, 'no refused call reached the upstream');
  t.is((await raw(url('/api/collector/apps'), { method: 'POST', headers: { ...json, origin: `http://127.0.0.1:${port}`, host: `127.0.0.1:${port}` }, body: '{}' })).status, 200, 'same-origin POST');
  t.is((await raw(url('/api/orchestrator/flows/2/shop/tail_sampling/retry'), { method: 'POST' })).status, 200, 'a POST without a body needs no content type');
  t.is(up.seen.length, 2);
  const metrics = await (await fetch(url('/metrics'))).text();
  for (const reason of ['route', 'host', 'origin', 'media_type', 'too_large']) t.regex(metrics, new RegExp(`bkstream_console_refused_total\\{reason="${reason}"`));
});

test('proxy: an unreachable upstream is 502 without its address; a slow one is 504 after the timeout', async (t) => {
  const slow = await upstream(t, () => 'hang');
  const c = await startConsole(t, { CONSOLE_DISCOVERY_URL: 'http://127.0.0.1:9', CONSOLE_STORAGE_URL: slow.url, CONSOLE_UPSTREAM_TIMEOUT_MS: '300' });
  const down = await fetch(`${c.url()}/api/discovery/apps/2/shop/nodes`);
  t.is(down.status, 502);
  const text = await down.text();
  t.is((JSON.parse(text) as { error: string }).error, 'discovery API is unreachable');
  t.notRegex(text, /127\.0\.0\.1|ECONNREFUSED/);
  const started = Date.now();
  const late = await fetch(`${c.url()}/api/storage/apps/2/shop/traces`);
  t.is(late.status, 504);
  t.true(Date.now() - started < 5_000);
  const metrics = await (await fetch(`${c.url()}/metrics`)).text();
  t.regex(metrics, /bkstream_console_proxy_failures_total\{upstream="discovery",reason="unreachable"\} 1/);
  t.regex(metrics, /bkstream_console_proxy_failures_total\{upstream="storage",reason="timeout"\} 1/);
});

test('README: the configuration table is the spec\'s and Metrics lists every series of metrics.ts', async (t) => {
  const readme = readFileSync(resolve(import.meta.dirname, '../../services/console/README.md'), 'utf8');
  t.true(readme.includes(`<!-- config:start -->\n${configTable(consoleService.spec)}\n<!-- config:end -->`));
  const section = readme.split(/^## /m).find((s) => s.startsWith('Metrics\n')) ?? '';
  const listed = new Set([...section.matchAll(/`(bkstream_console_\w+)[`{]/g)].map((m) => m[1] as string));
  const registry = createRegistry();
  consoleMetrics(registry);
  const declared = new Set((await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('bkstream_console_')));
  t.deepEqual([...listed].sort(), [...declared].sort());
});
