/**
 * The BKData (bk-base) REST client for the APIs the APM flows use (README, Interfaces): the same paths
 * and methods as the reference's, URL = base + path with `{placeholders}` filled from the parameters
 * (which are still sent), GET parameters in the query string and the rest as a JSON body, the envelope
 * `{result, code, message, errors, data}` unwrapped to `data`.
 *
 * Errors are mapped onto the taxonomy of services/common/errors.ts, which is what the per-family
 * breakers and the step retries act on:
 * - network failures, timeouts, HTTP 5xx and 429, and a 2xx body that is not JSON →
 *   {@link BkdataApiError} with `retriable: true` (the dependency is unwell; counts against its breaker);
 * - HTTP 4xx, an envelope whose `result` is falsy and whose `code` is not 0 (the reference's test: a body
 *   without `result` is a success), and the permission centre's codes → `retriable: false` (a business
 *   error: never retried as such and never counted against the breaker).
 *
 * There are no retries here: retries and breakers belong to the caller (reference: "no retries at
 * client level").
 */
import { BkError, isRetriable } from '../common/errors.ts';
import { SerializerError, serializeRequest } from './bkdata-serializers.ts';

export const FAMILIES = ['access', 'databus', 'auth', 'dataflow', 'resourcecenter'] as const;
/** An API family: one circuit breaker each. */
export type Family = (typeof FAMILIES)[number];

export interface ApiDef {
  family: Family;
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  /** Changes state on the BKData side. */
  write: boolean;
}

/** Client name (the reference's: snake_case of its resource class) → method and path (the reference's API table). */
export const BKDATA_APIS = {
  access_deploy_plan: { family: 'access', method: 'POST', path: '/v3/access/deploy_plan/', write: true },
  update_deploy_plan: { family: 'access', method: 'PUT', path: '/v3/access/deploy_plan/{raw_data_id}', write: true },
  // Not used by the reference's flows: lists raw data by business and name, to adopt a raw data whose
  // create call's answer was lost (timeout, crash). The path is the list of the reference's
  // get_bkbase_raw_data_with_data_id (v3/access/rawdata/{id}/).
  list_raw_data: { family: 'access', method: 'GET', path: '/v3/access/rawdata/', write: false },
  databus_cleans: { family: 'databus', method: 'POST', path: '/v3/databus/cleans/', write: true },
  get_databus_cleans: { family: 'databus', method: 'GET', path: '/v3/databus/cleans/', write: false },
  update_databus_cleans: { family: 'databus', method: 'PUT', path: '/v3/databus/cleans/{processing_id}/', write: true },
  start_databus_cleans: { family: 'databus', method: 'POST', path: '/v3/databus/tasks/', write: true },
  stop_databus_cleans: { family: 'databus', method: 'DELETE', path: '/v3/databus/tasks/{result_table_id}/', write: true },
  auth_projects_data_check: { family: 'auth', method: 'POST', path: '/v3/auth/projects/{project_id}/data/check/', write: false },
  auth_result_table: { family: 'auth', method: 'POST', path: '/v3/auth/projects/{project_id}/data/add/', write: true },
  get_data_flow_list: { family: 'dataflow', method: 'GET', path: '/v3/dataflow/flow/flows', write: false },
  get_data_flow: { family: 'dataflow', method: 'GET', path: '/v3/dataflow/flow/flows/{flow_id}', write: false },
  get_data_flow_graph: { family: 'dataflow', method: 'GET', path: '/v3/dataflow/flow/flows/{flow_id}/graph', write: false },
  create_data_flow: { family: 'dataflow', method: 'POST', path: '/v3/dataflow/flow/flows/', write: true },
  add_data_flow_node: { family: 'dataflow', method: 'POST', path: '/v3/dataflow/flow/flows/{flow_id}/nodes/', write: true },
  update_data_flow_node: { family: 'dataflow', method: 'PUT', path: '/v3/dataflow/flow/flows/{flow_id}/nodes/{node_id}', write: true },
  delete_data_flow_node: { family: 'dataflow', method: 'DELETE', path: '/v3/dataflow/flow/flows/{flow_id}/nodes/{node_id}/', write: true },
  start_data_flow: { family: 'dataflow', method: 'POST', path: '/v3/dataflow/flow/flows/{flow_id}/start/', write: true },
  stop_data_flow: { family: 'dataflow', method: 'POST', path: '/v3/dataflow/flow/flows/{flow_id}/stop/', write: true },
  restart_data_flow: { family: 'dataflow', method: 'POST', path: '/v3/dataflow/flow/flows/{flow_id}/restart/', write: true },
  delete_data_flow: { family: 'dataflow', method: 'DELETE', path: '/v3/dataflow/flow/flows/{flow_id}/', write: true },
  get_latest_deploy_data_flow: { family: 'dataflow', method: 'GET', path: '/v3/dataflow/flow/flows/{flow_id}/latest_deploy_data/', write: false },
  query_resource_list: { family: 'resourcecenter', method: 'GET', path: '/v3/resourcecenter/clusters/query_digest/', write: false },
  get_or_create_resource_set: { family: 'resourcecenter', method: 'POST', path: '/v3/resourcecenter/resource_sets/get_or_create/', write: true },
  update_resource_set: { family: 'resourcecenter', method: 'PATCH', path: '/v3/resourcecenter/resource_sets/{resource_set_id}/', write: true },
  get_resource_set: { family: 'resourcecenter', method: 'GET', path: '/v3/resourcecenter/resource_sets/{resource_set_id}/', write: false },
} as const satisfies Record<string, ApiDef>;

export type ApiName = keyof typeof BKDATA_APIS;
export type Params = Record<string, unknown>;

/** A failed BKData call. `retriable` says whether it is the dependency's health (true) or a business error. */
export class BkdataApiError extends BkError {
  readonly api: ApiName;
  /** HTTP status, when a response arrived. */
  readonly httpStatus: number | undefined;
  /** The envelope's `code`, when there was one. */
  readonly bkCode: string | undefined;

  constructor(api: ApiName, message: string, retriable: boolean, extra: { httpStatus?: number; bkCode?: string; cause?: unknown } = {}) {
    super(retriable ? 'bkdata_unavailable' : 'bkdata_business', `${api}: ${message}`, retriable, {
      cause: extra.cause,
      details: { api, family: BKDATA_APIS[api].family, http_status: extra.httpStatus, bk_code: extra.bkCode },
    });
    this.api = api;
    this.httpStatus = extra.httpStatus;
    this.bkCode = extra.bkCode;
  }
}

/** A business error of BKData (4xx, `result=false`): the reference's `BKAPIError`, never counted against a breaker. */
export function isBusinessError(err: unknown): boolean {
  return !isRetriable(err) && err instanceof BkdataApiError;
}

/** BKData's code for "not found". */
const NOT_FOUND_CODE = '1500404';

/** A business error that means "that object is gone". */
export function isNotFound(err: unknown): boolean {
  return isBusinessError(err) && ((err as BkdataApiError).bkCode === NOT_FOUND_CODE || (err as BkdataApiError).httpStatus === 404);
}

export interface BkdataClientOptions {
  /** BKDATA_API_URL, e.g. `http://127.0.0.1:8090/` or `https://paas/api/bk-base/prod/`. */
  baseUrl: string;
  /** Sent as `bk_app_code` with every request. */
  appCode: string;
  /** When set, sent in the API gateway header `X-Bkapi-Authorization` with the app code and user. */
  appSecret?: string | undefined;
  /** `bk_username` of requests that do not carry one. */
  username: string;
  /** Per-request timeout, ms. */
  timeoutMs: number;
  /** Sent in `X-Bk-Tenant-Id` with every request (reference: the tenant id, `system` when single-tenant). Default `system`. */
  tenantId?: string | undefined;
  /** Sent in `blueking-language` with every request (reference: the active language, `zh-hans` by default); empty: no header. Default `zh-hans`. */
  language?: string | undefined;
}

/** The tenant of a single-tenant BlueKing (reference `DEFAULT_TENANT_ID`). */
export const DEFAULT_TENANT_ID = 'system';
/** The reference's `LANGUAGE_CODE`. */
export const DEFAULT_LANGUAGE = 'zh-hans';
/** Headers the reference's API layer puts on every request: the tenant and the language. */
export const TENANT_HEADER = 'X-Bk-Tenant-Id';
export const LANGUAGE_HEADER = 'blueking-language';

/** A parameter as text: strings as they are, numbers and booleans printed, anything else as JSON. */
function asText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  return JSON.stringify(v);
}

/** Header with the time a request was sent (ms since the epoch): lets the server side see queueing delay. */
export const SENT_AT_HEADER = 'X-Bkstream-Sent-At';

export class BkdataClient {
  readonly #base: string;
  readonly #options: BkdataClientOptions;

  constructor(options: BkdataClientOptions) {
    this.#options = options;
    this.#base = options.baseUrl.replace(/\/+$/, '');
  }

  /** The full URL of an API call (placeholders filled, GET parameters in the query string). */
  url(api: ApiName, params: Params): string {
    return this.#urlOf(api, this.payload(api, params));
  }

  #urlOf(api: ApiName, payload: Params): string {
    const def = BKDATA_APIS[api];
    const path = def.path.replace(/\{(\w+)\}/g, (_, name: string) => {
      const v = payload[name];
      if (v === undefined || v === null || v === '') throw new BkdataApiError(api, `parameter ${name} is required by ${def.path}`, false);
      return encodeURIComponent(asText(v));
    });
    const url = `${this.#base}${path}`;
    if (def.method !== 'GET') return url;
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(payload)) {
      if (v === undefined || v === null) continue;
      q.append(k, asText(v));
    }
    const qs = q.toString();
    return qs ? `${url}?${qs}` : url;
  }

  /**
   * What a call sends (query string or JSON body), as the reference's API layer makes it: the parameters
   * through the API's request serializer (bkdata-serializers.ts: undeclared fields dropped, values coerced,
   * defaults such as `appenv` added), then `bk_username` (the call's, which survives its serializer, or
   * the operator) and `bk_app_code`. A value the serializer refuses is a business error of the call.
   */
  payload(api: ApiName, params: Params): Params {
    let serialized: Params;
    try {
      serialized = serializeRequest(api, params);
    } catch (err) {
      if (err instanceof SerializerError) throw new BkdataApiError(api, `invalid parameters: ${err.message}`, false, { cause: err });
      throw err;
    }
    return { ...serialized, bk_username: params.bk_username ?? this.#options.username, bk_app_code: this.#options.appCode };
  }

  /** One call; resolves with the envelope's `data`. `signal` cancels it (the breaker's timeout). */
  async request<T = unknown>(api: ApiName, params: Params = {}, signal?: AbortSignal): Promise<T> {
    const def = BKDATA_APIS[api];
    const payload = this.payload(api, params);
    const url = this.#urlOf(api, payload);
    const timeout = AbortSignal.timeout(this.#options.timeoutMs);
    const headers: Record<string, string> = { accept: 'application/json', [SENT_AT_HEADER]: String(Date.now()), [TENANT_HEADER]: this.#options.tenantId ?? DEFAULT_TENANT_ID };
    const language = this.#options.language ?? DEFAULT_LANGUAGE;
    if (language !== '') headers[LANGUAGE_HEADER] = language;
    if (this.#options.appSecret) {
      headers['X-Bkapi-Authorization'] = JSON.stringify({ bk_app_code: this.#options.appCode, bk_app_secret: this.#options.appSecret, bk_username: this.#options.username });
    }
    let body: string | undefined;
    if (def.method !== 'GET') {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(payload);
    }
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method: def.method, headers, body, signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
      text = await res.text();
    } catch (err) {
      if (timeout.aborted) throw new BkdataApiError(api, `timed out after ${this.#options.timeoutMs} ms`, true, { cause: err });
      if (signal?.aborted) throw new BkdataApiError(api, 'cancelled', true, { cause: err });
      const code = (err as { cause?: { code?: string } }).cause?.code;
      throw new BkdataApiError(api, `request failed${code ? ` (${code})` : ''}: ${(err as Error).message}`, true, { cause: err });
    }
    let parsed: unknown;
    let isJson = true;
    try {
      parsed = JSON.parse(text);
    } catch {
      isJson = false;
    }
    const envelope = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as { result?: unknown; code?: unknown; message?: unknown; data?: unknown }) : undefined;
    const bkCode = envelope?.code === undefined || envelope.code === null ? undefined : asText(envelope.code);
    const message = typeof envelope?.message === 'string' && envelope.message !== '' ? envelope.message : text.slice(0, 200);
    if (res.status >= 500 || res.status === 429) {
      throw new BkdataApiError(api, `HTTP ${res.status}: ${message}`, true, { httpStatus: res.status, ...(bkCode ? { bkCode } : {}) });
    }
    if (res.status >= 400) {
      throw new BkdataApiError(api, `HTTP ${res.status}: ${message}`, false, { httpStatus: res.status, ...(bkCode ? { bkCode } : {}) });
    }
    if (!isJson) {
      throw new BkdataApiError(api, `HTTP ${res.status} without a BKData envelope: ${text.slice(0, 200)}`, true, { httpStatus: res.status });
    }
    // JSON that is not an object is the answer itself (the reference hands it on as it is).
    if (!envelope) return parsed as T;
    if (bkCode !== undefined && PERMISSION_DENIED_CODES.has(bkCode)) {
      throw new BkdataApiError(api, `permission denied (code ${bkCode}): ${message}`, false, { httpStatus: res.status, bkCode });
    }
    if (isEnvelopeError(envelope)) {
      throw new BkdataApiError(api, `result=${JSON.stringify(envelope.result ?? null)} (code ${bkCode ?? '?'}): ${message}`, false, { httpStatus: res.status, ...(bkCode ? { bkCode } : {}) });
    }
    return envelope.data as T;
  }
}

/** Codes of the permission centre's "no permission" answer: errors whatever `result` says (reference `APIPermissionDeniedCodeList`). */
const PERMISSION_DENIED_CODES = new Set(['9900403', '35999999']);

/** Python's truth value of a JSON value. */
function pyTruthy(v: unknown): boolean {
  if (v === null || v === undefined || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/**
 * Whether an envelope is a failure, as the reference reads it (`not result.get("result", True) and
 * result.get("code", -1) != 0`): `result` falsy **and** `code` not 0. A body without `result` is a
 * success; `result=false` with code 0 is too; a code `"0"` (text) is not 0.
 */
export function isEnvelopeError(envelope: Readonly<Record<string, unknown>>): boolean {
  const result = 'result' in envelope ? envelope.result : true;
  const code = 'code' in envelope ? envelope.code : -1;
  return !pyTruthy(result) && code !== 0 && code !== false;
}
