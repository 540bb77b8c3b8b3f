/**
 * The discovery query API attacked as issue 16 found it ("serves any application's data to anyone"),
 * each attack beside the legitimate call: no token, another application's token, a made-up or disabled
 * one, guessing, DNS rebinding; an application's own token and an admin token read.
 */
import test from 'ava';
import { createApplication } from '../../services/collector/applications.ts';
import { brokerKit } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { bearer } from '../common/auth-kit.ts';
import { rawRequest } from '../common/http-kit.ts';
import { discoveryTopics, startDiscovery } from './helpers.ts';

test.serial('the query API: per-application read access (its own token or an admin token); everything else 401/403/429', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await discoveryTopics(t, kit, 1);
  const run = await startDiscovery(t, kit, store, where, { BKSTREAM_AUTH_FAILURE_LIMIT: '5', BKSTREAM_ALLOWED_HOSTS: 'localhost,discovery.bkstream.svc' });
  const shop = await createApplication(store, { bkBizId: 2, appName: 'shop' });
  const other = await createApplication(store, { bkBizId: 2, appName: 'other' });
  const gone = await createApplication(store, { bkBizId: 2, appName: 'gone' });
  await store.query('UPDATE apm_application SET is_enabled = false WHERE id = $1', [gone.application.id]);
  const url = run.url('/api/v1/apps/2/shop/endpoints');
  const status = async (headers: Record<string, string> = {}): Promise<number> => (await fetch(url, { headers })).status;

  // Attacks
  const anonymous = await fetch(url);
  t.is(anonymous.status, 401, 'no token');
  t.is(((await anonymous.json()) as { code: string }).code, 'unauthenticated');
  t.is(await status(bearer(other.token)), 403, "another application's token");
  t.is(await status({ 'x-bk-token': other.token }), 403, 'the same in x-bk-token');
  t.is(await status(bearer(gone.token)), 401, 'a disabled application');
  t.is(await status(bearer('bkst_made-up')), 401, 'a made-up token');
  t.is((await fetch(`${url}?X-BK-TOKEN=${shop.token}`)).status, 401, 'never a token in the URL (it would be logged)');
  const port = Number(new URL(url).port);
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/endpoints', headers: { ...bearer(shop.token), host: `rebound.attacker.example:${port}` } })).status, 403, 'DNS rebinding: foreign Host');
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/endpoints', headers: { ...bearer(shop.token), origin: 'https://attacker.example' } })).status, 403, 'a foreign page');

  // Legitimate
  t.is(await status(bearer(shop.token)), 200, "the application's own token");
  t.is(await status({ 'x-bk-token': shop.token }), 200);
  t.is(await status(bearer()), 200, 'an admin token');
  t.is((await fetch(run.url('/api/v1/apps/2/other/nodes'), { headers: bearer(other.token) })).status, 200);
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/endpoints', headers: { ...bearer(shop.token), host: `discovery.bkstream.svc:${port}` } })).status, 200, 'a configured host name');
  for (const path of ['/metrics', '/livez', '/readyz', '/healthz']) t.is((await fetch(run.url(path))).status, 200, `${path} is public`);

  // Guessing: after BKSTREAM_AUTH_FAILURE_LIMIT failures the address waits, whatever it sends.
  for (let i = 0; i < 3; i++) t.is(await status(bearer(`bkst_guess-${i}`)), 401);
  const blocked = await fetch(url, { headers: bearer(shop.token) });
  t.is(blocked.status, 429, 'blocked after 5 failures (2 above and 3 guesses)');
  t.truthy(blocked.headers.get('retry-after'));
});
