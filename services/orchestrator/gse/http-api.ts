/**
 * The GSE routing API on the orchestrator's HTTP port, under both path families bk-monitor calls
 * (`api/gse/default.py`), every call a POST with a JSON body:
 *
 * | family | path |
 * | --- | --- |
 * | legacy ESB | `/api/c/compapi/v2/gse/config_{add,update,delete,query}_{streamto,route}/` |
 * | API gateway | `/api/v2/data/{add,update,delete,query}_{streamto,route}` (also under `/api/bk-gse/prod`, the reference's default gateway base) |
 *
 * Answers are ESB envelopes `{result, code, message, data, request_id}`. A refused call (bad input, not
 * found, conflict) answers HTTP 200 with `result: false`, a non-zero `code` and a message naming the field,
 * as the reference's gateway passes GSE's answers on (bk-monitor reads `result` and `message`); a store
 * outage answers 503 and anything unexpected 500, both in the same envelope. Every route needs an admin
 * token (the server's 401/403/415 keep the server's own shape).
 */
import { randomUUID } from 'node:crypto';
import { BkError, clientMessage, edgeStatusOf, errorClass } from '../../common/errors.ts';
import { json, type HttpResponse, type Route } from '../../common/http.ts';
import type { Logger } from '../../common/log.ts';
import type { OrchestratorMetrics } from '../metrics.ts';
import type { GseApiName, GseRegistry } from './registry.ts';
import { GseRequestError } from './requests.ts';

/** The `code` of each outcome (bkstream's own numbers; the reference's callers only read `result`). */
export const GSE_CODES = {
  ok: 0,
  invalid: 1_300_400,
  not_found: 1_300_404,
  conflict: 1_300_409,
  internal: 1_300_500,
  unavailable: 1_300_503,
} as const;

export type GseOutcome = keyof typeof GSE_CODES;

const OPS = 'add|update|delete|query';
const OBJECTS = 'streamto|route';
const ESB_PATH = new RegExp(`^/api/c/compapi/v2/gse/config_(?<op>${OPS})_(?<obj>${OBJECTS})/?$`);
const APIGW_PATH = new RegExp(`^(?:/api/bk-gse/prod)?/api/v2/data/(?<op>${OPS})_(?<obj>${OBJECTS})/?$`);

export function envelope(outcome: GseOutcome, message: string, data: unknown): Record<string, unknown> {
  return { result: outcome === 'ok', code: GSE_CODES[outcome], message, data, request_id: randomUUID().replace(/-/g, '') };
}

/** The outcome and HTTP status of a failed call. */
function failure(err: unknown): { outcome: GseOutcome; status: number } {
  if (err instanceof GseRequestError) return { outcome: 'invalid', status: 200 };
  if (err instanceof BkError && err.code === 'not_found') return { outcome: 'not_found', status: 200 };
  if (err instanceof BkError && err.code === 'conflict') return { outcome: 'conflict', status: 200 };
  if (err instanceof BkError && err.code === 'invalid_argument') return { outcome: 'invalid', status: 200 };
  const status = edgeStatusOf(err).http;
  return status === 503 ? { outcome: 'unavailable', status } : { outcome: 'internal', status: 500 };
}

export function gseRoutes(registry: GseRegistry, metrics: Pick<OrchestratorMetrics, 'gseCalls'>, logger: Logger): Route[] {
  const log = logger.child({ component: 'gse-api' });
  const handle = async (params: Record<string, string>, body: unknown): Promise<HttpResponse> => {
    const api = `${params.op}_${params.obj}` as GseApiName;
    try {
      const data = await registry.call(api, body);
      metrics.gseCalls.inc({ api, outcome: 'ok' });
      return json(200, envelope('ok', 'success', data));
    } catch (err) {
      const { outcome, status } = failure(err);
      metrics.gseCalls.inc({ api, outcome });
      if (status >= 500) log.error('GSE API call failed', { api, error: errorClass(err), err });
      return json(status, envelope(outcome, clientMessage(err), null));
    }
  };
  return [
    { method: 'POST', path: ESB_PATH, access: 'admin', handle: (req) => handle(req.params, req.body) },
    { method: 'POST', path: APIGW_PATH, access: 'admin', handle: (req) => handle(req.params, req.body) },
  ];
}
