/**
 * The shared edge without a network beyond loopback: readiness probes (flips, blips, hangs), starting in
 * the background, the HTTP server's access rules, JSON-only bodies, liveness vs readiness, what a client
 * may see of an error, and the store guard that names database outages.
 */
import test from 'ava';
import { Authenticator } from '../../services/common/auth.ts';
import { BackgroundStart } from '../../services/common/background.ts';
import { clientMessage, DependencyUnavailableError, isRetriable, ValidationError } from '../../services/common/errors.ts';
import { Readiness, type Probe } from '../../services/common/health.ts';
import { createHttpServer, json, type Route } from '../../services/common/http.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { guardStore } from '../../services/common/store-guard.ts';
import { pgliteStore } from '../helpers/store.ts';
import { bearer, TEST_ADMIN_TOKEN } from './auth-kit.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A probe whose dependency is up, refusing, or hung (a hung check answers once the dependency is back, like a stalled connection). */
function switchable(name: string): Probe & { mode: 'ok' | 'fail' | 'hang' } {
  let mode: 'ok' | 'fail' | 'hang' = 'ok';
  const waiting: (() => void)[] = [];
  return {
    name,
    get mode() {
      return mode;
    },
    set mode(next) {
      mode = next;
      if (next !== 'hang') for (const release of waiting.splice(0)) release();
    },
    check: async () => {
      if (mode === 'hang') await new Promise<void>((resolve) => waiting.push(resolve));
      if (mode === 'fail') throw new Error('connect ECONNREFUSED 10.0.0.1:9092');
    },
  };
}

test('readiness: a lost dependency shows after two failed probes, a hung one after its timeout, a return at the next probe', async (t) => {
  const kafka = switchable('kafka');
  const ready = new Readiness({ probes: [kafka], intervalMs: 50, timeoutMs: 100, logger: silentLogger });
  t.deepEqual(ready.checks(), { kafka: 'unknown' });
  await ready.start();
  t.teardown(() => ready.stop());
  t.true(ready.ok());
  kafka.mode = 'fail';
  await sleep(40);
  kafka.mode = 'ok';
  await sleep(60);
  t.true(ready.ok(), 'one failed probe is a blip');
  kafka.mode = 'fail';
  await sleep(200);
  t.false(ready.ok());
  t.deepEqual(ready.checks(), { kafka: 'unavailable' });
  kafka.mode = 'ok';
  await sleep(120);
  t.true(ready.ok());
  kafka.mode = 'hang';
  await sleep(400);
  t.false(ready.ok(), 'a probe that does not answer within its timeout fails');
  kafka.mode = 'ok';
  await sleep(150);
  t.true(ready.ok(), 'back at the next probe once the stalled connection answers');
});

test('readiness: a dependency not seen yet is unavailable at its first failure', async (t) => {
  const db = switchable('database');
  db.mode = 'fail';
  const ready = new Readiness({ probes: [db], intervalMs: 1_000, timeoutMs: 100, logger: silentLogger });
  await ready.start();
  t.teardown(() => ready.stop());
  t.deepEqual(ready.checks(), { database: 'unavailable' });
});

test('a part started in the background: start returns at once, attempts repeat until one succeeds; stop ends the attempts', async (t) => {
  let attempts = 0;
  let stops = 0;
  const part = { name: 'kafka-part', start: async () => {
    attempts++;
    if (attempts < 3) throw new Error('broker down');
  }, stop: async () => {
    stops++;
  } };
  const bg = new BackgroundStart(part, { logger: silentLogger, initialDelayMs: 10, maxDelayMs: 20 });
  await bg.start();
  t.false(bg.started());
  await sleep(200);
  t.true(bg.started());
  t.is(attempts, 3);
  t.is(bg.problem(), undefined);
  await bg.stop();
  t.is(stops, 3, 'stopped after each failed attempt, and at the end');

  // A stop while an attempt is still starting (a consumer joining its group): what it starts later is stopped too.
  let running = false;
  let release: () => void = () => undefined;
  const slow = { name: 'slow', start: async () => {
    await new Promise<void>((r) => (release = r));
    running = true;
  }, stop: async () => {
    running = false;
  } };
  const bg3 = new BackgroundStart(slow, { logger: silentLogger, settleMs: 20 });
  await bg3.start();
  await bg3.stop();
  release();
  await sleep(20);
  t.false(running, 'a start that completed after the stop was stopped');

  const never = { name: 'never', start: async () => {
    throw new Error('still down');
  }, stop: async () => undefined };
  const bg2 = new BackgroundStart(never, { logger: silentLogger, initialDelayMs: 10, maxDelayMs: 10 });
  await bg2.start();
  await sleep(50);
  t.is(bg2.problem(), 'still down');
  await bg2.stop();
});

function server(routes: Route[], extra: Partial<Parameters<typeof createHttpServer>[0]> = {}) {
  return createHttpServer({ port: 0, registry: createRegistry(), logger: silentLogger, health: () => ({ ok: true }), routes, ...extra });
}

test('HTTP: routes are admin-only unless declared; biz/app patterns are per application; a route that needs auth needs a server with auth', async (t) => {
  t.throws(() => server([{ method: 'GET', path: '/x', access: 'admin', handle: () => json(200, {}) }]), { message: /need credentials but the server has no auth/ });
  const auth = new Authenticator({ adminToken: TEST_ADMIN_TOKEN, allowedHosts: ['localhost'], failureLimit: 100, blockS: 60, logger: silentLogger });
  const s = server([
    { method: 'GET', path: '/api/v1/undeclared', handle: () => json(200, { ok: true }) },
    { method: 'GET', path: /^\/api\/v1\/apps\/(?<biz>\d+)\/(?<app>[^/]+)\/things$/, handle: (req) => json(200, { who: req.principal?.kind }) },
    { method: 'GET', path: '/open', access: 'public', handle: () => json(200, { open: true }) },
    { method: 'POST', path: '/api/v1/echo', handle: (req) => json(200, { body: req.body }) },
    { method: 'GET', path: '/boom', access: 'public', handle: () => {
      throw Object.assign(new Error('connect ECONNREFUSED 10.9.8.7:5432'), { code: 'ECONNREFUSED' });
    } },
    { method: 'GET', path: '/bug', access: 'public', handle: () => {
      throw new TypeError('cannot read x of undefined at /srv/app.ts:12');
    } },
  ], { auth });
  await s.start();
  t.teardown(() => s.stop());
  const base = `http://127.0.0.1:${s.port()}`;
  t.is((await fetch(`${base}/api/v1/undeclared`)).status, 401);
  t.is((await fetch(`${base}/api/v1/undeclared`, { headers: bearer() })).status, 200);
  t.is((await fetch(`${base}/api/v1/apps/2/shop/things`)).status, 401);
  t.deepEqual(await (await fetch(`${base}/api/v1/apps/2/shop/things`, { headers: bearer() })).json(), { who: 'admin' });
  t.is((await fetch(`${base}/open`)).status, 200);
  t.is((await fetch(`${base}/api/v1/whoami`)).status, 401);
  t.like(await (await fetch(`${base}/api/v1/whoami`, { headers: bearer() })).json(), { kind: 'admin' });
  const plain = await fetch(`${base}/api/v1/echo`, { method: 'POST', headers: bearer(undefined, { 'content-type': 'text/plain' }), body: '{"a":1}' });
  t.is(plain.status, 415);
  t.deepEqual(await (await fetch(`${base}/api/v1/echo`, { method: 'POST', headers: bearer(undefined, { 'content-type': 'application/json' }), body: '{"a":1}' })).json(), { body: { a: 1 } });
  const boom = await fetch(`${base}/boom`);
  t.is(boom.status, 503);
  t.is(boom.headers.get('retry-after'), '1');
  t.deepEqual(await boom.json(), { error: 'a dependency is unavailable, retry later' }, 'no address');
  const bug = await fetch(`${base}/bug`);
  t.is(bug.status, 500);
  t.deepEqual(await bug.json(), { error: 'internal error' }, 'no message or stack of a bug');
});

test('HTTP: liveness stays 200 while readiness follows the probes and the service\'s own health', async (t) => {
  const db = switchable('database');
  let own = true;
  const s = server([], { probes: [db], probeIntervalMs: 50, probeTimeoutMs: 100, health: () => ({ ok: own, checks: { queue: own ? 'ok' : 'full' } }) });
  await s.start();
  t.teardown(() => s.stop());
  const base = `http://127.0.0.1:${s.port()}`;
  t.deepEqual(await (await fetch(`${base}/readyz`)).json(), { status: 'ok', dependencies: { database: 'ok' }, checks: { queue: 'ok' } });
  db.mode = 'fail';
  await sleep(200);
  const down = await fetch(`${base}/readyz`);
  t.is(down.status, 503);
  t.deepEqual(await down.json(), { status: 'unavailable', dependencies: { database: 'unavailable' }, checks: { queue: 'ok' } }, 'what, never where');
  t.is((await fetch(`${base}/healthz`)).status, 503, '/healthz is readiness');
  t.is((await fetch(`${base}/livez`)).status, 200);
  db.mode = 'ok';
  own = false;
  await sleep(120);
  t.is((await fetch(`${base}/readyz`)).status, 503, 'the service\'s own check counts too');
  own = true;
  t.is((await fetch(`${base}/readyz`)).status, 200);
});

test('client messages: outages name the part, our errors their text, anything else nothing', (t) => {
  t.is(clientMessage(new DependencyUnavailableError('database', { cause: new Error('connect ECONNREFUSED 10.0.0.5:5432') })), 'the database is unavailable');
  t.is(clientMessage(new Error('wrapped', { cause: new DependencyUnavailableError('Kafka broker') })), 'the Kafka broker is unavailable');
  t.is(clientMessage(new ValidationError('bad page')), 'bad page');
  t.is(clientMessage(Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' })), 'a dependency is unavailable, retry later');
  t.is(clientMessage(new Error('at /srv/x.ts:1')), 'internal error');
});

test('the store guard names connection failures "the database is unavailable" and passes the rest unchanged', async (t) => {
  const store = await pgliteStore(t, { migrated: false });
  const guarded = guardStore(store);
  t.is(guardStore(guarded), guarded, 'idempotent');
  t.deepEqual((await guarded.query<{ x: number }>('SELECT 1 AS x')).rows, [{ x: 1 }]);
  const syntax = await t.throwsAsync(guarded.query('SELEC nonsense'));
  t.false(syntax instanceof DependencyUnavailableError, 'a bad statement is not an outage');
  const refused = Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
  const failing = guardStore({ ...store, name: 'failing', driver: 'pg', query: () => Promise.reject(refused), exec: () => Promise.reject(refused), transaction: () => Promise.reject(refused) });
  const err = await t.throwsAsync(failing.query('SELECT 1'), { instanceOf: DependencyUnavailableError });
  t.is(err?.message, 'the database is unavailable');
  t.is(err?.cause, refused);
  t.true(isRetriable(err), 'still retriable: consumers retry, clients get 503');
  await t.throwsAsync(failing.transaction(async () => 1), { instanceOf: DependencyUnavailableError });
});
