/**
 * Test kit of the GSE routing tests: an orchestrator with its flow topics and the compacted
 * `<prefix>.gse.routes` under a unique prefix, on a given store, and a client of its GSE API that speaks
 * either path family the reference calls (legacy ESB `config_*` and the API gateway's `data/*`).
 */
import type { ExecutionContext } from 'ava';
import type { Store } from '../../services/common/store/index.ts';
import { SecretBox, parseKey } from '../../services/common/secrets.ts';
import { topicName } from '../../services/common/topics.ts';
import type { GseApiName } from '../../services/orchestrator/gse/registry.ts';
import { jsonHeaders } from '../common/auth-kit.ts';
import { brokerKit, type BrokerKit } from '../helpers/kafka.ts';
import { flowTopics, startOrchestrator, startSim, TEST_SECRET_KEY, type OrchestratorUnderTest } from './kit.ts';

export type Family = 'esb' | 'apigw';
export const FAMILIES: readonly Family[] = ['esb', 'apigw'];

/** The box the orchestrators under test seal with (BKSTREAM_SECRET_KEY of kit.ts). */
export const testBox = (): SecretBox => new SecretBox(parseKey(TEST_SECRET_KEY));

/** The path of a call in a family, as bk-monitor builds it (`base_url` + `action`). */
export function gsePath(family: Family, api: GseApiName): string {
  const [op, obj] = api.split('_') as [string, string];
  return family === 'esb' ? `/api/c/compapi/v2/gse/config_${op}_${obj}/` : `/api/v2/data/${op}_${obj}`;
}

export interface GseReply {
  status: number;
  body: { result: boolean; code: number; message: string; data: unknown; request_id: string };
}

export interface GseUnderTest extends OrchestratorUnderTest {
  kit: BrokerKit;
  store: Store;
  /** `<prefix>.gse.routes` */
  routesTopic: string;
  call(family: Family, api: GseApiName, body: unknown): Promise<GseReply>;
}

/** Creates the compacted routes topic of `prefix` (deleted in teardown). */
export async function routesTopicOf(t: ExecutionContext, kit: BrokerKit, prefix: string): Promise<string> {
  const topic = topicName(prefix, 'gseRoutes');
  await kit.admin.ensureTopics([{ topic, numPartitions: 1, retentionMs: 3_600_000, cleanupPolicy: 'compact' }]);
  t.teardown(() => kit.admin.deleteTopics([topic]).catch(() => undefined));
  return topic;
}

/** An orchestrator on `store` with every topic it needs. */
export async function gseSetup(t: ExecutionContext, store: Store, options: { prefix?: string; kit?: BrokerKit; env?: Record<string, string> } = {}): Promise<GseUnderTest> {
  const kit = options.kit ?? (await brokerKit(t));
  const prefix = options.prefix ?? (await flowTopics(t, kit));
  const routesTopic = options.prefix ? topicName(prefix, 'gseRoutes') : await routesTopicOf(t, kit, prefix);
  const sim = await startSim(t);
  const under = await startOrchestrator(t, { store, bus: kit.bus, sim, prefix, ...(options.env ? { env: options.env } : {}) });
  const base = `http://127.0.0.1:${under.orch.httpPort()}`;
  return {
    ...under,
    kit,
    store,
    routesTopic,
    async call(family, api, body) {
      const res = await fetch(`${base}${gsePath(family, api)}`, { method: 'POST', headers: jsonHeaders(), body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as GseReply['body'] };
    },
  };
}

/** add_streamto as bk-monitor's KafkaGseSyncer sends it (metadata/utils/gse.py). */
export function addStreamToBody(name: string, options: { port?: number; username?: string; password?: string } = {}): Record<string, unknown> {
  return {
    metadata: { plat_name: 'bkmonitor' },
    operation: { operator_name: 'admin' },
    stream_to: {
      name,
      report_mode: 'kafka',
      kafka: {
        storage_address: [{ ip: '127.0.0.1', port: options.port ?? 9092 }],
        sasl_username: options.username ?? '',
        sasl_passwd: options.password ?? '',
        ...(options.username ? { sasl_mechanisms: 'SCRAM-SHA-512', security_protocol: 'SASL_PLAINTEXT' } : {}),
      },
    },
  };
}

/** add_route as bk-monitor's DataSource.register_to_gse sends it (its gse_route_config). */
export function addRouteBody(channelId: number | undefined, streamToId: number, topic: string): Record<string, unknown> {
  return {
    metadata: { ...(channelId === undefined ? {} : { channel_id: channelId }), plat_name: 'bkmonitor' },
    operation: { operator_name: 'admin' },
    route: [{ name: `stream_to_bkmonitor_kafka_${topic}`, stream_to: { stream_to_id: streamToId, kafka: { topic_name: topic } } }],
  };
}
