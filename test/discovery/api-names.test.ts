/**
 * Listing and filter names are looked up as own keys: names of Object.prototype's properties are unknown, not 500s.
 * An application that is not registered is a 404 naming it, not an empty page.
 */
import test from 'ava';
import { queryRoutes } from '../../services/discovery/api.ts';
import type { HttpRequest } from '../../services/common/http.ts';
import type { Queryable } from '../../services/common/store/index.ts';
import { NotFoundError, ValidationError } from '../../services/common/errors.ts';

/** A store where only the application 2/shop is registered, with nothing discovered. */
const db: Queryable = {
  query: async <R>(sql: string, params?: readonly unknown[]) => {
    const registered = sql.includes('FROM apm_application') && params?.[0] === 2 && params[1] === 'shop';
    return { rows: (registered ? [{ days: 7 }] : []) as R[], rowCount: registered ? 1 : 0 };
  },
  exec: async () => undefined,
};

function request(kind: string, query = '', app = 'shop'): HttpRequest {
  return { method: 'GET', path: `/api/v1/apps/2/${app}/${kind}`, query: new URLSearchParams(query), params: { biz: '2', app, kind }, headers: {}, body: undefined, raw: undefined as never };
}

const route = queryRoutes({ db, defaultRetentionDays: 7, topoNodeRetentionDays: 180, maxPageSize: 100 }).find((r) => r.method === 'GET');

test('a listing named like an Object.prototype property is a 404', async (t) => {
  for (const kind of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
    await t.throwsAsync(Promise.resolve(route?.handle(request(kind))), { instanceOf: NotFoundError }, kind);
  }
});

test('a filter named like an Object.prototype property is a 400 naming it', async (t) => {
  for (const name of ['constructor', 'toString', 'valueOf']) {
    await t.throwsAsync(Promise.resolve(route?.handle(request('endpoints', `${name}=null`))), { instanceOf: ValidationError, message: new RegExp(`unknown filter ${name}`) });
  }
});

test('an application that is not registered is a 404 naming it, for every listing', async (t) => {
  for (const kind of ['endpoints', 'nodes', 'relations']) {
    await t.throwsAsync(Promise.resolve(route?.handle(request(kind, '', 'ghost'))), { instanceOf: NotFoundError, message: 'no application ghost in business 2' }, kind);
    const known = await route?.handle(request(kind));
    t.like(known, { status: 200, body: { total: 0, page: 1, items: [] } }, kind);
  }
});
