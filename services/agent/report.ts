/**
 * One-shot custom report (reference `bkmonitorbeat -report`, §A8), the logic behind `bkstream report`:
 *
 * 1. prepare the message as the reference does: for `event`, a missing body starts from the template
 *    `{"data_id":0,"access_token":"","data":[{"event_name":"","metrics":{},"event":{"content":""},
 *    "target":"","dimension":{},"timestamp":0}]}` and the event flags fill `data[0]`; the data id flag
 *    sets `data_id`, the token flag `access_token`, and `data[0].timestamp` defaults to now (ms);
 * 2. validate it with the reference's JSON schema rules: `data_id` an integer ≥ 1, `access_token` a
 *    string, `data` an array whose first item (draft-04 tuple validation: only the first) has, for
 *    events, a non-empty `event_name`, `event.content` and `target`, a `dimension` object and an integer
 *    `timestamp`; for time series, a `metrics` object, a non-empty `target`, a `dimension` object and an
 *    integer `timestamp`;
 * 3. the records it becomes on Kafka (the reference's `agent` sender wrote to the GSE socket): an event
 *    report is one `AgentEvent` (`event_type` `custom_event`) whose body is the document the reference's
 *    agent sender built (`{agent: {type: "bkmonitorbeat.report", version: "0.0.1"}, dataid, cloudid, bizid,
 *    ip, bk_agent_id, bk_host_id, version, data, bk_info, time, timestamp}`); a time-series report is one
 *    `MetricBatch` per target, its records the `data` items.
 *
 * Difference: the token flag also fills `access_token` of time-series reports (the reference applies it to
 * events only, so a time-series report needed the token inside its body).
 */
import { codecFor } from '../common/avro/index.ts';
import type { MetricRecord } from '../common/records.ts';
import { isMap } from './config-fields.ts';
import type { HostIdentity } from './task.ts';

export type ReportKind = 'event' | 'timeseries';

export interface ReportInput {
  kind: ReportKind;
  /** `-report.bk_data_id` (0 = leave the body's). */
  dataId: number;
  /** `-report.message.body` (JSON). */
  body?: string;
  eventName?: string;
  eventContent?: string;
  eventTarget?: string;
  /** ms; 0 = the body's, or now. */
  eventTimestamp?: number;
  token?: string;
  /** ms since the epoch. */
  now: number;
}

const EVENT_TEMPLATE = '{"data_id":0,"access_token":"","data":[{"event_name":"","metrics":{},"event":{"content":""},"target":"","dimension":{},"timestamp":0}]}';

type Doc = Record<string, unknown>;

/** The message after the flags are applied (reference CompareAndPrepareArgs). Throws when the body is not a JSON object. */
export function prepareReport(input: ReportInput): Doc {
  const text = input.kind === 'event' && !input.body ? EVENT_TEMPLATE : (input.body ?? '{}');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`the message body is not JSON: ${(err as Error).message}`);
  }
  if (!isMap(doc)) throw new Error('the message body must be a JSON object');
  const out: Doc = { ...doc };
  if (input.token) out.access_token = input.token;
  if (input.dataId !== 0) out.data_id = input.dataId;
  if (input.kind === 'event') {
    const data = Array.isArray(out.data) ? [...(out.data as unknown[])] : [];
    const first: Doc = isMap(data[0]) ? { ...data[0] } : {};
    if (input.eventName) first.event_name = input.eventName;
    if (input.eventTarget) first.target = input.eventTarget;
    if (input.eventContent) first.event = { ...(isMap(first.event) ? first.event : {}), content: input.eventContent };
    if (input.eventTimestamp) first.timestamp = input.eventTimestamp;
    else if (!(typeof first.timestamp === 'number' && first.timestamp !== 0)) first.timestamp = input.now;
    data[0] = first;
    out.data = data;
  }
  return out;
}

const isInteger = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v);
const nonEmptyString = (v: unknown): boolean => typeof v === 'string' && v.length >= 1;

/** Every way `doc` breaks the reference's schema for `kind` (empty = valid). */
export function validateReport(kind: ReportKind, doc: Doc): string[] {
  const problems: string[] = [];
  const need = (ok: boolean, message: string): void => {
    if (!ok) problems.push(message);
  };
  if (!('data_id' in doc)) problems.push('data_id is required');
  else need(isInteger(doc.data_id) && (doc.data_id as number) >= 1, 'data_id: must be an integer >= 1');
  if (!('access_token' in doc)) problems.push('access_token is required');
  else need(typeof doc.access_token === 'string', 'access_token: must be a string');
  if (!('data' in doc)) {
    problems.push('data is required');
    return problems;
  }
  if (!Array.isArray(doc.data)) {
    problems.push('data: must be an array');
    return problems;
  }
  const first = (doc.data as unknown[])[0];
  if (first === undefined) return problems;
  if (!isMap(first)) {
    problems.push('data.0: must be an object');
    return problems;
  }
  const required = kind === 'event' ? ['event_name', 'event', 'target', 'dimension', 'timestamp'] : ['metrics', 'target', 'dimension', 'timestamp'];
  for (const key of required) if (!(key in first)) problems.push(`data.0.${key} is required`);
  if ('target' in first) need(nonEmptyString(first.target), 'data.0.target: must be a non-empty string');
  if ('dimension' in first) need(isMap(first.dimension), 'data.0.dimension: must be an object');
  if ('timestamp' in first) need(isInteger(first.timestamp), 'data.0.timestamp: must be an integer');
  if (kind === 'event') {
    if ('event_name' in first) need(nonEmptyString(first.event_name), 'data.0.event_name: must be a non-empty string');
    if ('event' in first) {
      if (!isMap(first.event)) problems.push('data.0.event: must be an object');
      else if (!('content' in first.event)) problems.push('data.0.event.content is required');
      else need(nonEmptyString(first.event.content), 'data.0.event.content: must be a non-empty string');
    }
  } else if ('metrics' in first) {
    need(isMap(first.metrics), 'data.0.metrics: must be an object');
  }
  return problems;
}

export interface ReportRecord {
  topic: string;
  key: string;
  value: Buffer;
  timestamp: number;
}

const eventCodec = codecFor('AgentEvent');
const metricCodec = codecFor('MetricBatch');

/** The Kafka records of a validated report. Time-series metric values must be numbers. */
export function reportRecords(kind: ReportKind, doc: Doc, host: HostIdentity, topics: { events: string; metrics: string }, now: number): ReportRecord[] {
  const dataId = doc.data_id as number;
  const data = (doc.data as unknown[]).filter(isMap);
  const agent = { bk_cloud_id: host.bkCloudId, ip: host.ip, hostname: host.hostname, bk_agent_id: host.bkAgentId, bk_host_id: host.bkHostId };
  if (kind === 'event') {
    const seconds = Math.floor(now / 1_000);
    const body = {
      agent: { type: 'bkmonitorbeat.report', version: '0.0.1' },
      dataid: dataId,
      cloudid: host.bkCloudId,
      bizid: host.bkBizId,
      ip: host.ip,
      bk_agent_id: host.bkAgentId,
      bk_host_id: host.bkHostId,
      version: '',
      data: doc.data,
      bk_info: {},
      time: seconds,
      timestamp: seconds,
    };
    const ts = typeof data[0]?.timestamp === 'number' && data[0].timestamp > 0 ? data[0].timestamp : now;
    const value = eventCodec.encode({ event_type: 'custom_event', data_id: dataId, bk_biz_id: host.bkBizId, task_id: 0, timestamp: ts, agent, status: 0, dimensions: {}, metrics: {}, body: JSON.stringify(body) });
    return [{ topic: topics.events, key: `${host.bkBizId}:${dataId}`, value, timestamp: ts }];
  }
  const byTarget = new Map<string, MetricRecord[]>();
  for (const [i, item] of data.entries()) {
    const target = typeof item.target === 'string' ? item.target : '';
    const metrics: Record<string, number> = {};
    for (const [k, v] of Object.entries(isMap(item.metrics) ? item.metrics : {})) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`data.${i}.metrics.${k}: must be a number, got ${JSON.stringify(v)}`);
      metrics[k] = v;
    }
    const dimensions: Record<string, string> = {};
    for (const [k, v] of Object.entries(isMap(item.dimension) ? item.dimension : {})) dimensions[k] = typeof v === 'string' ? v : JSON.stringify(v);
    const timestamp = typeof item.timestamp === 'number' && item.timestamp > 0 ? item.timestamp : now;
    byTarget.set(target, [...(byTarget.get(target) ?? []), { timestamp, metrics, dimensions }]);
  }
  return [...byTarget].map(([target, records]) => ({
    topic: topics.metrics,
    key: `${host.bkBizId}:${dataId}:${target}`,
    value: metricCodec.encode({ bk_biz_id: host.bkBizId, data_id: dataId, target, agent, records }),
    timestamp: records[0]?.timestamp ?? now,
  }));
}
