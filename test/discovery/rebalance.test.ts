/**
 * Scaling (issue 18, item 4), against the real broker and PostgreSQL: discovery instances, and storage
 * instances, in one consumer group while spans keep flowing. A second and a third instance join, then one leaves (graceful stop):
 * after each change the group's partitions are spread over the members (each instance's own view of its
 * assignment, disjoint and covering every partition), every member processes spans, and at the end every
 * span sent is a row (discovery: one endpoint per span; storage: the span) and no row is there twice.
 * `bkstream up --discovery N --storage N` runs such instances in one process (services/cli/commands/up.ts).
 */
import test, { type ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Registry } from '../../services/common/metrics.ts';
import { silentLogger } from '../../services/common/log.ts';
import type { Span } from '../../services/common/records.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { brokerKit, waitFor, type BrokerKit } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { startStorage, storageTopics } from '../storage/kit.ts';
import { discoveryTopics, produceSpans, span, startDiscovery, T0 } from './helpers.ts';

const PARTITIONS = 6;

/** One instance of a scaled service, as the test sees it. */
interface Member {
  /** Partitions of the span topic it holds (its consumers' own view). */
  partitions(): number[];
  /** Spans it has processed so far (its own metrics). */
  processed(): Promise<number>;
  stop(): Promise<void>;
}

/** A service run as several instances in one group on a span topic, and how to read what it stored. */
interface Scaled {
  name: string;
  topic: string;
  group: string;
  start(): Promise<Member>;
  /** Rows stored (one per span sent) and how many of them are distinct by natural key. */
  stored(): Promise<{ rows: number; distinct: number }>;
}

const assignments = (members: ReadonlyMap<string, Member>): Map<string, number[]> => new Map([...members].map(([name, m]) => [name, m.partitions()]));

/** Every member holds at least one partition, none holds one another holds, and together they hold all. */
function spread(byMember: ReadonlyMap<string, number[]>): boolean {
  const all = [...byMember.values()].flat();
  return [...byMember.values()].every((ps) => ps.length > 0) && new Set(all).size === all.length && all.length === PARTITIONS;
}

const heldOf = (consumers: readonly { assignment(): { topic: string; partitions: number[] }[] }[], topic: string): number[] =>
  consumers.flatMap((c) => c.assignment()).filter((a) => a.topic === topic).flatMap((a) => a.partitions);

async function counterSum(registry: Registry, name: string): Promise<number> {
  return (await registry.getSingleMetric(name)?.get())?.values.reduce((sum, v) => sum + v.value, 0) ?? 0;
}

/** A span with an endpoint and a row of its own (unique trace, span id and name), ending `endUs`. */
const uniqueSpan = (n: number, endUs: number): Span =>
  span({ trace_id: n.toString(16).padStart(32, '0'), kind: 2, span_name: `GET /r/${n}`, attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'scale-svc' }, start_time: endUs - 1_000, end_time: endUs });

/**
 * Spans flow all along while instances join (a, then b, then c) and b leaves; after each change the
 * partitions must be spread over the members and every member must process spans; at the end every
 * span sent is stored once.
 */
async function joinAndLeave(t: ExecutionContext, kit: BrokerKit, service: Scaled, endUs: (n: number) => number): Promise<void> {
  let sent = 0;
  let sending = true;
  const sender = (async () => {
    while (sending) {
      await produceSpans(kit, service.topic, Array.from({ length: 10 }, () => uniqueSpan(++sent, endUs(sent))));
      await sleep(50);
    }
  })();
  t.teardown(async () => {
    sending = false;
    await sender;
  });

  const members = new Map<string, Member>();
  const settle = async (what: string): Promise<void> => {
    const byMember = await waitFor(`${what}: partitions spread over ${[...members.keys()].join(', ')}`, () => {
      const a = assignments(members);
      return spread(a) ? a : undefined;
    }, 60_000, 100);
    // Every member goes on processing spans from its partitions.
    const before = new Map(await Promise.all([...members].map(async ([name, m]) => [name, await m.processed()] as const)));
    await waitFor(`${what}: every member processing`, async () => {
      for (const [name, m] of members) if ((await m.processed()) <= (before.get(name) ?? 0)) return false;
      return true;
    }, 60_000, 100);
    t.log(`${service.name}, ${what}: ${[...byMember].map(([name, ps]) => `${name}=[${ps.join(',')}]`).join(' ')}`);
  };

  members.set('a', await service.start());
  await settle('one instance');
  members.set('b', await service.start());
  await settle('b joined');
  t.is(assignments(members).get('b')?.length, PARTITIONS / 2, 'b: half of the partitions');
  members.set('c', await service.start());
  await settle('c joined');
  for (const [name, ps] of assignments(members)) t.is(ps.length, PARTITIONS / 3, `${name}: a third of the partitions`);
  const leaving = members.get('b')!;
  const bHeld = leaving.partitions();
  members.delete('b');
  await leaving.stop();
  await settle('b left');
  const after = [...assignments(members).values()].flat();
  t.true(bHeld.every((p) => after.includes(p)), `b's partitions ${bHeld.join(',')} moved to a and c`);

  sending = false;
  await sender;
  await waitFor('every span committed by the group', async () => (await kit.admin.groupLag(service.group, service.topic)) === 0, 90_000, 200);
  const { rows, distinct } = await service.stored();
  t.log(`SCALE ${service.name} in=${sent} out=${rows} duplicates=${rows - distinct}`);
  t.is(rows, sent, 'every span sent is a row');
  t.is(rows - distinct, 0, 'no row twice');
}

async function postgres(t: ExecutionContext): Promise<Store> {
  const store = createStore({ databaseUrl: await freshDatabase(t), logger: silentLogger, poolSize: 8 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  return store;
}

test('discovery instances join and leave one group while spans flow: partitions spread and move, every span arrives once', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  const where = await discoveryTopics(t, kit, PARTITIONS);
  const store = await postgres(t);
  await joinAndLeave(t, kit, {
    name: 'discovery',
    topic: where.topics.spans,
    group: `${where.prefix}-g`,
    start: async () => {
      const run = await startDiscovery(t, kit, store, where);
      return { partitions: () => heldOf(run.service.consumers, where.topics.spans), processed: () => counterSum(run.registry, 'bkstream_discovery_spans_total'), stop: () => run.service.stop() };
    },
    stored: async () => {
      const { rows } = await store.query<{ rows: number; distinct: number }>(
        'SELECT count(*)::int AS rows, count(DISTINCT (bk_biz_id, app_name, service_name, endpoint_name, category_id, category_kind_key, category_kind_value, span_kind))::int AS distinct FROM apm_endpoint',
      );
      return rows[0] ?? { rows: 0, distinct: 0 };
    },
  }, (n) => T0 + n);
});

test('storage instances join and leave one group while spans flow: partitions spread and move, every span stored once', async (t) => {
  t.timeout(180_000);
  const kit = await brokerKit(t);
  const where = await storageTopics(t, kit, PARTITIONS);
  const store = await postgres(t);
  const now = Date.now() * 1000;
  await joinAndLeave(t, kit, {
    name: 'storage',
    topic: where.topics.spans,
    group: `${where.prefix}-spans`,
    start: async () => {
      const run = await startStorage(t, kit, store, where);
      return {
        partitions: () => heldOf(run.service.consumers, where.topics.spans),
        // Its own /metrics: span rows it wrote, new or already there.
        processed: async () => {
          const text = await (await fetch(`${run.url}/metrics`)).text();
          return [...text.matchAll(/^bkstream_storage_(?:rows_written|duplicates)_total\{[^}]*signal="spans"[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
        },
        stop: () => run.service.stop(),
      };
    },
    stored: async () => {
      const { rows } = await store.query<{ rows: number; distinct: number }>('SELECT count(*)::int AS rows, count(DISTINCT (trace_id, span_id))::int AS distinct FROM storage_span');
      return rows[0] ?? { rows: 0, distinct: 0 };
    },
  }, (n) => now + n);
});
