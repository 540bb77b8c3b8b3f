/**
 * Broker test kit: unique topic and group names per test, topic creation with teardown, event-driven
 * waits, raw producing and reading. Tests talk to the real broker at KAFKA_BROKERS (set by
 * `npm test` through scripts/with-broker.ts) or the local default 127.0.0.1:9092.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ExecutionContext } from 'ava';
import { Bus, type BusAdmin, type BusProducer, type OutRecord } from '../../services/common/bus/index.ts';
import { errorMessage } from '../../services/common/errors.ts';
import { silentLogger, type Logger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import { installWarningFilter } from '../../services/common/process.ts';

installWarningFilter();

export function brokers(): string[] {
  return (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((s) => s.trim()).filter(Boolean);
}

/** A name no other test (or earlier run) uses. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export function testBus(options: { logger?: Logger; registry?: Registry; clientId?: string } = {}): Bus {
  return new Bus({
    brokers: brokers(),
    clientId: options.clientId ?? uniqueName('test'),
    logger: options.logger ?? silentLogger,
    registry: options.registry ?? createRegistry(),
  });
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${errorMessage(last)}` : ''}`);
    await sleep(intervalMs);
  }
}

export interface BrokerKit {
  bus: Bus;
  admin: BusAdmin;
  producer: BusProducer;
  /** Creates a uniquely named topic, deleted in teardown. */
  topic(prefix: string, partitions?: number): Promise<string>;
  /** A null value is a tombstone. */
  produce(topic: string, messages: OutRecord[]): Promise<void>;
}

/** Connects an admin and a producer for one test and cleans up after it (topics included). */
export async function brokerKit(t: ExecutionContext, options: { registry?: Registry } = {}): Promise<BrokerKit> {
  const bus = testBus(options);
  const admin = bus.admin();
  // Idempotent, so a retried request never leaves duplicates that would skew a test's counts.
  const producer = bus.producer({ idempotent: true });
  await admin.start();
  await producer.start();
  const topics: string[] = [];
  t.teardown(async () => {
    await producer.stop();
    await admin.deleteTopics(topics).catch(() => undefined);
    await admin.stop();
  });
  return {
    bus,
    admin,
    producer,
    async topic(prefix, partitions = 1) {
      const name = uniqueName(prefix);
      await admin.ensureTopics([{ topic: name, numPartitions: partitions, retentionMs: 3_600_000 }]);
      topics.push(name);
      return name;
    },
    produce: (topic, messages) => producer.send(topic, messages),
  };
}
