/**
 * The agent service for end-to-end tests: a copy of the example configuration in a temporary directory,
 * the service started in this process against a real broker, and a reader of its two topics that keeps
 * each record's key and headers.
 */
import type { ExecutionContext } from 'ava';
import { cpSync, createWriteStream, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { kafkaSettings, runDir, stopKafka, type KafkaSettings } from '../../services/cli/local-kafka.ts';
import { codecFor } from '../../services/common/avro/index.ts';
import { rawDecoder, type Bus } from '../../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import { createLogger, silentLogger, type Logger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import type { AgentEvent, MetricBatch } from '../../services/common/records.ts';
import { HEADER_RUN, HEADER_SEQ } from '../../services/agent/sender.ts';
import { createAgentService, loadAgentServiceConfig, type AgentOverrides, type AgentService } from '../../services/agent/service.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';
import { uniqueName } from '../helpers/kafka.ts';
import { tempDir } from './kit.ts';
import { freePortPair } from '../helpers/ports.ts';
export { freePortPair };

export const EXAMPLES = resolve(import.meta.dirname, '../../services/agent/examples');

/**
 * The example main file and its conf.d copied into a fresh directory. `periodSeconds` rewrites every
 * `period: 1m` / `period: 60` of the copies (main file and child files) so tests need not wait minutes;
 * nothing else changes.
 */
export function exampleConfig(t: ExecutionContext, options: { periodSeconds?: number } = {}): { dir: string; main: string } {
  const dir = tempDir(t);
  cpSync(EXAMPLES, dir, { recursive: true });
  const rewrite = (p: string): void => {
    if (options.periodSeconds === undefined) return;
    const s = `${options.periodSeconds}s`;
    writeFileSync(p, readFileSync(p, 'utf8').replace(/^(\s*-?\s*period:\s*)(1m|60s|60)\s*$/gm, `$1${s}`));
  };
  const main = join(dir, 'bkmonitorbeat.yaml');
  rewrite(main);
  for (const f of readdirSync(join(dir, 'conf.d'))) rewrite(join(dir, 'conf.d', f));
  return { dir, main };
}

/** AGENT_TEST_LOG=<file>: the agent's debug log of a test run goes there (for diagnosing a failure). */
function debugLogger(): Logger | undefined {
  const file = process.env.AGENT_TEST_LOG;
  return file ? createLogger({ level: 'debug', stream: createWriteStream(file, { flags: 'a' }) }) : undefined;
}

export interface StartedAgent {
  service: AgentService;
  registry: Registry;
  adminUrl: string;
  env: NodeJS.ProcessEnv;
}

/** Starts the agent service (admin on a free port, state under `stateDir`); stopped in teardown unless stopped before. */
export async function startAgent(t: ExecutionContext, options: { main: string; brokers: string[]; prefix: string; stateDir: string; env?: NodeJS.ProcessEnv; overrides?: AgentOverrides; logger?: Logger }): Promise<StartedAgent> {
  const env: NodeJS.ProcessEnv = {
    KAFKA_BROKERS: options.brokers.join(','),
    TOPIC_PREFIX: options.prefix,
    AGENT_CONFIG: options.main,
    AGENT_STATE_DIR: options.stateDir,
    AGENT_ADMIN_PORT: '0',
    AGENT_SHUTDOWN_TIMEOUT_MS: '3000',
    LOG_LEVEL: 'silent',
    ...ADMIN_ENV,
    ...options.env,
  };
  const config = loadAgentServiceConfig(env);
  const registry = createRegistry({ service: 'agent' });
  const service = await createAgentService({ env, logger: options.logger ?? debugLogger() ?? silentLogger, registry, common: loadConfig(commonSpec, { env }) }, config, options.overrides);
  await service.start();
  let stopped = false;
  const stop = service.stop.bind(service);
  service.stop = async () => {
    stopped = true;
    await stop();
  };
  t.teardown(async () => {
    if (!stopped) await service.stop();
  });
  return { service, registry, adminUrl: `http://127.0.0.1:${service.adminPort()}`, env };
}

export interface ReadEvent {
  key: string;
  run: string;
  seq: number;
  value: AgentEvent;
  body: Record<string, unknown>;
}

export interface ReadMetrics {
  key: string;
  run: string;
  seq: number;
  value: MetricBatch;
}

const header = (h: unknown): string => (Buffer.isBuffer(h) ? h.toString() : typeof h === 'string' ? h : '');

/** Reads `<prefix>.events` and `<prefix>.metrics` from the beginning, decoding every record. */
export async function readAgentTopics(t: ExecutionContext, bus: Bus, prefix: string): Promise<{ events: ReadEvent[]; metrics: ReadMetrics[] }> {
  const events: ReadEvent[] = [];
  const metrics: ReadMetrics[] = [];
  const eventCodec = codecFor('AgentEvent');
  const metricCodec = codecFor('MetricBatch');
  const groupId = uniqueName('agent-read');
  const consumer = bus.consumer<Buffer>({
    groupId,
    topics: [`${prefix}.events`, `${prefix}.metrics`],
    codec: rawDecoder,
    dlqTopic: `${prefix}.unused-dlq`,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 500,
    maxWaitTimeMs: 100,
    partitionsConsumedConcurrently: 6,
    handler: async (batch) => {
      for (const r of batch.records) {
        const common = { key: r.key?.toString() ?? '', run: header(r.headers[HEADER_RUN]), seq: Number(header(r.headers[HEADER_SEQ])) };
        if (batch.topic.endsWith('.events')) {
          const value = eventCodec.decode(r.value);
          events.push({ ...common, value, body: JSON.parse(value.body) as Record<string, unknown> });
        } else {
          metrics.push({ ...common, value: metricCodec.decode(r.value) });
        }
      }
    },
  });
  t.teardown(async () => {
    await consumer.stop();
    const admin = bus.admin();
    await admin.start().catch(() => undefined);
    await admin.deleteGroup(groupId).catch(() => undefined);
    await admin.stop().catch(() => undefined);
  });
  await consumer.start();
  return { events, metrics };
}

/** Creates `<prefix>.events` and `<prefix>.metrics` (deleted in teardown). */
export async function agentTopics(t: ExecutionContext, bus: Bus, prefix: string, partitions = 3): Promise<void> {
  const admin = bus.admin();
  await admin.start();
  const topics = [`${prefix}.events`, `${prefix}.metrics`];
  await admin.ensureTopics(topics.map((topic) => ({ topic, numPartitions: partitions, retentionMs: 3_600_000 })));
  t.teardown(async () => {
    const a = bus.admin();
    await a.start().catch(() => undefined);
    await a.deleteTopics(topics).catch(() => undefined);
    await a.stop().catch(() => undefined);
  });
  await admin.stop();
}


/** A broker of the test's own on `port` (never the shared one), stopped and deleted in teardown. */
export function dedicatedBroker(t: ExecutionContext, port: number): KafkaSettings {
  const settings = kafkaSettings({ ...process.env, KAFKA_PORT: String(port), KAFKA_CONTROLLER_PORT: String(port + 1) });
  t.teardown(async () => {
    await stopKafka(settings);
    rmSync(runDir(settings), { recursive: true, force: true });
  });
  return settings;
}
