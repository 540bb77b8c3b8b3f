/**
 * The HTTP API on ORCH_HTTP_PORT (8082), next to `/metrics` and `/healthz`:
 *
 * | method | path | what |
 * | --- | --- | --- |
 * | POST | `/api/v1/flows` | submit a command `{action, flow_type, bk_biz_id, app_name, config, operator?, command_id?}` → 202 |
 * | GET | `/api/v1/flows?status=&flow_type=&bk_biz_id=&app_name=&limit=&offset=` | list flows |
 * | GET | `/api/v1/flows/{bk_biz_id}/{app_name}/{flow_type}` | one flow and its recent step log |
 * | POST | `/api/v1/flows/{bk_biz_id}/{app_name}/{flow_type}/retry` | re-run a failed flow from its failed step |
 * | GET | `/api/v1/breakers` | state of the breaker of each BKData API family |
 *
 * Every route needs an admin token (`Authorization: Bearer`, SECURITY.md); bodies must be JSON. Flow
 * configs come back with their secrets masked. The GSE routing calls are served beside these
 * (gse/http-api.ts).
 */
import { ValidationError } from '../common/errors.ts';
import { json, type Route } from '../common/http.ts';
import type { FlowType } from '../common/records.ts';
import { parseKey, type FlowOperations } from './operations.ts';

const KEY = String.raw`(?<biz>-?\d+)/(?<app>[A-Za-z0-9_.-]+)/(?<type>[a-z_]+)`;

function intQuery(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw new ValidationError(`${name} must be an integer`);
  return Number(v);
}

export function httpRoutes(ops: FlowOperations): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/v1/flows',
      access: 'admin',
      handle: async (req) => json(202, await ops.submit(req.body, 'http')),
    },
    {
      method: 'GET',
      path: '/api/v1/flows',
      access: 'admin',
      handle: async (req) => {
        const q = req.query;
        const flows = await ops.list({
          ...(q.get('status') ? { status: q.get('status') as string } : {}),
          ...(q.get('flow_type') ? { flow_type: q.get('flow_type') as FlowType } : {}),
          ...(q.get('app_name') ? { app_name: q.get('app_name') as string } : {}),
          ...(intQuery(q, 'bk_biz_id') !== undefined ? { bk_biz_id: intQuery(q, 'bk_biz_id') } : {}),
          ...(intQuery(q, 'limit') !== undefined ? { limit: intQuery(q, 'limit') } : {}),
          ...(intQuery(q, 'offset') !== undefined ? { offset: intQuery(q, 'offset') } : {}),
        });
        return json(200, { count: flows.length, flows });
      },
    },
    {
      method: 'GET',
      path: new RegExp(`^/api/v1/flows/${KEY}$`),
      access: 'admin',
      handle: async (req) => json(200, await ops.get(parseKey(req.params.biz, req.params.app, req.params.type), intQuery(req.query, 'steps') ?? 50)),
    },
    {
      method: 'POST',
      path: new RegExp(`^/api/v1/flows/${KEY}/retry$`),
      access: 'admin',
      handle: async (req) => json(200, { flow: await ops.retry(parseKey(req.params.biz, req.params.app, req.params.type)) }),
    },
    {
      method: 'GET',
      path: '/api/v1/breakers',
      access: 'admin',
      handle: () => json(200, ops.breakers()),
    },
  ];
}
