/**
 * Durability, on a broker of this test's own: the agent publishes steadily (heartbeat and selfstats every
 * second); the broker is stopped for 30 s; during the outage the agent is stopped and started again on
 * the same state directory; after the broker returns, every record the agent produced — every spool
 * sequence of both runs — arrives, and none twice within a run.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startKafka, stopKafka } from '../../services/cli/local-kafka.ts';
import { Bus } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';
import { tempDir } from './kit.ts';
import { agentTopics, dedicatedBroker, freePortPair, readAgentTopics, startAgent } from './service-kit.ts';

const CONFIG = `
bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  heart_beat:
    global_dataid: 1100001
    period: 1s
    publish_immediately: true
  selfstats_task:
    dataid: 1100030
    task_id: 88
    period: 1s
`;

test('broker down 30 s, agent restarted during the outage: every record produced arrives, none twice within a run', async (t) => {
  t.timeout(480_000);
  const port = await freePortPair();
  const settings = dedicatedBroker(t, port);
  const brokers = [`127.0.0.1:${port}`];
  await startKafka(settings);
  const bus = new Bus({ brokers, clientId: uniqueName('agent-durability'), logger: silentLogger });
  const prefix = uniqueName('agent-dur');
  await agentTopics(t, bus, prefix);
  const read = await readAgentTopics(t, bus, prefix);

  const dir = tempDir(t);
  const main = join(dir, 'bkmonitorbeat.yaml');
  writeFileSync(main, CONFIG);
  const stateDir = join(dir, 'state');
  const opts = { main, brokers, prefix, stateDir, overrides: { retryMaxMs: 1_000 } };

  // 1. Publishing with the broker up.
  const first = await startAgent(t, opts);
  await waitFor('records delivered before the outage', () => read.events.length + read.metrics.length >= 6, 60_000);

  // 2. The broker stops for 30 s; 10 s into it the agent is stopped and started again.
  const downAt = Date.now();
  await stopKafka(settings);
  await sleep(10_000);
  const firstRun = first.service.runId;
  await first.service.stop();
  const leftByFirst = first.service.spool.stats();
  t.true(leftByFirst.pending > 0, `the first run left ${leftByFirst.pending} records in the spool`);
  const second = await startAgent(t, opts);
  t.is(second.service.spool.stats().pending, leftByFirst.pending, 'the spool survived the restart intact');
  await sleep(Math.max(0, 30_000 - (Date.now() - downAt)));
  const spooledDuringOutage = second.service.spool.stats().pending;
  t.true(spooledDuringOutage > leftByFirst.pending, 'the second run kept producing into the spool while the broker was away');
  const healthDown = (await (await fetch(`${second.adminUrl}/healthz`)).json()) as { checks: { kafka: string } };
  t.regex(healthDown.checks.kafka, /^unreachable/);

  // 3. The broker returns (same data directory): everything arrives, in order per run.
  await startKafka(settings);
  await waitFor('the spool delivered', () => second.service.spool.stats().pending === 0, 180_000, 200);
  await second.service.stop();
  const lastSeq = second.service.spool.stats().nextSeq - 1;
  await waitFor('every sequence read back', () => new Set([...read.events, ...read.metrics].map((r) => r.seq)).size >= lastSeq, 120_000, 200);

  const received = [...read.events, ...read.metrics];
  const seqs = new Set(received.map((r) => r.seq));
  const missing: number[] = [];
  for (let s = 1; s <= lastSeq; s++) if (!seqs.has(s)) missing.push(s);
  t.deepEqual(missing, [], `every one of the ${lastSeq} records produced arrived`);
  const byRun = new Map<string, number[]>();
  for (const r of received) byRun.set(r.run, [...(byRun.get(r.run) ?? []), r.seq]);
  t.deepEqual([...byRun.keys()].sort(), [firstRun, second.service.runId].sort());
  for (const [run, list] of byRun) t.is(new Set(list).size, list.length, `no record twice within run ${run}`);
  t.is(received.length, lastSeq, 'and none twice across the restart either');
  // Per partition, records arrive in sequence order.
  const byKey = new Map<string, number[]>();
  for (const r of received) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
  for (const [key, list] of byKey) t.deepEqual(list, [...list].sort((a, b) => a - b), `in order for key ${key}`);
  t.pass(`${lastSeq} records: ${leftByFirst.pending} left by the first run, ${spooledDuringOutage} spooled at the end of the outage`);
});
