/**
 * Fault (d): garbage and wrong-schema records on every topic a service consumes — `spans` (discovery,
 * storage, sampler), `spans.replay` (discovery, storage), `metrics` (storage), `events` (discovery,
 * storage), `flow.commands` (orchestrator). (`flow.status` and `spans.sampled` have no consumer in
 * bkstream: they are outputs for BKData and its Flink job.) Each consumer group dead-letters each bad
 * record once, with the source topic, partition, offset, group, error class and message in its headers,
 * counts it in `bkstream_dlq_records_total`, and goes on: the valid records produced after the bad ones
 * are stored, and every service is still running.
 */
import test from 'ava';
import { codecFor } from '../../services/common/avro/index.ts';
import { DLQ_HEADERS, rawDecoder, type ConsumedRecord } from '../../services/common/bus/index.ts';
import type { Component } from '../../services/common/lifecycle.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { discoveryService } from '../../services/discovery/service.ts';
import { orchestratorService } from '../../services/orchestrator/service.ts';
import { samplerService } from '../../services/sampler/service.ts';
import { storageService } from '../../services/storage/service.ts';
import { span } from '../discovery/helpers.ts';
import { brokerKit, brokers, uniqueName, waitFor } from '../helpers/kafka.ts';
import { sampleAgentEvent, sampleFlowCommand, sampleMetricBatch } from '../helpers/records.ts';
import { freshDatabase } from '../helpers/store.ts';
import { fastEnv, startSim } from '../orchestrator/kit.ts';
import { faultLine, faultTopics, metricSum, startService, type StartedService } from './kit.ts';

test('garbage and wrong-schema records on every consumed topic: dead-lettered once per group with headers, counted, no crash', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  const prefix = await faultTopics(t, brokers(), 1);
  const store = createStore({ databaseUrl: await freshDatabase(t), logger: silentLogger, poolSize: 8 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  const sim = await startSim(t);
  const g = (name: string): string => `${prefix}-${name}`;
  // Every consumer group named, so the dead letters can be matched to the groups that must send them.
  const groups = {
    DISCOVERY_GROUP_ID: g('discovery'),
    DISCOVERY_REPLAY_GROUP_ID: g('discovery-replay'),
    DISCOVERY_EVENTS_GROUP_ID: g('discovery-events'),
    STORAGE_SPANS_GROUP_ID: g('storage-spans'),
    STORAGE_REPLAY_GROUP_ID: g('storage-replay'),
    STORAGE_METRICS_GROUP_ID: g('storage-metrics'),
    STORAGE_EVENTS_GROUP_ID: g('storage-events'),
    SAMPLER_GROUP_ID: g('sampler'),
    ORCH_CONSUMER_GROUP: g('orchestrator'),
  };
  t.teardown(async () => {
    for (const group of Object.values(groups)) await kit.admin.deleteGroup(group);
  });
  const topic = (name: string): string => `${prefix}.${name}`;
  const consumedBy: Record<string, string[]> = {
    spans: [groups.DISCOVERY_GROUP_ID, groups.STORAGE_SPANS_GROUP_ID, groups.SAMPLER_GROUP_ID],
    'spans.replay': [groups.DISCOVERY_REPLAY_GROUP_ID, groups.STORAGE_REPLAY_GROUP_ID],
    metrics: [groups.STORAGE_METRICS_GROUP_ID],
    events: [groups.DISCOVERY_EVENTS_GROUP_ID, groups.STORAGE_EVENTS_GROUP_ID],
    'flow.commands': [groups.ORCH_CONSUMER_GROUP],
  };
  const env = { ...groups, ...fastEnv(sim, { ORCH_CONSUMER_GROUP: groups.ORCH_CONSUMER_GROUP }), SAMPLER_HTTP_PORT: '0', SAMPLER_POLICY_REFRESH_MS: '60000' };
  const services: StartedService[] = [];
  for (const module of [discoveryService, storageService, samplerService, orchestratorService]) {
    services.push(await startService<unknown, Component>(t, module, { brokers: brokers(), prefix, store, env }));
  }

  // Per topic: garbage, then a valid record of another schema (a known fingerprint, the wrong type).
  const wrong: Record<string, Buffer> = {
    spans: codecFor('FlowCommand').encode(sampleFlowCommand()),
    'spans.replay': codecFor('MetricBatch').encode(sampleMetricBatch()),
    metrics: codecFor('AgentEvent').encode(sampleAgentEvent()),
    events: codecFor('SpanBatch').encode({ spans: [span()] }),
    'flow.commands': codecFor('AgentEvent').encode(sampleAgentEvent()),
  };
  let badRecords = 0;
  for (const [name, wrongSchema] of Object.entries(wrong)) {
    await kit.produce(topic(name), [{ key: 'garbage', value: Buffer.from(`not a record of ${name} \u0000\u00ff`) }, { key: 'wrong-schema', value: wrongSchema }]);
    badRecords += 2;
  }
  // Then valid records after the bad ones: they must still be stored.
  const now = Date.now();
  const good = [
    span({ trace_id: 'f1'.repeat(16), kind: 2, span_name: 'GET /after-poison', attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'poison-svc' }, start_time: now * 1000 - 1_000, end_time: now * 1000 }),
  ];
  await kit.produce(topic('spans'), [{ key: good[0]!.trace_id, value: codecFor('SpanBatch').encode({ spans: good }) }]);
  await kit.produce(topic('metrics'), [{ key: 'good', value: codecFor('MetricBatch').encode({ ...sampleMetricBatch(), records: [{ timestamp: now, metrics: { 'cpu.usage': 1 }, dimensions: {} }] }) }]);
  await kit.produce(topic('events'), [{ key: 'good', value: codecFor('AgentEvent').encode({ ...sampleAgentEvent(), timestamp: now }) }]);

  // Read the dead-letter topic.
  const dead: ConsumedRecord<Buffer>[] = [];
  const reader = kit.bus.consumer({ groupId: uniqueName('dlq-reader'), topics: [topic('dlq')], codec: rawDecoder, dlqTopic: topic('dlq'), handler: async (b) => void dead.push(...b.records) });
  t.teardown(() => reader.stop(0));
  await reader.start();
  const expected = Object.values(consumedBy).reduce((n, gs) => n + gs.length * 2, 0);
  await waitFor(`${expected} dead letters`, () => dead.length >= expected, 90_000, 100);

  const header = (r: ConsumedRecord<Buffer>, h: string): string => r.headers[h]?.toString() ?? '';
  const seen = new Map<string, number>();
  for (const r of dead) {
    const id = `${header(r, DLQ_HEADERS.group)}|${header(r, DLQ_HEADERS.topic)}|${header(r, DLQ_HEADERS.partition)}|${header(r, DLQ_HEADERS.offset)}`;
    seen.set(id, (seen.get(id) ?? 0) + 1);
    for (const h of Object.values(DLQ_HEADERS)) t.not(header(r, h), '', `${id}: header ${h}`);
  }
  for (const [name, gs] of Object.entries(consumedBy)) {
    for (const group of gs) {
      const mine = dead.filter((r) => header(r, DLQ_HEADERS.topic) === topic(name) && header(r, DLQ_HEADERS.group) === group);
      t.deepEqual(mine.map((r) => r.key?.toString()).sort(), ['garbage', 'wrong-schema'], `${name} / ${group}: both bad records dead-lettered`);
      t.deepEqual(mine.map((r) => header(r, DLQ_HEADERS.offset)).sort(), ['0', '1'], `${name} / ${group}: with their offsets`);
      const garbage = mine.find((r) => r.key?.toString() === 'garbage');
      t.is(garbage?.value.toString(), `not a record of ${name} \u0000\u00ff`, `${name} / ${group}: the original bytes`);
    }
  }
  const duplicates = [...seen.values()].reduce((n, c) => n + c - 1, 0);

  // Counted by each service, and every service still works: the valid records after the bad ones are stored.
  const counted = (await Promise.all(services.map((s) => metricSum(s.registry, 'bkstream_dlq_records_total')))).reduce((a, b) => a + b, 0);
  t.is(counted, expected, 'bkstream_dlq_records_total of the services');
  const stored = await waitFor('the valid records stored', async () => {
    const { rows } = await store.query<{ spans: number; endpoints: number; events: number; samples: number }>(
      "SELECT (SELECT count(*)::int FROM storage_span WHERE service_name = 'poison-svc') AS spans, (SELECT count(*)::int FROM apm_endpoint WHERE service_name = 'poison-svc') AS endpoints, (SELECT count(*)::int FROM storage_event) AS events, (SELECT count(*)::int FROM storage_metric_sample) AS samples",
    );
    const r = rows[0];
    return r && r.spans === 1 && r.endpoints === 1 && r.events === 1 && r.samples === 1 ? r : undefined;
  }, 60_000, 200);
  for (const [name, gs] of Object.entries(consumedBy)) {
    for (const group of gs) await waitFor(`${group} committed past the bad records`, async () => (await kit.admin.groupLag(group, topic(name))) === 0, 60_000, 200);
  }
  faultLine(t, 'poison-records', { in: expected + 3, out: dead.length + stored.spans + stored.events + stored.samples, duplicates }, `bad_records=${badRecords} consuming_groups=${Object.values(consumedBy).flat().length} dead_letters=${dead.length} counted=${counted}`);
  t.is(dead.length, expected, 'each bad record once per consuming group');
  t.is(duplicates, 0);
});
