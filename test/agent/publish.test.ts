/**
 * The publishing path without a broker: the envelope (the reference's beater and output layers), the
 * bounded channel, the publisher into the spool, and the sender out of it against a sink that fails,
 * hangs and recovers.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { codecFor } from '../../services/common/avro/index.ts';
import type { OutMessage } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry } from '../../services/common/metrics.ts';
import { BoundedChannel, ChannelClosedError } from '../../services/agent/channel.ts';
import { envelope, type EnvelopeContext } from '../../services/agent/envelope.ts';
import { agentMetrics } from '../../services/agent/metrics.ts';
import { Publisher } from '../../services/agent/publisher.ts';
import { HEADER_RUN, HEADER_SEQ, KafkaSender, type RecordSink } from '../../services/agent/sender.ts';
import { DiskSpool } from '../../services/agent/spool/spool.ts';
import { MemoryStateStore } from '../../services/agent/state-store.ts';
import type { TaskOutput } from '../../services/agent/task.ts';
import { tempDir, testHost } from './kit.ts';

const eventCodec = codecFor('AgentEvent');
/** Avro records decode as class instances; compare their plain shape. */
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;
const metricCodec = codecFor('MetricBatch');

function ctx(over: Partial<EnvelopeContext> = {}): EnvelopeContext {
  return { host: testHost, cmdbLevel: [{ bk_biz_id: 2, bk_set_id: 5, bk_module_id: 9 }], topics: { events: 'p.events', metrics: 'p.metrics' }, state: new MemoryStateStore(), now: () => 1_700_000_000_000, ...over };
}

test('events: the beater layer adds node_id, bk_cloud_id, ip, type and bk_cmdb_level; the output layer the host fields and a per-data-id gseindex', (t) => {
  const c = ctx();
  const e = envelope({ kind: 'event', eventType: 'basereport', dataId: 1001, taskId: 101, body: { type: 'basereport', dataid: 1001, data: { load: { load1: 0.5 } } } }, c);
  if (!e.ok) throw new Error(e.reason);
  t.is(e.topic, 'p.events');
  t.is(e.key, '2:1001');
  const record = eventCodec.decode(e.value);
  t.like(record, { event_type: 'basereport', data_id: 1001, bk_biz_id: 2, task_id: 101, timestamp: 1_700_000_000_000, status: 0 });
  t.deepEqual({ ...record.agent }, { bk_cloud_id: 0, ip: '10.0.0.1', hostname: 'test-host', bk_agent_id: 'agent-7', bk_host_id: 7 });
  t.deepEqual(JSON.parse(record.body), {
    type: 'basereport', dataid: 1001, data: { load: { load1: 0.5 } },
    node_id: '0:10.0.0.1', bk_cloud_id: 0, ip: '10.0.0.1', bk_cmdb_level: [{ bk_biz_id: 2, bk_set_id: 5, bk_module_id: 9 }],
    bizid: 2, bk_biz_id: 2, gseindex: 1, cloudid: 0, hostname: 'test-host', bk_agent_id: 'agent-7', bk_host_id: 7,
  });
  const again = envelope({ kind: 'event', eventType: 'basereport', dataId: 1001, body: {} }, c);
  const other = envelope({ kind: 'event', eventType: 'static', dataId: 1100010, cmdbLevel: false, body: {} }, c);
  if (!again.ok || !other.ok) throw new Error('dropped');
  const againBody = JSON.parse(eventCodec.decode(again.value).body) as Record<string, unknown>;
  const otherBody = JSON.parse(eventCodec.decode(other.value).body) as Record<string, unknown>;
  t.is(againBody.gseindex, 2);
  t.is(otherBody.gseindex, 1, 'per data id');
  t.false('bk_cmdb_level' in otherBody, 'static opts out of bk_cmdb_level');
});

test('events: status counting, not_uptimecheck, a non-int32 status (errata 9) and a missing data id', (t) => {
  const c = ctx();
  const ok = envelope({ kind: 'event', eventType: 'http', dataId: 1011, body: { status: 0, error_code: 0 } }, c);
  t.true(ok.ok);
  t.is(ok.status, 'success');
  const fail = envelope({ kind: 'event', eventType: 'http', dataId: 1011, body: { status: 3 } }, c);
  t.true(fail.ok, 'an uptime-check failure is published');
  t.is(fail.status, 'fail');
  if (fail.ok) t.is(eventCodec.decode(fail.value).status, 3);
  t.is(envelope({ kind: 'event', eventType: 'x', dataId: 1, body: { status: -1 } }, c).status, 'error');
  const swallowed = envelope({ kind: 'event', eventType: 'status', dataId: 1, notUptimeCheck: true, status: 1, body: {} }, c);
  t.deepEqual(swallowed, { ok: false, reason: 'status_not_ok', status: 'fail' });
  const kept = envelope({ kind: 'event', eventType: 'status', dataId: 1, body: { status: 0, not_uptimecheck: 1 } }, c);
  if (!kept.ok) throw new Error(kept.reason);
  const keptBody = JSON.parse(eventCodec.decode(kept.value).body) as Record<string, unknown>;
  t.false('status' in keptBody);
  t.false('not_uptimecheck' in keptBody);
  t.like(envelope({ kind: 'event', eventType: 'x', dataId: 1, body: { status: 1.5 } }, c), { ok: false, reason: 'bad_status' });
  t.like(envelope({ kind: 'event', eventType: 'x', dataId: 1, body: { status: '0' } }, c), { ok: false, reason: 'bad_status' });
  t.like(envelope({ kind: 'event', eventType: 'x', dataId: 0, body: {} }, c), { ok: false, reason: 'no_dataid' });
  t.like(envelope({ kind: 'event', eventType: 'x', dataId: 5, body: { dataid: 'abc' } }, c), { ok: true }, 'a non-numeric body dataid falls back to the output\'s');
  const hb = envelope({ kind: 'event', eventType: 'heartbeat', dataId: 1100001, beaterLayer: false, body: { dataid: 1100001, status: 7 } }, c);
  if (!hb.ok) throw new Error(hb.reason);
  t.is(hb.status, undefined, 'without the beater layer nothing is counted');
  t.false('node_id' in (JSON.parse(eventCodec.decode(hb.value).body) as Record<string, unknown>));
});

test('metrics: MetricBatch with the agent identity, key bk_biz_id:dataid:target; empty or data id 0 dropped', (t) => {
  const c = ctx();
  const out: TaskOutput = { kind: 'metrics', eventType: 'selfstats', dataId: 1100030, bkBizId: 0, target: 'selfstats', records: [{ timestamp: 5, metrics: { a: 1.5 }, dimensions: { x: 'y' } }] };
  const e = envelope(out, c);
  if (!e.ok) throw new Error(e.reason);
  t.is(e.topic, 'p.metrics');
  t.is(e.key, '2:1100030:selfstats', 'biz 0 falls back to the host\'s');
  t.is(e.timestamp, 5);
  t.deepEqual(plain(metricCodec.decode(e.value)), { bk_biz_id: 2, data_id: 1100030, target: 'selfstats', agent: { bk_cloud_id: 0, ip: '10.0.0.1', hostname: 'test-host', bk_agent_id: 'agent-7', bk_host_id: 7 }, records: [{ timestamp: 5, metrics: { a: 1.5 }, dimensions: { x: 'y' } }] });
  t.like(envelope({ ...out, records: [] }, c), { ok: false, reason: 'no_records' });
  t.like(envelope({ ...out, dataId: 0 }, c), { ok: false, reason: 'no_dataid' });
});

test('channel: a full channel makes emitters wait (back-pressure), closing lets waiting emitters in, then refuses', async (t) => {
  const ch = new BoundedChannel<number>(2);
  await ch.push(1);
  await ch.push(2);
  let third = false;
  const p3 = ch.push(3).then(() => (third = true));
  await sleep(5);
  t.false(third, 'waits while full');
  t.deepEqual(await ch.take(1), [1]);
  await p3;
  t.true(third);
  const p4 = ch.push(4);
  const p5 = ch.push(5);
  ch.close();
  await Promise.all([p4, p5]);
  t.deepEqual(await ch.take(10), [2, 3, 4, 5], 'nothing emitted before the close is lost');
  t.deepEqual(await ch.take(10), []);
  await t.throwsAsync(ch.push(6), { instanceOf: ChannelClosedError });
});

/** A sink that records what it was sent and can be made to fail or hang. */
class FakeSink implements RecordSink {
  sent: { topic: string; message: OutMessage }[] = [];
  starts = 0;
  stops = 0;
  mode: 'ok' | 'fail' | 'hang' = 'ok';
  async start(): Promise<void> {
    this.starts++;
    if (this.mode === 'fail') throw new Error('connect ECONNREFUSED');
  }
  async stop(): Promise<void> {
    this.stops++;
  }
  async sendBatch(batches: readonly { topic: string; messages: readonly OutMessage[] }[]): Promise<void> {
    if (this.mode === 'fail') throw new Error('connect ECONNREFUSED');
    if (this.mode === 'hang') return new Promise<void>(() => undefined);
    for (const b of batches) for (const message of b.messages) this.sent.push({ topic: b.topic, message });
  }
}

async function pipeline(t: Parameters<typeof tempDir>[0], sink: FakeSink, options: { flushTimeoutMs?: number } = {}) {
  const metrics = agentMetrics(createRegistry());
  const spool = new DiskSpool({ dir: tempDir(t), maxBytes: 8 << 20, logger: silentLogger });
  await spool.open();
  const channel = new BoundedChannel<TaskOutput>(4);
  const publisher = new Publisher({ channel, spool, runId: 'run-1', metrics, logger: silentLogger, context: () => ctx() });
  const sender = new KafkaSender({ sink, spool, metrics, logger: silentLogger, retryInitialMs: 5, retryMaxMs: 20, flushTimeoutMs: options.flushTimeoutMs ?? 500 });
  await sender.start();
  await publisher.start();
  const emit = (i: number): Promise<void> => channel.push({ kind: 'event', eventType: 'test', dataId: 1000 + (i % 3), taskId: i, body: { i } });
  return { spool, channel, publisher, sender, metrics, emit };
}

const seqsOf = (sink: FakeSink): number[] => sink.sent.map((s) => Number(s.message.headers?.[HEADER_SEQ]));

test('sender: delivers in order with the run and sequence headers; a failing sink keeps everything in the spool and reconnects; nothing twice', async (t) => {
  const sink = new FakeSink();
  const p = await pipeline(t, sink);
  for (let i = 0; i < 10; i++) await p.emit(i);
  await waitUntil(() => sink.sent.length === 10);
  t.deepEqual(seqsOf(sink), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.is(sink.sent[0]?.message.headers?.[HEADER_RUN], 'run-1');
  t.is(sink.sent[0]?.message.key, '2:1000');

  sink.mode = 'fail';
  for (let i = 10; i < 30; i++) await p.emit(i);
  await waitUntil(() => p.spool.stats().pending === 20);
  await sleep(100);
  t.is(sink.sent.length, 10);
  t.false(p.sender.state().up);
  const startsWhileDown = sink.starts;
  sink.mode = 'ok';
  await waitUntil(() => sink.sent.length === 30);
  t.true(sink.starts > startsWhileDown, 'reconnected after the failures');
  t.true(sink.stops >= 1);
  t.deepEqual(seqsOf(sink), Array.from({ length: 30 }, (_, i) => i + 1), 'in order, each once');
  t.true(p.sender.state().up);
  await p.publisher.stop();
  await p.sender.stop();
  await p.spool.close();
});

test('sender stop: drains the spool while the sink works; when it hangs, stops at the deadline and leaves the rest for the next start', async (t) => {
  const sink = new FakeSink();
  const p = await pipeline(t, sink);
  sink.mode = 'hang';
  for (let i = 0; i < 5; i++) await p.emit(i);
  await waitUntil(() => p.spool.stats().pending === 5);
  const started = Date.now();
  await p.publisher.stop();
  await p.sender.stop();
  t.true(Date.now() - started < 2_000, 'bounded by the flush deadline');
  t.is(p.spool.stats().pending, 5);
  await p.spool.close();

  const sink2 = new FakeSink();
  const p2 = await pipeline(t, sink2);
  for (let i = 0; i < 3; i++) await p2.emit(i);
  await p2.publisher.stop();
  await p2.sender.stop();
  t.is(sink2.sent.length, 3, 'a working sink is drained before stop returns');
  await p2.spool.close();
});

async function waitUntil(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}
