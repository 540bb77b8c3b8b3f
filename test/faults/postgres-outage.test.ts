/**
 * Fault (b): PostgreSQL unreachable for 20 s. Discovery and storage reach their database through a TCP
 * proxy this test controls (test/common/fault-kit.ts; the machine's PostgreSQL is never stopped) and
 * consume spans produced all along, before, during and after the outage. While the database is away
 * their writes fail and are retried, the groups stop committing (the lag grows) and partitions that run
 * too far ahead of what is durable are paused (back-pressure, nothing dropped); once it is back they
 * resume on their own. No process restarts, nothing is lost: every span
 * produced is a storage row and an endpoint row, none twice.
 */
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DiscoveryService } from '../../services/discovery/service.ts';
import { discoveryService } from '../../services/discovery/service.ts';
import type { StorageService } from '../../services/storage/service.ts';
import { storageService } from '../../services/storage/service.ts';
import { proxiedDatabase } from '../common/fault-kit.ts';
import { brokerKit, brokers, waitFor } from '../helpers/kafka.ts';
import { produceSpans, span } from '../discovery/helpers.ts';
import { faultLine, faultTopics, metricSum, startService } from './kit.ts';

const OUTAGE_MS = 20_000;

test('PostgreSQL unreachable for 20 s: discovery and storage pause and resume, every span produced is stored once', async (t) => {
  t.timeout(240_000);
  const kit = await brokerKit(t);
  const prefix = await faultTopics(t, brokers(), 3);
  const db = await proxiedDatabase(t, 8);
  const store = db.store;
  const groups = { DISCOVERY_GROUP_ID: `${prefix}-d`, DISCOVERY_REPLAY_GROUP_ID: `${prefix}-dr`, DISCOVERY_EVENTS_GROUP_ID: `${prefix}-de`, STORAGE_SPANS_GROUP_ID: `${prefix}-s`, STORAGE_REPLAY_GROUP_ID: `${prefix}-sr`, STORAGE_METRICS_GROUP_ID: `${prefix}-sm`, STORAGE_EVENTS_GROUP_ID: `${prefix}-se` };
  t.teardown(async () => {
    for (const g of Object.values(groups)) await kit.admin.deleteGroup(g);
  });
  // A partition may run 100 records ahead of what is durable: within the outage both pause.
  const env = { ...groups, DISCOVERY_MAX_IN_FLIGHT_RECORDS: '100', STORAGE_MAX_IN_FLIGHT_RECORDS: '100' };
  const discovery = await startService<unknown, DiscoveryService>(t, discoveryService, { brokers: brokers(), prefix, store, env });
  const storage = await startService<unknown, StorageService>(t, storageService, { brokers: brokers(), prefix, store, env });
  const paused = async (): Promise<number[]> => Promise.all([discovery, storage].map((s) => metricSum(s.registry, 'bkstream_consumer_paused_partitions')));
  await waitFor('discovery and storage joined their groups', () => [...discovery.service.consumers, ...storage.service.consumers].every((c) => c.joined()), 60_000, 100);

  // Spans are produced all along: one trace per record, one server span with an endpoint of its own.
  const topic = `${prefix}.spans`;
  const now = Date.now() * 1000;
  let sent = 0;
  let sending = true;
  const sender = (async () => {
    while (sending) {
      await produceSpans(kit, topic, Array.from({ length: 10 }, () => {
        sent++;
        return span({ trace_id: sent.toString(16).padStart(32, '0'), kind: 2, span_name: `GET /pg/${sent}`, attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'pg-fault' }, start_time: now + sent - 1_000, end_time: now + sent });
      }));
      await sleep(100);
    }
  })();
  t.teardown(async () => {
    sending = false;
    await sender;
  });
  const spanRows = async (): Promise<number> => (await store.query<{ n: number }>('SELECT count(*)::int AS n FROM storage_span')).rows[0]?.n ?? 0;
  await waitFor('spans stored before the outage', async () => (await spanRows()) >= 100, 60_000, 200);

  // The database goes away for 20 s (connections cut, new ones refused).
  await db.proxy.stop();
  const outageAt = Date.now();
  const sentAtOutage = sent;
  // Both pause partitions that ran too far ahead of their failing writes (back-pressure, not dropping).
  const pausedDuring = await waitFor('discovery and storage to pause partitions', async () => {
    const p = await paused();
    return p.every((n) => n > 0) ? p : undefined;
  }, OUTAGE_MS - 1_000, 100);
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageAt)));
  const lagAtEnd = (await kit.admin.groupLag(groups.STORAGE_SPANS_GROUP_ID, topic)) + (await kit.admin.groupLag(groups.DISCOVERY_GROUP_ID, topic));
  t.true(sent > sentAtOutage, 'spans went on arriving in Kafka');
  t.true(lagAtEnd > 0, `the groups held back while the database was away (lag ${lagAtEnd})`);
  const failedWrites = await metricSum(storage.registry, 'bkstream_storage_write_failures_total');
  t.true(failedWrites > 0, 'storage saw its writes fail');
  await db.proxy.start();

  // Both resume on their own and catch up.
  await sleep(2_000);
  sending = false;
  await sender;
  await waitFor('both groups caught up', async () => (await kit.admin.groupLag(groups.STORAGE_SPANS_GROUP_ID, topic)) === 0 && (await kit.admin.groupLag(groups.DISCOVERY_GROUP_ID, topic)) === 0, 120_000, 250);
  t.deepEqual(await paused(), [0, 0], 'every partition resumed');
  const { rows } = await store.query<{ n: number; d: number; e: number }>(
    "SELECT (SELECT count(*)::int FROM storage_span) AS n, (SELECT count(DISTINCT span_id)::int FROM storage_span) AS d, (SELECT count(*)::int FROM apm_endpoint WHERE service_name = 'pg-fault') AS e",
  );
  const r = rows[0] ?? { n: 0, d: 0, e: 0 };
  faultLine(t, 'postgres-outage', { in: sent, out: r.d, duplicates: r.n - r.d }, `endpoints=${r.e} paused_partitions_during=${pausedDuring.join('+')} lag_at_outage_end=${lagAtEnd} storage_write_failures=${failedWrites} outage_ms=${OUTAGE_MS}`);
  t.is(r.d, sent, 'every span produced is stored');
  t.is(r.n, r.d, 'none twice');
  t.is(r.e, sent, 'every span produced is discovered');
  for (const c of [...discovery.service.consumers, ...storage.service.consumers]) t.true(c.joined(), `${c.name} still running`);
});
