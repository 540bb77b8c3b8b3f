/**
 * What the readiness fault tests share (SECURITY.md, "Health"): a Kafka broker of the test's own (never
 * the shared one) that it stops and starts, a PostgreSQL database of its own reached through a TCP proxy
 * that it takes down and brings back, and the measurement of how long `/readyz` takes to follow.
 */
import type { ExecutionContext } from 'ava';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { kafkaSettings, startKafka, stopKafka, type KafkaSettings } from '../../services/cli/local-kafka.ts';
import { Bus } from '../../services/common/bus/index.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createStore, type Store } from '../../services/common/store/index.ts';
import { uniqueName } from '../helpers/kafka.ts';
import { freshDatabase } from '../helpers/store.ts';
import { TcpProxy, timeUntil } from './http-kit.ts';
import { freePortPair } from '../helpers/ports.ts';


export interface OwnBroker {
  brokers: string[];
  settings: KafkaSettings;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Creates topics on it. */
  ensureTopics(topics: readonly { topic: string; numPartitions: number }[]): Promise<void>;
}

/** A broker of the test's own, started; stopped and its data removed in teardown. */
export async function ownBroker(t: ExecutionContext): Promise<OwnBroker> {
  const port = await freePortPair();
  const settings = kafkaSettings({ ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) });
  t.teardown(async () => {
    await stopKafka(settings);
    rmSync(join(settings.home, 'kafka', `run-${settings.port}`), { recursive: true, force: true });
  });
  const brokers = [`127.0.0.1:${port}`];
  const broker: OwnBroker = {
    brokers,
    settings,
    start: async () => {
      await startKafka(settings);
    },
    stop: async () => {
      await stopKafka(settings);
    },
    ensureTopics: async (topics) => {
      const admin = new Bus({ brokers, clientId: uniqueName('fault-admin'), logger: silentLogger }).admin();
      await admin.start();
      try {
        await admin.ensureTopics(topics.map((x) => ({ ...x, retentionMs: 3_600_000 })));
      } finally {
        await admin.stop();
      }
    },
  };
  await broker.start();
  return broker;
}

export interface ProxiedDatabase {
  /** The database's URL through the proxy (what the service is given). */
  url: string;
  proxy: TcpProxy;
  /** A migrated store on the URL (closed in teardown). */
  store: Store;
}

/** A fresh PostgreSQL database behind a TCP proxy, migrated; `proxy.stop()` is the outage. */
export async function proxiedDatabase(t: ExecutionContext, poolSize = 4): Promise<ProxiedDatabase> {
  const direct = new URL(await freshDatabase(t));
  const proxy = new TcpProxy(direct.hostname, Number(direct.port || 5432));
  await proxy.start();
  t.teardown(() => proxy.stop());
  const url = new URL(direct);
  url.hostname = '127.0.0.1';
  url.port = String(proxy.port);
  const store = createStore({ databaseUrl: url.toString(), logger: silentLogger, poolSize });
  await store.start();
  await store.migrate();
  t.teardown(() => store.stop());
  return { url: url.toString(), proxy, store };
}

/** The status of `/readyz` (0 when the server does not answer). */
export async function readyStatus(baseUrl: string): Promise<number> {
  try {
    return (await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) })).status;
  } catch {
    return 0;
  }
}

/** Limit of both flips, ms (issue 16: readiness within 5 s of losing a dependency and of its return). */
export const FLIP_LIMIT_MS = 5_000;

/**
 * Takes a dependency away (`down`), measures how long `/readyz` takes to say 503, brings it back (`up`),
 * and measures how long `/readyz` takes to say 200 again — each from the moment `down` / `up` returned.
 */
export async function measureFlips(baseUrl: string, down: () => Promise<void>, up: () => Promise<void>): Promise<{ downMs: number; upMs: number }> {
  await timeUntil('ready before the fault', async () => (await readyStatus(baseUrl)) === 200, 30_000);
  await down();
  const downMs = await timeUntil('readiness to fail', async () => (await readyStatus(baseUrl)) === 503, 30_000);
  await up();
  const upMs = await timeUntil('readiness to recover', async () => (await readyStatus(baseUrl)) === 200, 30_000);
  return { downMs, upMs };
}
