/**
 * The collector attacked as issue 16 found it, from the same network, each attack beside the legitimate
 * call that must keep working: the admin API (application registry, token rotation, admin tokens,
 * reload) without or with the wrong credentials, a cross-site text/plain POST, DNS rebinding (Host and
 * Origin), guessing tokens, and slow-loris clients on OTLP/HTTP.
 */
import test from 'ava';
import { connect, type Socket } from 'node:net';
import { grpcStatus as status } from '../../services/common/grpc.ts';
import { hashToken } from '../../services/common/auth.ts';
import { encodeRequest } from '../../services/common/otlp/index.ts';
import { bearer, jsonHeaders } from '../common/auth-kit.ts';
import { rawRequest } from '../common/http-kit.ts';
import { closeFileStore, fileStore, grpcExport, httpPost, startReceiver } from './helpers.ts';

test.after.always(closeFileStore);

const portOf = (url: string): number => Number(new URL(url).port);

async function call(url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(url, { method, headers, ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
  return { status: res.status, json: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

test('application management needs an admin token: none is 401, an application token 403, the admin token works', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const apps = `${kit.adminUrl}/api/v1/apps`;
  const rotate = `${apps}/${kit.app.bkBizId}/${kit.app.appName}/rotate-token`;
  const app = { bk_biz_id: 9, app_name: `sec-${Date.now().toString(36)}` };

  // Attack: register an application, read the registry, rotate someone's token — no credentials.
  const anon = await call(apps, 'POST', { 'content-type': 'application/json' }, app);
  t.is(anon.status, 401);
  t.is(anon.json.code, 'unauthenticated');
  t.false('token' in anon.json);
  t.is((await call(apps, 'GET', {})).status, 401);
  t.is((await call(rotate, 'POST', { 'content-type': 'application/json' })).status, 401);
  t.is((await call(`${kit.adminUrl}/-/reload`, 'POST', {})).status, 401);
  // Attack: an application's own token does not manage applications, not even its own.
  t.is((await call(apps, 'POST', jsonHeaders(kit.token), app)).status, 403);
  t.is((await call(rotate, 'POST', jsonHeaders(kit.token))).status, 403);
  // Attack: a made-up token.
  t.is((await call(apps, 'POST', jsonHeaders('bkadm_made-up-token-of-the-right-shape-000000000000'), app)).status, 401);
  const { rows: none } = await kit.store.query('SELECT 1 FROM apm_application WHERE app_name = $1', [app.app_name]);
  t.is(none.length, 0, 'nothing was registered by the refused calls');
  const { rows: same } = await kit.store.query<{ token_hash: string }>('SELECT token_hash FROM apm_application WHERE id = $1', [kit.app.id]);
  t.is(same[0]?.token_hash, hashToken(kit.token), 'the token was not rotated');

  // Legitimate: the admin token.
  const created = await call(apps, 'POST', jsonHeaders(), app);
  t.is(created.status, 201);
  t.regex(String(created.json.token), /^bkst_/);
  t.is((await call(apps, 'GET', bearer())).status, 200);
  const rotated = await call(rotate, 'POST', jsonHeaders());
  t.is(rotated.status, 200);
  t.not(rotated.json.token, kit.token);
  t.is((await call(`${kit.adminUrl}/-/reload`, 'POST', bearer())).status, 200);
});

test('JSON endpoints refuse other content types (415) before reading the body: a cross-site text/plain POST does nothing', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const name = `plain-${Date.now().toString(36)}`;
  const body = JSON.stringify({ bk_biz_id: 9, app_name: name });
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const r = await call(`${kit.adminUrl}/api/v1/apps`, 'POST', bearer(undefined, { 'content-type': type }), body);
    t.is(r.status, 415, type);
    t.is(r.json.code, 'unsupported_media_type');
  }
  const { rows } = await kit.store.query('SELECT 1 FROM apm_application WHERE app_name = $1', [name]);
  t.is(rows.length, 0);
  t.is((await call(`${kit.adminUrl}/api/v1/apps`, 'POST', jsonHeaders(), body)).status, 201, 'application/json is read');
  t.is((await call(`${kit.adminUrl}/api/v1/apps`, 'POST', bearer(undefined, { 'content-type': 'application/json; charset=utf-8' }), JSON.stringify({ bk_biz_id: 9, app_name: `${name}-2` }))).status, 201);
});

test('DNS rebinding: a Host or Origin that is neither an IP address nor an allowed name is 403; the legitimate ones pass', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore(), env: { BKSTREAM_ALLOWED_HOSTS: 'localhost,collector.bkstream.svc' } });
  const port = portOf(kit.adminUrl);
  const get = (headers: Record<string, string>) => rawRequest(port, { path: '/api/v1/apps', headers: { ...bearer(), ...headers } });
  const rebound = await get({ host: `attacker.example:${port}` });
  t.is(rebound.status, 403);
  t.regex(String(rebound.json.error), /host "attacker\.example" is not allowed/);
  t.is((await get({ host: `127.0.0.1:${port}`, origin: 'http://attacker.example' })).status, 403, 'a foreign page');
  t.is((await get({ host: `localhost.attacker.example:${port}` })).status, 403);
  t.is((await get({ host: `127.0.0.1:${port}` })).status, 200);
  t.is((await get({ host: `localhost:${port}`, origin: `http://localhost:8080` })).status, 200, 'the console on localhost');
  t.is((await get({ host: `collector.bkstream.svc:${port}` })).status, 200, 'a configured name');
  t.is((await get({ host: `[::1]:${port}` })).status, 200, 'an IPv6 literal');
  // Health and metrics stay public (kubelet and Prometheus reach them by IP, without credentials).
  for (const path of ['/livez', '/readyz', '/healthz', '/metrics', '/-/healthz']) {
    t.is((await rawRequest(port, { path, headers: { host: `anything.example:${port}` } })).status, 200, path);
  }
});

test('failed authentications are rate-limited per client address (429 with Retry-After), not answered with a lookup', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore(), env: { BKSTREAM_AUTH_FAILURE_LIMIT: '5', BKSTREAM_AUTH_BLOCK_S: '30' } });
  const url = `${kit.adminUrl}/api/v1/apps`;
  for (let i = 0; i < 5; i++) t.is((await call(url, 'GET', bearer(`bkadm_guess-${i}-${'x'.repeat(40)}`))).status, 401, `guess ${i}`);
  const blocked = await fetch(url, { headers: bearer('bkadm_guess-after-the-limit-xxxxxxxxxxxxxxxxxxxxxxxxx') });
  t.is(blocked.status, 429);
  t.regex(blocked.headers.get('retry-after') ?? '', /^\d+$/);
  t.is((await fetch(url, { headers: bearer() })).status, 429, 'while blocked, even the right token waits: guessing learns nothing');
  const metrics = await (await fetch(`${kit.adminUrl}/metrics`)).text();
  t.regex(metrics, /bkstream_auth_checks_total\{result="blocked"[^}]*\} [1-9]/);
});

test('admin tokens: created through the API (shown once, stored hashed), usable, and refused once revoked', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const tokens = `${kit.adminUrl}/api/v1/admin/tokens`;
  t.is((await call(tokens, 'POST', jsonHeaders(kit.token), { name: 'x' })).status, 403, 'not with an application token');
  const created = await call(tokens, 'POST', jsonHeaders(), { name: 'ops' });
  t.is(created.status, 201);
  const token = String(created.json.token);
  t.regex(token, /^bkadm_/);
  const { rows } = await kit.store.query<{ token_hash: string }>('SELECT token_hash FROM bkstream_admin_token WHERE id = $1', [created.json.id]);
  t.is(rows[0]?.token_hash, hashToken(token), 'only the hash is stored');
  const listed = await call(tokens, 'GET', bearer(token));
  t.is(listed.status, 200, 'the new token is an admin token');
  t.false(JSON.stringify(listed.json).includes(token), 'listings never carry tokens');
  const whoami = await call(`${kit.adminUrl}/api/v1/whoami`, 'GET', bearer(token));
  t.like(whoami.json, { kind: 'admin', name: 'ops' });
  t.like((await call(`${kit.adminUrl}/api/v1/whoami`, 'GET', bearer(kit.token))).json, { kind: 'app', bk_biz_id: kit.app.bkBizId, app_name: kit.app.appName });
  const last = await call(`${tokens}/${String(created.json.id)}`, 'DELETE', bearer());
  t.is(last.status, 409, 'the last active stored admin token is not revoked by accident');
  t.regex(String(last.json.error), /last active admin token/);
  t.is((await call(tokens, 'POST', jsonHeaders(token), { name: 'ops-next' })).status, 201, 'rotation: make the next token…');
  t.is((await call(`${tokens}/${String(created.json.id)}`, 'DELETE', bearer(token))).status, 200, '…then revoke the old one');
  t.is((await call(tokens, 'GET', bearer(token))).status, 401, 'revoked: refused at once in this process');
});

test('OTLP: a wrong header token is refused (401) before the body is read; the right one is accepted', async (t) => {
  const kit = await startReceiver(t, { store: await fileStore() });
  const body = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 1), spanId: Buffer.alloc(8, 2), name: 's', startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }] });
  const wrong = await httpPost(kit.httpUrl, body, { 'content-type': 'application/x-protobuf', 'x-bk-token': 'bkst_wrong' });
  t.is(wrong.status, 401);
  t.is((await grpcExport(kit, body, 'bkst_wrong')).code, status.UNAUTHENTICATED);
  t.is((await httpPost(kit.httpUrl, body, { 'content-type': 'application/x-protobuf', 'x-bk-token': kit.token })).status, 200);
  t.is((await grpcExport(kit, body, kit.token)).code, status.OK);
});

/**
 * The bound a valid export must answer within while under attack: 1 s, as the issue asks — unless this
 * machine is so loaded that exports without any attacker already take more than half of that, in which
 * case twice their slowest (the test then shows the attackers add nothing, not what the machine lacks).
 */
async function latencyBound(url: string, body: Buffer, token: string): Promise<number> {
  let slowest = 0;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    await httpPost(url, body, { 'content-type': 'application/x-protobuf', 'x-bk-token': token });
    slowest = Math.max(slowest, performance.now() - started);
  }
  return Math.max(1_000, Math.ceil(2 * slowest));
}

/** A client that sends headers declaring an 8 MiB body, then one byte every `everyMs`. */
function trickle(port: number, headers: string, everyMs: number): { socket: Socket; answer: Promise<string> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  let received = '';
  const answer = new Promise<string>((resolve) => {
    socket.on('data', (b: Buffer) => (received += b.toString('latin1')));
    socket.on('close', () => resolve(received));
  });
  socket.once('connect', () => {
    socket.write(headers);
    const timer = setInterval(() => {
      if (socket.destroyed) clearInterval(timer);
      else socket.write('x');
    }, everyMs);
    socket.once('close', () => clearInterval(timer));
  });
  return { socket, answer };
}

test('slow loris: 50 trickling connections without a token (and 50 with a wrong one) do not slow valid exports (200 within 1 s each)', async (t) => {
  t.timeout(120_000);
  // The connection cap (next test) is raised here so that this test sees the request cap alone.
  const kit = await startReceiver(t, { store: await fileStore(), env: { COLLECTOR_HTTP_REQUEST_TIMEOUT_S: '20', COLLECTOR_HTTP_MAX_UNAUTHENTICATED_CONNECTIONS: '500' } });
  const port = portOf(kit.httpUrl);
  const body = encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.alloc(16, 3), spanId: Buffer.alloc(8, 4), name: 'ok', startTimeUnixNano: '1', endTimeUnixNano: '2' }] }] }] });
  const bound = await latencyBound(kit.httpUrl, body, kit.token);
  const declare = (extra: string) => `POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${8 * 1024 * 1024}\r\n${extra}\r\n`;
  const noToken = Array.from({ length: 50 }, () => trickle(port, declare(''), 200));
  const wrongToken = Array.from({ length: 50 }, () => trickle(port, declare('x-bk-token: bkst_wrong-token\r\n'), 200));
  t.teardown(() => {
    for (const c of [...noToken, ...wrongToken]) c.socket.destroy();
  });
  await new Promise((r) => setTimeout(r, 1_000));

  const latencies: number[] = [];
  for (let i = 0; i < 20; i++) {
    const started = performance.now();
    const res = await httpPost(kit.httpUrl, body, { 'content-type': 'application/x-protobuf', 'x-bk-token': kit.token });
    latencies.push(performance.now() - started);
    t.is(res.status, 200, `valid export ${i} while 100 attackers are connected`);
    await new Promise((r) => setTimeout(r, 250));
  }
  t.true(Math.max(...latencies) < bound, `every valid export answered within ${bound} ms (max ${Math.round(Math.max(...latencies))} ms)`);

  // The wrong tokens were answered 401 at once and closed; of those without a token, all but
  // COLLECTOR_HTTP_MAX_UNAUTHENTICATED_REQUESTS (8) were answered 429 at once, and no byte of theirs was counted.
  const wrongAnswers = await Promise.all(wrongToken.map((c) => c.answer));
  t.true(wrongAnswers.every((a) => a.startsWith('HTTP/1.1 401')), 'every wrong token: 401');
  const refused = (await Promise.all(noToken.map((c) => Promise.race([c.answer, new Promise<string>((r) => setTimeout(() => r('(still open)'), 100))]))))
    .filter((a) => a.startsWith('HTTP/1.1 429')).length;
  t.is(refused, 42, 'without a token: 8 are read (bounded, outside the in-flight budget), 42 refused');
  t.is(kit.collector.health().checks.inflight_bytes, 0, 'no attacker byte counts against the in-flight bound');
});

test('slow loris: trickled headers time out (408) and the connections without a valid token are capped (the oldest closed)', async (t) => {
  t.timeout(120_000);
  const kit = await startReceiver(t, { store: await fileStore(), env: { COLLECTOR_HTTP_HEADERS_TIMEOUT_S: '2', COLLECTOR_HTTP_MAX_UNAUTHENTICATED_CONNECTIONS: '20' } });
  const port = portOf(kit.httpUrl);
  // A resource group without spans: answered 200 once its token passed (no group at all would be 401, as the reference).
  const body = encodeRequest({ resourceSpans: [{ scopeSpans: [] }] });
  const bound = await latencyBound(kit.httpUrl, body, kit.token);
  const clients = Array.from({ length: 50 }, () => trickle(port, 'POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow', 200));
  t.teardown(() => {
    for (const c of clients) c.socket.destroy();
  });
  await new Promise((r) => setTimeout(r, 500));
  const started = performance.now();
  t.is((await httpPost(kit.httpUrl, body, { 'content-type': 'application/x-protobuf', 'x-bk-token': kit.token })).status, 200);
  const took = performance.now() - started;
  t.true(took < bound, `a valid export answered within ${bound} ms (${Math.round(took)} ms)`);
  const answers = await Promise.all(clients.map((c) => c.answer));
  const timedOut = answers.filter((a) => a.startsWith('HTTP/1.1 408')).length;
  const evicted = answers.filter((a) => a === '').length;
  t.is(timedOut + evicted, 50, 'every header trickler is closed: by the header timeout (408) or to make room');
  t.true(evicted >= 29, `beyond 20 unauthenticated connections the oldest are closed (${evicted} evicted)`);
  const metrics = await (await fetch(`${kit.adminUrl}/metrics`)).text();
  t.regex(metrics, /bkstream_receiver_connections_evicted_total(\{[^}]*\})? [1-9]/);
});
