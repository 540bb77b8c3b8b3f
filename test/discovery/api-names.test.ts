/** Listing and filter names are looked up as own keys: names of Object.prototype's properties are unknown, not 500s. */
import test from 'ava';
import { queryRoutes } from '../../services/discovery/api.ts';
import type { HttpRequest } from '../../services/common/http.ts';
import type { Queryable } from '../../services/common/store/index.ts';
import { NotFoundError, ValidationError } from '../../services/common/errors.ts';

const db: Queryable = {
  query: async () => ({ rows: [], rowCount: 0 }),
  exec: async () => undefined,
};

function request(kind: string, query = ''): HttpRequest {
  return { method: 'GET', path: `/api/v1/apps/2/shop/${kind}`, query: new URLSearchParams(query), params: { biz: '2', app: 'shop', kind }, headers: {}, body: undefined, raw: undefined as never };
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
