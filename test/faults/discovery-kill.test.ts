/**
 * Fault (c): three discovery processes (`node services/discovery/main.ts`, as deployed) share one group on
 * a 6-partition span topic and one PostgreSQL database while spans are produced all along. One of them is
 * killed with SIGKILL while it has processed spans it has not flushed yet (mid-batch: its flushes are
 * 1 s apart). Its session expires, its partitions move to the other two (their own logs say so), they
 * read its uncommitted records again, and every span produced becomes exactly one endpoint row.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../../services/common/log.ts';
import { createStore } from '../../services/common/store/index.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';
import { produceSpans, span } from '../discovery/helpers.ts';
import { brokerKit, brokers, waitFor } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { faultLine, faultTopics } from './kit.ts';

const MAIN = resolve(import.meta.dirname, '../../services/discovery/main.ts');
const PARTITIONS = 6;

async function freePort(): Promise<number> {
  return new Promise((done) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

/** A discovery process, its port, and the partitions of `topic` its span group's latest assignment log line gave it. */
interface Instance {
  name: string;
  child: ChildProcess;
  port: number;
  partitions(): number[] | undefined;
  spans(): Promise<number>;
}

async function startInstance(t: { teardown(fn: () => void): void }, name: string, env: NodeJS.ProcessEnv, topic: string): Promise<Instance> {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, ...env, DISCOVERY_HTTP_PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let held: number[] | undefined;
  let rest = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (rest + chunk.toString('utf8')).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.includes('partitions assigned')) continue;
      try {
        // Only the span group's lines: the replay and events groups log their own assignments (without
        // the span topic), in any order relative to it.
        const entry = JSON.parse(line) as { group?: string; assignment?: { topic: string; partitions: number[] }[] };
        if (entry.group !== env.DISCOVERY_GROUP_ID) continue;
        const mine = entry.assignment?.filter((a) => a.topic === topic);
        if (mine) held = mine.flatMap((a) => a.partitions);
      } catch {
        // not a log line of ours
      }
    }
  });
  child.stderr?.resume();
  return {
    name,
    child,
    port,
    partitions: () => held,
    spans: async () => {
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      return Number(/^bkstream_discovery_spans_total(?:\{[^}]*\})? (\d+)/m.exec(text)?.[1] ?? 0);
    },
  };
}

const spreadOver = (instances: readonly Instance[]): boolean => {
  const all = instances.map((i) => i.partitions() ?? []);
  const flat = all.flat();
  return all.every((ps) => ps.length > 0) && new Set(flat).size === PARTITIONS && flat.length === PARTITIONS;
};

test('one of three discovery processes killed with SIGKILL mid-batch: its partitions move, every span arrives, no row twice', async (t) => {
  t.timeout(240_000);
  const kit = await brokerKit(t);
  const prefix = await faultTopics(t, brokers(), PARTITIONS);
  const databaseUrl = await freshDatabase(t);
  const store = createStore({ databaseUrl, logger: silentLogger, poolSize: 4 });
  await store.start();
  t.teardown(() => store.stop());
  await store.migrate();
  const group = `${prefix}-d`;
  t.teardown(() => kit.admin.deleteGroup(group));
  const env: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: brokers().join(','),
    DATABASE_URL: databaseUrl,
    TOPIC_PREFIX: prefix,
    DISCOVERY_GROUP_ID: group,
    DISCOVERY_REPLAY_GROUP_ID: `${prefix}-dr`,
    DISCOVERY_EVENTS_GROUP_ID: `${prefix}-de`,
    // Flushes (and so commits) 1 s apart: a process always holds processed spans it has not written.
    DISCOVERY_FLUSH_INTERVAL_MS: '1000',
    DISCOVERY_PAIRING_TTL_MS: '300',
    DISCOVERY_SWEEP_INTERVAL_MS: '3600000',
    LOG_LEVEL: 'info',
    ...ADMIN_ENV,
  };
  const topic = `${prefix}.spans`;

  // Spans produced all along: one trace per record, one server span with an endpoint of its own.
  const now = Date.now() * 1000;
  let sent = 0;
  let sending = true;
  const sender = (async () => {
    while (sending) {
      await produceSpans(kit, topic, Array.from({ length: 10 }, () => {
        sent++;
        return span({ trace_id: sent.toString(16).padStart(32, '0'), kind: 2, span_name: `GET /kill/${sent}`, attributes: { 'http.method': 'GET' }, resource: { 'service.name': 'kill-svc' }, start_time: now + sent - 1_000, end_time: now + sent });
      }));
      await sleep(50);
    }
  })();
  t.teardown(async () => {
    sending = false;
    await sender;
  });

  const instances = [await startInstance(t, 'a', env, topic), await startInstance(t, 'b', env, topic), await startInstance(t, 'c', env, topic)];
  await waitFor('the partitions spread over the three processes', () => spreadOver(instances), 90_000, 100);
  const victim = instances[1]!;
  const held = victim.partitions() ?? [];
  // Mid-batch: the victim is processing (its count moving) and its last flush is under a second old.
  const before = await victim.spans();
  await waitFor('the victim processing spans', async () => (await victim.spans()) > before, 30_000, 50);
  const exited = once(victim.child, 'exit');
  victim.child.kill('SIGKILL');
  await exited;
  const sentAtKill = sent;
  t.log(`killed ${victim.name} holding partitions ${held.join(',')} (it had processed ${before} spans at the last look)`);

  const survivors = instances.filter((i) => i !== victim);
  await waitFor('the victim\'s partitions moved to the survivors', () => spreadOver(survivors), 90_000, 200);
  const survivorsHold = survivors.flatMap((i) => i.partitions() ?? []);
  t.true(held.every((p) => survivorsHold.includes(p)), `partitions ${held.join(',')} moved`);
  t.log(`after the kill: ${survivors.map((i) => `${i.name}=[${(i.partitions() ?? []).join(',')}]`).join(' ')}`);
  await waitFor('spans produced after the kill', () => sent > sentAtKill + 200, 30_000, 100);
  sending = false;
  await sender;
  await waitFor('the group caught up', async () => (await kit.admin.groupLag(group, topic)) === 0, 120_000, 250);

  const { rows } = await store.query<{ n: number; d: number }>("SELECT count(*)::int AS n, count(DISTINCT endpoint_name)::int AS d FROM apm_endpoint WHERE service_name = 'kill-svc'");
  const r = rows[0] ?? { n: 0, d: 0 };
  faultLine(t, 'discovery-sigkill', { in: sent, out: r.d, duplicates: r.n - r.d }, `killed_partitions=${held.join(',')}`);
  t.is(r.d, sent, 'every span produced is an endpoint');
  t.is(r.n, r.d, 'no row twice');
  for (const i of survivors) {
    t.is(i.child.exitCode, null, `${i.name} still running`);
    i.child.kill('SIGTERM');
    await once(i.child, 'exit');
  }
});
