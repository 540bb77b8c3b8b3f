/**
 * What the publisher does to a task's output before it is spooled (reference §A4, the beater and GSE
 * output layers), as a pure function:
 *
 * - events (`AgentEvent`, topic `<prefix>.events`, key `bk_biz_id:dataid`): the beater layer adds
 *   `node_id`, `bk_cloud_id`, `ip`, `type` and, unless the output opts out, `bk_cmdb_level`; it counts the
 *   document's `status` for the heartbeat (0 published, -1 unknown, other errors); a `not_uptimecheck`
 *   document loses its `status` and is dropped unless it was 0; a `status` that is not an int32 drops the
 *   document (errata 9). The output layer then needs a positive `dataid`, and sets `bizid`, `bk_biz_id`
 *   (if absent), `gseindex` (a per-data-id sequence kept in the state store, if absent), `cloudid`, `ip`,
 *   `hostname`, `bk_agent_id`, `bk_host_id`. The body is that document, as JSON.
 * - time series (`MetricBatch`, topic `<prefix>.metrics`, key `bk_biz_id:dataid:target`): the records as
 *   they are, with the agent identity; a data id ≤ 0 or no records drops the output.
 */
import { codecFor } from '../common/avro/index.ts';
import type { AgentEvent, AgentInfo, MetricBatch } from '../common/records.ts';
import type { EventOutput, HostIdentity, MetricsOutput, StateStore, TaskOutput } from './task.ts';

/** Why an output was not published. */
export type DropReason = 'no_dataid' | 'status_not_ok' | 'bad_status' | 'no_records' | 'invalid';

/** How a document's status counts for the heartbeat (reference beaterStatus.updateByMapStr). */
export type StatusCount = 'success' | 'error' | 'fail';

export type Enveloped =
  | { readonly ok: true; readonly topic: string; readonly key: string; readonly value: Buffer; readonly timestamp: number; readonly status?: StatusCount }
  | { readonly ok: false; readonly reason: DropReason; readonly detail?: string; readonly status?: StatusCount };

export interface EnvelopeContext {
  readonly host: HostIdentity;
  /** `bk_cmdb_level` (the hostid file's topology), undefined when not in use. */
  readonly cmdbLevel: readonly Record<string, unknown>[] | undefined;
  readonly topics: { readonly events: string; readonly metrics: string };
  /** Keeps the `gseindex_<dataid>` sequences. */
  readonly state: StateStore;
  now(): number;
}

const eventCodec = codecFor('AgentEvent');
const metricCodec = codecFor('MetricBatch');

function agentInfo(host: HostIdentity): AgentInfo {
  return { bk_cloud_id: host.bkCloudId, ip: host.ip, hostname: host.hostname, bk_agent_id: host.bkAgentId, bk_host_id: host.bkHostId };
}

function statusCount(status: number): StatusCount {
  return status === 0 ? 'success' : status === -1 ? 'error' : 'fail';
}

function isInt32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= -2_147_483_648 && v <= 2_147_483_647;
}

/** The next `gseindex` of a data id (reference: per-data-id counter persisted in the KV store). */
export function nextGseIndex(state: StateStore, dataId: number): number {
  const key = `gseindex_${dataId}`;
  const n = Number(state.get(key) ?? '0') + 1;
  state.set(key, String(n));
  return n;
}

function envelopeEvent(o: EventOutput, ctx: EnvelopeContext): Enveloped {
  const host = ctx.host;
  const body: Record<string, unknown> = { ...o.body };
  let counted: StatusCount | undefined;
  let status = o.status ?? 0;
  if (o.beaterLayer !== false) {
    body.node_id = host.nodeId;
    body.bk_cloud_id = host.bkCloudId;
    body.ip = host.ip;
    body.type = o.eventType;
    if (o.cmdbLevel !== false && ctx.cmdbLevel) body.bk_cmdb_level = ctx.cmdbLevel;
    const bodyStatus = 'status' in body ? body.status : o.status;
    if (bodyStatus !== undefined) {
      if (!isInt32(bodyStatus)) return { ok: false, reason: 'bad_status', detail: `status ${JSON.stringify(bodyStatus)} is not an int32`, status: 'error' };
      status = bodyStatus;
      counted = statusCount(status);
    }
    if (o.notUptimeCheck || 'not_uptimecheck' in body) {
      delete body.status;
      delete body.not_uptimecheck;
      if (status !== 0) return { ok: false, reason: 'status_not_ok', ...(counted ? { status: counted } : {}) };
    }
  }
  const dataId = typeof body.dataid === 'number' ? body.dataid : o.dataId;
  if (!(Number.isInteger(dataId) && dataId > 0)) return { ok: false, reason: 'no_dataid', detail: `dataid ${JSON.stringify(body.dataid ?? o.dataId)}`, ...(counted ? { status: counted } : {}) };
  body.dataid ??= dataId;
  const bizId = o.bkBizId || host.bkBizId;
  body.bizid = host.bkBizId;
  body.bk_biz_id ??= bizId;
  body.gseindex ??= nextGseIndex(ctx.state, dataId);
  body.cloudid = host.bkCloudId;
  body.ip = host.ip;
  body.hostname = host.hostname;
  body.bk_agent_id = host.bkAgentId;
  body.bk_host_id = host.bkHostId;
  const timestamp = o.timestampMs ?? ctx.now();
  const record: AgentEvent = {
    event_type: o.eventType,
    data_id: dataId,
    bk_biz_id: bizId,
    task_id: o.taskId ?? 0,
    timestamp,
    agent: agentInfo(host),
    status,
    dimensions: { ...(o.dimensions ?? {}) },
    metrics: { ...(o.metrics ?? {}) },
    body: JSON.stringify(body),
  };
  try {
    return { ok: true, topic: ctx.topics.events, key: `${bizId}:${dataId}`, value: eventCodec.encode(record), timestamp, ...(counted ? { status: counted } : {}) };
  } catch (err) {
    return { ok: false, reason: 'invalid', detail: (err as Error).message };
  }
}

function envelopeMetrics(o: MetricsOutput, ctx: EnvelopeContext): Enveloped {
  if (!(Number.isInteger(o.dataId) && o.dataId > 0)) return { ok: false, reason: 'no_dataid', detail: `dataid ${o.dataId}` };
  if (o.records.length === 0) return { ok: false, reason: 'no_records' };
  const bizId = o.bkBizId || ctx.host.bkBizId;
  const batch: MetricBatch = {
    bk_biz_id: bizId,
    data_id: o.dataId,
    target: o.target,
    agent: agentInfo(ctx.host),
    records: o.records.map((r) => ({ timestamp: r.timestamp, metrics: { ...r.metrics }, dimensions: { ...r.dimensions } })),
  };
  const timestamp = o.records[0]?.timestamp ?? ctx.now();
  try {
    return { ok: true, topic: ctx.topics.metrics, key: `${bizId}:${o.dataId}:${o.target}`, value: metricCodec.encode(batch), timestamp };
  } catch (err) {
    return { ok: false, reason: 'invalid', detail: (err as Error).message };
  }
}

/** The Kafka record of one task output, or why it is not published. */
export function envelope(output: TaskOutput, ctx: EnvelopeContext): Enveloped {
  return output.kind === 'event' ? envelopeEvent(output, ctx) : envelopeMetrics(output, ctx);
}
