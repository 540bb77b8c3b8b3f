/**
 * The agent service with GSE routing against real clusters: the shared broker (its bus: the bkstream
 * topics and `<prefix>.gse.routes`) and a second broker this test starts on ports of its own. The heartbeat's
 * data id is routed to the second cluster by records on the routes topic (as the registry writes them);
 * selfstats has no route. The second cluster is stopped: the spool keeps the records; it returns: they are
 * delivered, in order. The route is deleted: heartbeats return to `<prefix>.events` without a restart.
 * Every spool sequence is counted.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { codecFor } from '../../services/common/avro/index.ts';
import { topicName } from '../../services/common/topics.ts';
import { HEADER_SEQ } from '../../services/agent/sender.ts';
import { readTopic, routeRecord, sharedCluster, startSecondCluster, streamToRecord, waitForRecords } from '../common/gse-kit.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { tempDir } from './kit.ts';
import { agentTopics, readAgentTopics, startAgent } from './service-kit.ts';

const HEARTBEAT = 1100001;
const SELFSTATS = 1100030;

const CONFIG = `
bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  heart_beat:
    global_dataid: ${HEARTBEAT}
    period: 1s
    publish_immediately: true
  selfstats_task:
    dataid: ${SELFSTATS}
    task_id: 88
    period: 1s
`;

test('heartbeats routed to a second cluster: delivered there; held in the spool while it is down and delivered in order when it returns; back to the default topic when the route is deleted; nothing lost', async (t) => {
  t.timeout(480_000);
  const b = await startSecondCluster();
  t.teardown(() => b.dispose());
  const [routedTopic] = await b.topics(['agent-routed']);
  const shared = sharedCluster();
  t.teardown(() => shared.cleanup());
  const prefix = uniqueName('agent-gse');
  await agentTopics(t, shared.bus, prefix);
  const routesTopic = topicName(prefix, 'gseRoutes');
  const admin = shared.bus.admin();
  await admin.start();
  await admin.ensureTopics([{ topic: routesTopic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  await admin.stop();
  t.teardown(async () => {
    const a = shared.bus.admin();
    await a.start();
    await a.deleteTopics([routesTopic]).catch(() => undefined);
    await a.stop();
  });
  const registry = shared.bus.producer();
  await registry.start();
  t.teardown(() => registry.stop());
  await registry.send(routesTopic, [streamToRecord(1, b), routeRecord(HEARTBEAT, [{ streamToId: 1, topic: routedTopic as string }])]);

  const read = await readAgentTopics(t, shared.bus, prefix);
  const dir = tempDir(t);
  const main = join(dir, 'bkmonitorbeat.yaml');
  writeFileSync(main, CONFIG);
  const agent = await startAgent(t, { main, brokers: shared.brokers, prefix, stateDir: join(dir, 'state'), overrides: { retryMaxMs: 1_000 } });
  const svc = agent.service;

  // 1. Routed: heartbeats on the second cluster, selfstats on <prefix>.metrics, no heartbeat on <prefix>.events.
  const early = await waitForRecords(b.bus, routedTopic as string, 3);
  const eventCodec = codecFor('AgentEvent');
  const first = eventCodec.decode(early[0]?.value as Buffer);
  t.is(first.data_id, HEARTBEAT);
  t.is(first.event_type, 'heartbeat');
  t.is(early[0]?.key?.toString(), `2:${HEARTBEAT}`);
  await waitFor('selfstats on the default topic', () => read.metrics.length >= 3);
  t.true(read.metrics.every((r) => r.value.data_id === SELFSTATS));
  t.is(read.events.filter((r) => r.value.data_id === HEARTBEAT).length, 0, 'no heartbeat on the default topic while routed');
  const health = (await (await fetch(`${agent.adminUrl}/healthz`)).json()) as { checks: { gse_routes: { state: string } } };
  t.is(health.checks.gse_routes.state, 'ready');

  // 2. The second cluster goes down: records stay in the spool (the routed ones and, behind them, the rest).
  await b.stop();
  await waitFor('records held in the spool', () => svc.spool.stats().pending >= 4 && !svc.sender.state().up, 120_000, 100);
  const down = (await (await fetch(`${agent.adminUrl}/healthz`)).json()) as { checks: { kafka: string } };
  t.regex(down.checks.kafka, /^unreachable/);

  // 3. It returns: the spool drains.
  await b.start();
  await waitFor('the spool delivered', () => svc.spool.stats().pending === 0 && svc.sender.state().up, 180_000, 200);

  // 4. The route is deleted: heartbeats come to <prefix>.events again, without a restart.
  await registry.send(routesTopic, [{ key: routeRecord(HEARTBEAT, []).key, value: null }]);
  await waitFor('heartbeats on the default topic', () => read.events.filter((r) => r.value.data_id === HEARTBEAT).length >= 2, 60_000, 100);
  await svc.stop();
  const lastSeq = svc.spool.stats().nextSeq - 1;

  const routed = await readTopic(b.bus, routedTopic as string);
  const routedSeqs = routed.map((r) => Number(r.headers[HEADER_SEQ]?.toString()));
  t.true(routed.every((r) => eventCodec.decode(r.value).data_id === HEARTBEAT), 'only the routed data id on the second cluster');
  await waitFor('the default topics read back', () => new Set([...read.events, ...read.metrics].map((r) => r.seq)).size + new Set(routedSeqs).size >= lastSeq, 60_000, 200);
  const all = new Set([...routedSeqs, ...read.events.map((r) => r.seq), ...read.metrics.map((r) => r.seq)]);
  const missing: number[] = [];
  for (let s = 1; s <= lastSeq; s++) if (!all.has(s)) missing.push(s);
  t.deepEqual(missing, [], `every one of the ${lastSeq} records arrived`);
  const firstSeen = (seqs: number[]): number[] => seqs.filter((s, i) => seqs.indexOf(s) === i);
  t.deepEqual(firstSeen(routedSeqs), [...new Set(routedSeqs)].sort((x, y) => x - y), 'in spool order on the second cluster');
  const defaultHeartbeats = read.events.filter((r) => r.value.data_id === HEARTBEAT).map((r) => r.seq);
  t.true(Math.min(...defaultHeartbeats) > Math.max(...routedSeqs), 'heartbeats after the route was deleted, none before');
  const metricSeqs = read.metrics.map((r) => r.seq);
  t.is(new Set(metricSeqs).size, metricSeqs.length, 'the unrouted records once each, although their batches were retried during the outage');
});
