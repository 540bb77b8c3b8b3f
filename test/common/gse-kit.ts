/**
 * What the GSE publishing tests share: a second Kafka cluster of the test file's own (its own ports and
 * data directory under BKSTREAM_HOME; never the shared broker), receivers pointing at a cluster, the route
 * records of `<prefix>.gse.routes` as the registry writes them, and reading a topic back whole.
 */
import { rmSync } from 'node:fs';
import { kafkaSettings, runDir, startKafka, stopKafka, type KafkaSettings } from '../../services/cli/local-kafka.ts';
import { Bus, type RawRecord } from '../../services/common/bus/index.ts';
import { UnavailableError } from '../../services/common/errors.ts';
import type { PoolProducer, TopicMessages } from '../../services/common/gse/producers.ts';
import { routesKey, type RouteDoc, type StreamToDoc } from '../../services/common/gse/records.ts';
import type { KafkaReceiver } from '../../services/common/gse/routes.ts';
import { silentLogger } from '../../services/common/log.ts';
import { freePortPair } from '../agent/service-kit.ts';
import { uniqueName, waitFor } from '../helpers/kafka.ts';

export interface Cluster {
  readonly brokers: string[];
  readonly bus: Bus;
  /** Creates uniquely named topics (`prefixes` → names), deleted by `cleanup()`. */
  topics(prefixes: readonly string[], partitions?: number): Promise<string[]>;
  /** Deletes the topics made by `topics()`. */
  cleanup(): Promise<void>;
}

export interface SecondCluster extends Cluster {
  readonly settings: KafkaSettings;
  /** Stops the broker (an outage); `start()` brings it back on the same ports and data. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops it for good and deletes its data. */
  dispose(): Promise<void>;
}

function clusterOf(brokers: string[]): Cluster {
  const bus = new Bus({ brokers, clientId: uniqueName('gse-test'), logger: silentLogger, retries: 3 });
  const made: string[] = [];
  return {
    brokers,
    bus,
    async cleanup() {
      const admin = bus.admin();
      await admin.start().catch(() => undefined);
      await admin.deleteTopics(made.splice(0)).catch(() => undefined);
      await admin.stop().catch(() => undefined);
    },
    async topics(prefixes, partitions = 1) {
      const names = prefixes.map((p) => uniqueName(p));
      made.push(...names);
      const admin = bus.admin();
      await admin.start();
      try {
        await admin.ensureTopics(names.map((topic) => ({ topic, numPartitions: partitions, retentionMs: 3_600_000 })));
      } finally {
        await admin.stop();
      }
      return names;
    },
  };
}

/** A producer that records what it sends and can be made to fail. */
export class RecordingProducer implements PoolProducer {
  /** What was acknowledged; `headers` is the `bk-agent-seq` header when there is one. */
  readonly sent: { topic: string; key: string; value: string; partition: number | undefined; headers: string }[] = [];
  starts = 0;
  stops = 0;
  failStart = false;
  failSend = false;
  readonly label: string;
  constructor(label: string) {
    this.label = label;
  }
  async start(): Promise<void> {
    this.starts++;
    if (this.failStart) throw new UnavailableError(`${this.label}: connection refused`);
  }
  async stop(): Promise<void> {
    this.stops++;
  }
  async sendBatch(batches: readonly TopicMessages[]): Promise<void> {
    if (this.failSend) throw new UnavailableError(`${this.label}: not acknowledged`);
    for (const b of batches) for (const m of b.messages) this.sent.push({ topic: b.topic, key: String(m.key), value: m.value.toString(), partition: m.partition, headers: String(m.headers?.['bk-agent-seq'] ?? '') });
  }
}

/** The shared broker (KAFKA_BROKERS). */
export function sharedCluster(): Cluster {
  return clusterOf((process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(',').map((s) => s.trim()).filter(Boolean));
}

/**
 * Starts a broker of the caller's own on free ports. A failed start is retried on other ports (twice): the
 * local broker's storage format fails when the random cluster id it generates begins with `-` (1 in 64;
 * services/cli/local-kafka.ts passes it as a separate argument, which the tool then reads as an option).
 */
export async function startSecondCluster(): Promise<SecondCluster> {
  let settings: KafkaSettings | undefined;
  for (let attempt = 1; !settings; attempt++) {
    const port = await freePortPair();
    const s = kafkaSettings({ ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) });
    try {
      await startKafka(s);
      settings = s;
    } catch (err) {
      await stopKafka(s).catch(() => undefined);
      rmSync(runDir(s), { recursive: true, force: true });
      if (attempt >= 3) throw err;
    }
  }
  const port = settings.port;
  const cluster = clusterOf([`127.0.0.1:${port}`]);
  return {
    ...cluster,
    settings,
    stop: async () => {
      await stopKafka(settings);
    },
    start: async () => {
      await startKafka(settings);
    },
    dispose: async () => {
      await stopKafka(settings);
      rmSync(runDir(settings), { recursive: true, force: true });
    },
  };
}

export function receiverOn(streamToId: number, cluster: Pick<Cluster, 'brokers'>): KafkaReceiver {
  return { streamToId, name: `cluster-${streamToId}`, brokers: cluster.brokers, ssl: false };
}

/** A stream_to record as the registry writes it (no SASL). */
export function streamToRecord(streamToId: number, cluster: Pick<Cluster, 'brokers'>): { key: string; value: Buffer } {
  const doc: StreamToDoc = {
    stream_to_id: streamToId,
    name: `cluster-${streamToId}`,
    report_mode: 'kafka',
    kafka: { storage_address: cluster.brokers.map((b) => ({ ip: b.slice(0, b.lastIndexOf(':')), port: Number(b.slice(b.lastIndexOf(':') + 1)) })) },
  };
  return { key: routesKey.streamTo(streamToId), value: Buffer.from(JSON.stringify(doc)) };
}

/** A route record: the data id to each (stream_to, topic). */
export function routeRecord(channelId: number, targets: readonly { streamToId: number; topic: string; partition?: number }[]): { key: string; value: Buffer } {
  const doc: RouteDoc = {
    channel_id: channelId,
    plat_name: 'bkmonitor',
    route: targets.map((t, i) => ({ name: `r${i}`, stream_to: { stream_to_id: t.streamToId, kafka: { topic_name: t.topic, ...(t.partition === undefined ? {} : { partition: t.partition }) } } })),
  };
  return { key: routesKey.route(channelId), value: Buffer.from(JSON.stringify(doc)) };
}

/** Every record of `topic` now, by partition then offset. */
export async function readTopic(bus: Bus, topic: string): Promise<RawRecord[]> {
  const admin = bus.admin();
  await admin.start();
  let marks: { partition: number; low: string; high: string }[];
  try {
    marks = await admin.watermarks(topic);
  } finally {
    await admin.stop();
  }
  const ranges = marks.filter((m) => BigInt(m.high) > BigInt(m.low)).map((m) => ({ partition: m.partition, start: m.low, end: m.high }));
  const out: RawRecord[] = [];
  if (ranges.length > 0) await bus.readRange(topic, ranges, async (records) => void out.push(...records));
  return out.sort((a, b) => a.partition - b.partition || Number(BigInt(a.offset) - BigInt(b.offset)));
}

/** Records in `topic` now (the sum of its partitions' high - low watermarks). */
export async function countRecords(bus: Bus, topic: string): Promise<number> {
  const admin = bus.admin();
  await admin.start();
  try {
    return (await admin.watermarks(topic)).reduce((n, m) => n + Number(BigInt(m.high) - BigInt(m.low)), 0);
  } finally {
    await admin.stop();
  }
}

/** Waits until `topic` holds at least `n` records (by its watermarks), then reads them all. */
export async function waitForRecords(bus: Bus, topic: string, n: number, timeoutMs = 60_000): Promise<RawRecord[]> {
  await waitFor(`${n} records on ${topic}`, async () => (await countRecords(bus, topic)) >= n, timeoutMs, 100);
  return readTopic(bus, topic);
}

/** The JSON values of records. */
export function values<T = { dataid: number; n: number }>(records: readonly RawRecord[]): T[] {
  return records.map((r) => JSON.parse(r.value.toString('utf8')) as T);
}
