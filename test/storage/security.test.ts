/**
 * The storage query API attacked as issue 16 found discovery's ("serves any application's data to
 * anyone"), each attack beside the legitimate call: no token, another application's token, a made-up one,
 * an application's token on the routes that are not its own (another application's trace by id, the
 * application list, agent metrics and events), a foreign Host or Origin, a non-JSON body; an application's
 * own token and an admin token read.
 */
import test from 'ava';
import { createApplication } from '../../services/collector/applications.ts';
import { bearer } from '../common/auth-kit.ts';
import { rawRequest } from '../common/http-kit.ts';
import { brokerKit } from '../helpers/kafka.ts';
import { pgliteStore } from '../helpers/store.ts';
import { startStorage, storageTopics } from './kit.ts';

test.serial('the query API: an application reads its own data with its token, the rest needs an admin token; everything else 401/403/415', async (t) => {
  const kit = await brokerKit(t);
  const store = await pgliteStore(t, { migrated: true });
  const where = await storageTopics(t, kit, 1);
  const run = await startStorage(t, kit, store, where, { BKSTREAM_ALLOWED_HOSTS: 'localhost,storage.bkstream.svc' });
  const shop = await createApplication(store, { bkBizId: 2, appName: 'shop' });
  const other = await createApplication(store, { bkBizId: 2, appName: 'other' });
  const traces = `${run.url}/api/v1/apps/2/shop/traces?limit=5`;
  const status = async (url: string, headers: Record<string, string> = {}): Promise<number> => (await fetch(url, { headers })).status;

  // Attacks
  const anonymous = await fetch(traces);
  t.is(anonymous.status, 401, 'no token');
  t.is(((await anonymous.json()) as { code: string }).code, 'unauthenticated');
  t.is(await status(traces, bearer(other.token)), 403, "another application's token");
  t.is(await status(traces, bearer('bkst_made-up')), 401, 'a made-up token');
  t.is(await status(`${run.url}/api/v1/traces/${'a'.repeat(32)}`, bearer(shop.token)), 403, 'a trace by id across applications needs an admin token');
  t.is(await status(`${run.url}/api/v1/apps`, bearer(shop.token)), 403, 'the application list');
  t.is(await status(`${run.url}/api/v1/events?limit=1`, bearer(shop.token)), 403, "agents' events");
  t.is(await status(`${run.url}/api/v1/metrics/query?name=load1`, bearer(shop.token)), 403, "agents' metrics");
  t.is(await status(`${run.url}/api/v1/events?limit=1`), 401);
  const form = await fetch(`${run.url}/api/v1/apps/2/shop/traces`, { method: 'POST', headers: bearer(shop.token, { 'content-type': 'text/plain' }), body: '{"limit":1}' });
  t.is(form.status, 415, 'a body that is not JSON is not read');
  const port = Number(new URL(run.url).port);
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/traces', headers: { ...bearer(shop.token), host: `rebound.attacker.example:${port}` } })).status, 403, 'DNS rebinding: foreign Host');
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/traces', headers: { ...bearer(shop.token), origin: 'https://attacker.example' } })).status, 403, 'a foreign page');

  // Legitimate
  t.is(await status(traces, bearer(shop.token)), 200, "the application's own token");
  t.is(await status(traces, { 'x-bk-token': shop.token }), 200);
  const search = await fetch(`${run.url}/api/v1/apps/2/shop/traces`, { method: 'POST', headers: bearer(shop.token, { 'content-type': 'application/json' }), body: '{"limit":1}' });
  t.is(search.status, 200, 'a JSON search with its token');
  t.is(await status(traces, bearer()), 200, 'an admin token');
  t.is(await status(`${run.url}/api/v1/apps`, bearer()), 200);
  t.is(await status(`${run.url}/api/v1/events?limit=1`, bearer()), 200);
  t.is((await rawRequest(port, { path: '/api/v1/apps/2/shop/traces', headers: { ...bearer(shop.token), host: `storage.bkstream.svc:${port}` } })).status, 200, 'a configured host name');
  for (const path of ['/metrics', '/livez', '/readyz', '/healthz']) t.is(await status(`${run.url}${path}`), 200, `${path} is public`);
});
