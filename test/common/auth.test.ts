/**
 * common/auth.ts without a network: host checks, token extraction, the authenticator's rules, failure
 * limits and cache against a recording store; admin tokens in a migrated store.
 */
import test from 'ava';
import { Authenticator, createAdminToken, ensureBootstrapAdminToken, hashToken, hostAllowed, hostOf, listAdminTokens, revokeAdminToken, tokenFromHeaders } from '../../services/common/auth.ts';
import { DependencyUnavailableError, ForbiddenError, TooManyRequestsError, UnauthenticatedError } from '../../services/common/errors.ts';
import { silentLogger } from '../../services/common/log.ts';
import type { Queryable, QueryResult } from '../../services/common/store/index.ts';
import { pgliteStore } from '../helpers/store.ts';

test('hosts: IP addresses always, names only when allowed (exactly, or as a .domain suffix)', (t) => {
  const allowed = ['localhost', '.svc.cluster.local'];
  for (const h of ['127.0.0.1', '10.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST', 'collector.bkstream.svc.cluster.local', 'svc.cluster.local']) t.true(hostAllowed(h, allowed), h);
  for (const h of ['', 'attacker.example', 'localhost.attacker.example', 'evilsvc.cluster.local.attacker', 'xsvc.cluster.local']) t.false(hostAllowed(h, allowed), h);
  t.is(hostOf('example.org:8080'), 'example.org');
  t.is(hostOf('[::1]:4310'), '[::1]');
  t.is(hostOf('plain'), 'plain');
});

test('tokens come from Authorization: Bearer or x-bk-token, nothing else', (t) => {
  t.is(tokenFromHeaders({ authorization: 'Bearer abc' }), 'abc');
  t.is(tokenFromHeaders({ authorization: 'bearer  abc ' }), 'abc');
  t.is(tokenFromHeaders({ 'x-bk-token': 'xyz' }), 'xyz');
  t.is(tokenFromHeaders({ authorization: 'Basic Ym9iOnB3' }), undefined);
  t.is(tokenFromHeaders({}), undefined);
});

/** A store answering the authenticator's one lookup from a map of hash → row; `fail` makes it throw. */
function fakeStore(rows: Record<string, { kind: 'admin' | 'app'; id: number; name: string; bk_biz_id: number | null; app_name: string | null }>) {
  const state = { fail: false, lookups: 0 };
  const store: Queryable = {
    async query<R>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>> {
      if (sql.startsWith('UPDATE')) return { rows: [], rowCount: 1 };
      state.lookups++;
      if (state.fail) throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.5:5432'), { code: 'ECONNREFUSED' });
      const row = rows[String(params?.[0])];
      return { rows: (row ? [row] : []) as R[], rowCount: row ? 1 : 0 };
    },
    async exec() {},
  };
  return { store, state };
}

test('access rules: admin tokens everywhere, application tokens only for their application', async (t) => {
  const { store } = fakeStore({
    [hashToken('adm')]: { kind: 'admin', id: 1, name: 'ops', bk_biz_id: null, app_name: null },
    [hashToken('shop')]: { kind: 'app', id: 7, name: '', bk_biz_id: 2, app_name: 'shop' },
  });
  const auth = new Authenticator({ store, adminToken: 'configured-admin-token-0123456789abcdef', allowedHosts: [], failureLimit: 100, blockS: 60, logger: silentLogger });
  const shop = { bkBizId: 2, appName: 'shop' };
  t.like(await auth.authorize('adm', 'c', 'admin'), { kind: 'admin', name: 'ops' });
  t.like(await auth.authorize('configured-admin-token-0123456789abcdef', 'c', 'admin'), { kind: 'admin', id: 'configured' });
  t.like(await auth.authorize('adm', 'c', 'app', shop), { kind: 'admin' });
  t.like(await auth.authorize('shop', 'c', 'app', shop), { kind: 'app', bkBizId: 2, appName: 'shop' });
  t.like(await auth.authorize('shop', 'c', 'authenticated'), { kind: 'app' });
  await t.throwsAsync(auth.authorize('shop', 'c', 'admin'), { instanceOf: ForbiddenError });
  await t.throwsAsync(auth.authorize('shop', 'c', 'app', { bkBizId: 2, appName: 'other' }), { instanceOf: ForbiddenError });
  await t.throwsAsync(auth.authorize('shop', 'c', 'app', { bkBizId: 3, appName: 'shop' }), { instanceOf: ForbiddenError });
  await t.throwsAsync(auth.authorize(undefined, 'c', 'admin'), { instanceOf: UnauthenticatedError });
  await t.throwsAsync(auth.authorize('nope', 'c', 'admin'), { instanceOf: UnauthenticatedError });
  await t.throwsAsync(auth.authorize('x'.repeat(600), 'c', 'admin'), { instanceOf: UnauthenticatedError });
});

test('failed authentications: past the limit an address is refused for the block time, others are not', async (t) => {
  let now = 1_000_000;
  const { store, state } = fakeStore({ [hashToken('adm')]: { kind: 'admin', id: 1, name: 'ops', bk_biz_id: null, app_name: null } });
  const auth = new Authenticator({ store, allowedHosts: [], failureLimit: 3, blockS: 30, logger: silentLogger, now: () => now, missTtlMs: 0 });
  for (let i = 0; i < 3; i++) await t.throwsAsync(auth.authorize(`guess-${i}`, 'evil', 'admin'), { instanceOf: UnauthenticatedError });
  const lookups = state.lookups;
  const blocked = await t.throwsAsync(auth.authorize('adm', 'evil', 'admin'), { instanceOf: TooManyRequestsError });
  t.is(blocked?.retryAfterS, 30);
  t.is(state.lookups, lookups, 'no lookup while blocked');
  await t.throwsAsync(auth.authorize(undefined, 'evil', 'admin'), { instanceOf: TooManyRequestsError });
  t.like(await auth.authorize('adm', 'friend', 'admin'), { kind: 'admin' }, 'another address is not affected');
  now += 31_000;
  t.like(await auth.authorize('adm', 'evil', 'admin'), { kind: 'admin' }, 'after the block');
  await t.throwsAsync(auth.authorize(undefined, 'quiet', 'admin'), { instanceOf: UnauthenticatedError });
  await t.throwsAsync(auth.authorize(undefined, 'quiet', 'admin'), { instanceOf: UnauthenticatedError });
  await t.throwsAsync(auth.authorize(undefined, 'quiet', 'admin'), { instanceOf: UnauthenticatedError });
  await t.throwsAsync(auth.authorize(undefined, 'quiet', 'admin'), { instanceOf: UnauthenticatedError }, 'a missing token is not a guess: never blocked for it');
});

test('a store that cannot answer is a named outage (503), not cached; clear() forgets revoked tokens', async (t) => {
  const rows: Parameters<typeof fakeStore>[0] = { [hashToken('adm')]: { kind: 'admin', id: 1, name: 'ops', bk_biz_id: null, app_name: null } };
  const { store, state } = fakeStore(rows);
  const auth = new Authenticator({ store, allowedHosts: [], failureLimit: 100, blockS: 60, logger: silentLogger });
  state.fail = true;
  const err = await t.throwsAsync(auth.authorize('adm', 'c', 'admin'), { instanceOf: DependencyUnavailableError });
  t.is(err?.message, 'the database is unavailable');
  state.fail = false;
  t.like(await auth.authorize('adm', 'c', 'admin'), { kind: 'admin' }, 'the failure was not cached');
  delete rows[hashToken('adm')];
  t.like(await auth.authorize('adm', 'c', 'admin'), { kind: 'admin' }, 'cached for the TTL');
  auth.clear();
  await t.throwsAsync(auth.authorize('adm', 'c', 'admin'), { instanceOf: UnauthenticatedError });
});

test('admin tokens in the store: created once with a hash, bootstrap only on the first run, revocation keeps the last one', async (t) => {
  const store = await pgliteStore(t, { migrated: true });
  const first = await ensureBootstrapAdminToken(store);
  t.regex(first ?? '', /^bkadm_[A-Za-z0-9_-]{43}$/);
  t.is(await ensureBootstrapAdminToken(store), undefined, 'printed once: not again on the next run');
  const listed = await listAdminTokens(store);
  t.deepEqual(listed.map((x) => [x.name, x.hint]), [['bootstrap', (first ?? '').slice(0, 12)]]);
  const { rows } = await store.query<{ token_hash: string }>('SELECT token_hash FROM bkstream_admin_token');
  t.is(rows[0]?.token_hash, hashToken(first ?? ''));
  await t.throwsAsync(revokeAdminToken(store, listed[0]?.id ?? 0), { message: /last active admin token/ });
  const next = await createAdminToken(store, 'ops');
  t.like(await revokeAdminToken(store, listed[0]?.id ?? 0), { name: 'bootstrap' });
  await t.throwsAsync(createAdminToken(store, 'bad name!'), { message: /name must be/ });
  await t.throwsAsync(revokeAdminToken(store, 999, true), { message: /no admin token 999/ });
  const auth = new Authenticator({ store, allowedHosts: [], failureLimit: 10, blockS: 60, logger: silentLogger });
  t.like(await auth.authorize(next.token, 'c', 'admin'), { kind: 'admin', name: 'ops' });
  await t.throwsAsync(auth.authorize(first ?? '', 'c', 'admin'), { instanceOf: UnauthenticatedError }, 'revoked');
});
