/**
 * The records of the compacted topic `<prefix>.gse.routes`, declared once for the registry that writes
 * them (services/orchestrator/gse/) and the watcher that reads them ({@link RouteWatcher}).
 *
 * - key `stream_to:<stream_to_id>`, value: the stream_to as the reference's GSE API describes it
 *   ({@link StreamToDoc}: `stream_to_id`, `name`, `report_mode`, `kafka.storage_address[{ip, port}]`,
 *   `sasl_username`, `sasl_mechanisms`, `security_protocol`) with `sasl_passwd` **sealed** by the
 *   registry's SecretBox for {@link SASL_PASSWD_CONTEXT} — never plain;
 * - key `route:<channel_id>`, value: the route ({@link RouteDoc}: `channel_id`, `plat_name`,
 *   `route[{name, stream_to: {stream_to_id, kafka: {topic_name, partition?}}}]`);
 * - a null value (tombstone) deletes the key's object.
 *
 * The decoders throw {@link MalformedRouteRecord} for anything else; readers skip such records.
 */
import type { DataRoute, KafkaReceiver, RouteTarget } from './routes.ts';

/** The additional data a stream_to's SASL password is sealed for (the column that keeps it). */
export const SASL_PASSWD_CONTEXT = 'gse_stream_to.sasl_passwd';

export const routesKey = {
  streamTo: (streamToId: number): string => `stream_to:${streamToId}`,
  route: (channelId: number): string => `route:${channelId}`,
};

export type RoutesKey = { kind: 'stream_to'; id: number } | { kind: 'route'; id: number };

/** A record that is not a stream_to or a route this version understands. */
export class MalformedRouteRecord extends Error {
  override readonly name = 'MalformedRouteRecord';
}

/** The key's kind and id; throws {@link MalformedRouteRecord}. */
export function parseRoutesKey(key: string): RoutesKey {
  const m = /^(stream_to|route):([0-9]{1,15})$/.exec(key);
  if (!m) throw new MalformedRouteRecord(`key ${JSON.stringify(key.slice(0, 80))} is neither stream_to:<id> nor route:<id>`);
  return { kind: m[1] as 'stream_to' | 'route', id: Number(m[2]) };
}

export interface StorageAddress {
  ip: string;
  port: number;
}

/** The reference's Kafka receiver settings (`stream_to.kafka`). */
export interface KafkaStreamTo {
  storage_address: StorageAddress[];
  sasl_username?: string;
  /** Sealed on the topic and in the table; plain only in a request. */
  sasl_passwd?: string;
  sasl_mechanisms?: string;
  security_protocol?: string;
}

/** A stream_to as the topic carries it. */
export interface StreamToDoc {
  stream_to_id: number;
  name: string;
  report_mode: 'kafka';
  data_log_path?: string;
  kafka: KafkaStreamTo;
}

/** One target of a route (`route[]` of the reference's add_route). */
export interface RouteItemDoc {
  name: string;
  stream_to: { stream_to_id: number; kafka: { topic_name: string; data_set?: string; biz_id?: number; partition?: number } };
  filter_name_and?: string[];
  filter_name_or?: string[];
}

/** A route as the topic carries it. */
export interface RouteDoc {
  channel_id: number;
  plat_name: string;
  route: RouteItemDoc[];
}

const MECHANISMS: Record<string, NonNullable<KafkaReceiver['sasl']>['mechanism']> = {
  'PLAIN': 'plain',
  'SCRAM-SHA-256': 'scram-sha-256',
  'SCRAM-SHA-512': 'scram-sha-512',
};

/** The SASL mechanisms a receiver may name (reference `sasl_mechanisms`, upper case). */
export const SASL_MECHANISMS: readonly string[] = Object.keys(MECHANISMS);
/** The security protocols a receiver may name (reference `security_protocol`). */
export const SECURITY_PROTOCOLS: readonly string[] = ['PLAINTEXT', 'SASL_PLAINTEXT', 'SASL_SSL', 'SSL'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

function fail(message: string): never {
  throw new MalformedRouteRecord(message);
}

/** A stream_to record's value; throws {@link MalformedRouteRecord}. */
export function decodeStreamTo(value: unknown, id: number): StreamToDoc {
  if (!isObject(value)) fail('stream_to value is not an object');
  if (value.stream_to_id !== id) fail(`stream_to_id ${String(value.stream_to_id)} does not match the key's ${id}`);
  if (typeof value.name !== 'string' || value.name === '') fail('stream_to.name is not a non-empty string');
  if (value.report_mode !== 'kafka') fail(`stream_to.report_mode ${JSON.stringify(value.report_mode)} is not kafka`);
  const k = value.kafka;
  if (!isObject(k)) fail('stream_to.kafka is not an object');
  if (!Array.isArray(k.storage_address) || k.storage_address.length === 0) fail('stream_to.kafka.storage_address is not a non-empty list');
  for (const a of k.storage_address as unknown[]) {
    if (!isObject(a) || typeof a.ip !== 'string' || a.ip === '' || !Number.isInteger(a.port) || (a.port as number) < 1 || (a.port as number) > 65_535) {
      fail('stream_to.kafka.storage_address has an entry that is not {ip, port}');
    }
  }
  for (const f of ['sasl_username', 'sasl_passwd', 'sasl_mechanisms', 'security_protocol'] as const) {
    if (k[f] !== undefined && typeof k[f] !== 'string') fail(`stream_to.kafka.${f} is not a string`);
  }
  if (typeof k.sasl_mechanisms === 'string' && k.sasl_mechanisms !== '' && !(k.sasl_mechanisms.toUpperCase() in MECHANISMS)) fail(`stream_to.kafka.sasl_mechanisms ${k.sasl_mechanisms} is not one of ${SASL_MECHANISMS.join(', ')}`);
  if (typeof k.security_protocol === 'string' && k.security_protocol !== '' && !SECURITY_PROTOCOLS.includes(k.security_protocol.toUpperCase())) fail(`stream_to.kafka.security_protocol ${k.security_protocol} is not one of ${SECURITY_PROTOCOLS.join(', ')}`);
  return value as unknown as StreamToDoc;
}

/** A route record's value; throws {@link MalformedRouteRecord}. */
export function decodeRoute(value: unknown, id: number): RouteDoc {
  if (!isObject(value)) fail('route value is not an object');
  if (value.channel_id !== id) fail(`channel_id ${String(value.channel_id)} does not match the key's ${id}`);
  if (typeof value.plat_name !== 'string') fail('route.plat_name is not a string');
  if (!Array.isArray(value.route)) fail('route.route is not a list');
  for (const [i, r] of (value.route as unknown[]).entries()) {
    if (!isObject(r) || typeof r.name !== 'string') fail(`route.route.${i}.name is not a string`);
    const s = r.stream_to;
    if (!isObject(s) || !isId(s.stream_to_id)) fail(`route.route.${i}.stream_to.stream_to_id is not an id`);
    if (!isObject(s.kafka) || typeof s.kafka.topic_name !== 'string' || s.kafka.topic_name === '') fail(`route.route.${i}.stream_to.kafka.topic_name is not a non-empty string`);
    if (s.kafka.partition !== undefined && !isId(s.kafka.partition)) fail(`route.route.${i}.stream_to.kafka.partition is not a partition number`);
  }
  return value as unknown as RouteDoc;
}

/**
 * The receiver a stream_to describes. `open` turns the sealed password into the plain one, or returns
 * undefined when it cannot (the receiver is then kept without a password: sends fail to authenticate
 * and say so, rather than vanish).
 */
export function receiverOf(doc: StreamToDoc, open: (sealed: string) => string | undefined): KafkaReceiver {
  const k = doc.kafka;
  const protocol = (k.security_protocol ?? '').toUpperCase();
  const username = k.sasl_username ?? '';
  const base = { streamToId: doc.stream_to_id, name: doc.name, brokers: k.storage_address.map((a) => `${a.ip}:${a.port}`), ssl: protocol === 'SSL' || protocol === 'SASL_SSL' };
  if (username === '' || protocol === 'PLAINTEXT' || protocol === 'SSL') return base;
  const password = k.sasl_passwd ? (open(k.sasl_passwd) ?? '') : '';
  return { ...base, sasl: { mechanism: MECHANISMS[(k.sasl_mechanisms ?? '').toUpperCase()] ?? 'plain', username, password } };
}

/** The route a route document describes (its name: the first target's, or `channel_<id>`). */
export function dataRouteOf(doc: RouteDoc): DataRoute {
  const targets: RouteTarget[] = doc.route.map((r) => {
    const k = r.stream_to.kafka;
    return { streamToId: r.stream_to.stream_to_id, topic: k.topic_name, ...(k.partition === undefined ? {} : { partition: k.partition }) };
  });
  return { channelId: doc.channel_id, name: doc.route[0]?.name ?? `channel_${doc.channel_id}`, targets };
}
