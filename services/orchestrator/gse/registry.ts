/**
 * What the GSE routing API can do: the eight calls of the reference (add/update/delete/query of stream_tos
 * and routes), each taking the reference's request body and returning its `data`; and the default install's
 * stream_to. Requests are checked (requests.ts), SASL passwords sealed, changes stored (store.ts) and
 * published (publisher.ts).
 *
 * Passwords: stored sealed for `gse_stream_to.sasl_passwd`; a query answers `sasl_passwd: "******"` when a
 * password is set (absent when not), never the password. An update without `sasl_passwd`, or with that
 * mask, keeps the stored password (a query → update round trip loses nothing); `""` removes it.
 */
import { NotFoundError } from '../../common/errors.ts';
import { routesKey, SASL_PASSWD_CONTEXT, type StorageAddress } from '../../common/gse/records.ts';
import type { Logger } from '../../common/log.ts';
import { MASK, type SecretBox } from '../../common/secrets.ts';
import type { GseRoutesPublisher } from './publisher.ts';
import {
  GseRequestError,
  parseAddRoute,
  parseAddStreamTo,
  parseDeleteRoute,
  parseDeleteStreamTo,
  parseQueryRoute,
  parseQueryStreamTo,
  parseUpdateRoute,
  parseUpdateStreamTo,
  type Label,
} from './requests.ts';
import type { GseStore, PasswordChange, RouteRow, StreamToRow } from './store.ts';

/** The platform bkstream's own records belong to (the reference's DEFAULT_GSE_API_PLAT_NAME). */
export const DEFAULT_PLAT_NAME = 'bkmonitor';
/** The stream_to of the default install: the bus's brokers. */
export const DEFAULT_STREAM_TO_NAME = 'bkstream';

export type GseApiName = 'add_streamto' | 'update_streamto' | 'delete_streamto' | 'query_streamto' | 'add_route' | 'update_route' | 'delete_route' | 'query_route';

export interface GseRegistryOptions {
  store: GseStore;
  box: SecretBox;
  publisher: Pick<GseRoutesPublisher, 'publishNow'>;
  logger: Logger;
  /** How long a call waits for its change to reach the topic before answering anyway, ms. Default 5 000. */
  publishWaitMs?: number;
}

/** `host:port` (or `[v6]:port`) → `{ip, port}`. */
export function storageAddressOf(broker: string): StorageAddress {
  const i = broker.lastIndexOf(':');
  const host = i > 0 ? broker.slice(0, i) : broker;
  const port = i > 0 ? Number(broker.slice(i + 1)) : 9092;
  return { ip: host.replace(/^\[|\]$/g, ''), port: Number.isInteger(port) && port > 0 ? port : 9092 };
}

function labelMatches(have: Label | null, want: Label | undefined): boolean {
  if (!want) return true;
  return Object.entries(want).every(([k, v]) => JSON.stringify(have?.[k]) === JSON.stringify(v));
}

export class GseRegistry {
  readonly #o: GseRegistryOptions;
  readonly #log: Logger;

  constructor(options: GseRegistryOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'gse-registry' });
  }

  /** Runs one call of the API by name. */
  call(api: GseApiName, body: unknown): Promise<unknown> {
    switch (api) {
      case 'add_streamto': return this.addStreamTo(body);
      case 'update_streamto': return this.updateStreamTo(body);
      case 'delete_streamto': return this.deleteStreamTo(body);
      case 'query_streamto': return this.queryStreamTo(body);
      case 'add_route': return this.addRoute(body);
      case 'update_route': return this.updateRoute(body);
      case 'delete_route': return this.deleteRoute(body);
      case 'query_route': return this.queryRoute(body);
    }
  }

  async addStreamTo(body: unknown): Promise<{ stream_to_id: number }> {
    const req = parseAddStreamTo(body);
    const passwd = req.stream_to.kafka.sasl_passwd;
    if (passwd === MASK) throw new GseRequestError([{ field: 'stream_to.kafka.sasl_passwd', message: `"${MASK}" is the mask queries answer, not a password.` }]);
    const sealed = passwd ? this.#o.box.seal(passwd, SASL_PASSWD_CONTEXT) : null;
    const id = await this.#o.store.addStreamTo(req.metadata.plat_name, req.metadata.label, req.stream_to, sealed, req.operation.operator_name);
    this.#log.info('stream_to added', { stream_to_id: id, name: req.stream_to.name, operator: req.operation.operator_name });
    await this.#publish(routesKey.streamTo(id));
    return { stream_to_id: id };
  }

  async updateStreamTo(body: unknown): Promise<{ stream_to_id: number }> {
    const req = parseUpdateStreamTo(body);
    const { stream_to_id: id, plat_name: plat } = req.condition;
    const passwd = req.specification.stream_to.kafka.sasl_passwd;
    const change: PasswordChange = passwd === undefined || passwd === MASK ? { keep: true } : { keep: false, sealed: passwd === '' ? null : this.#o.box.seal(passwd, SASL_PASSWD_CONTEXT) };
    await this.#o.store.updateStreamTo(id, plat, req.specification.stream_to, change, req.operation.operator_name);
    this.#log.info('stream_to updated', { stream_to_id: id, operator: req.operation.operator_name });
    await this.#publish(routesKey.streamTo(id));
    return { stream_to_id: id };
  }

  async deleteStreamTo(body: unknown): Promise<{ stream_to_id: number }> {
    const req = parseDeleteStreamTo(body);
    await this.#o.store.deleteStreamTo(req.condition.stream_to_id, req.condition.plat_name);
    this.#log.info('stream_to deleted', { stream_to_id: req.condition.stream_to_id, operator: req.operation.operator_name });
    await this.#publish(routesKey.streamTo(req.condition.stream_to_id));
    return { stream_to_id: req.condition.stream_to_id };
  }

  /** Stream_tos of the platform (one with `stream_to_id`, which must exist), passwords masked. */
  async queryStreamTo(body: unknown): Promise<unknown[]> {
    const req = parseQueryStreamTo(body);
    const { plat_name: plat, stream_to_id: id, label } = req.condition;
    const rows = (await this.#o.store.queryStreamTo(plat, id)).filter((r) => labelMatches(r.label, label));
    if (id !== undefined && rows.length === 0) throw new NotFoundError(`stream_to_id ${id} of plat_name "${plat}" not found`);
    return rows.map(streamToAnswer);
  }

  async addRoute(body: unknown): Promise<{ channel_id: number }> {
    const req = parseAddRoute(body);
    const id = await this.#o.store.addRoute(req.metadata.plat_name, req.metadata.label, req.metadata.channel_id, req.route, req.stream_filters, req.operation.operator_name);
    this.#log.info('route added', { channel_id: id, targets: req.route.length, operator: req.operation.operator_name });
    await this.#publish(routesKey.route(id));
    return { channel_id: id };
  }

  async updateRoute(body: unknown): Promise<{ channel_id: number }> {
    const req = parseUpdateRoute(body);
    const { channel_id: id, plat_name: plat } = req.condition;
    await this.#o.store.updateRoute(id, plat, req.specification.route, req.specification.stream_filters, req.operation.operator_name);
    this.#log.info('route updated', { channel_id: id, operator: req.operation.operator_name });
    await this.#publish(routesKey.route(id));
    return { channel_id: id };
  }

  async deleteRoute(body: unknown): Promise<{ channel_id: number }> {
    const req = parseDeleteRoute(body);
    const { channel_id: id, plat_name: plat } = req.condition;
    await this.#o.store.deleteRoute(id, plat, req.operation.method === 'all' ? undefined : (req.specification ?? {}), req.operation.operator_name);
    this.#log.info('route deleted', { channel_id: id, method: req.operation.method, operator: req.operation.operator_name });
    await this.#publish(routesKey.route(id));
    return { channel_id: id };
  }

  /** The route of a channel id, as a one-element list (the reference's answer); not found is an error. */
  async queryRoute(body: unknown): Promise<unknown[]> {
    const req = parseQueryRoute(body);
    const { channel_id: id, plat_name: plat, label } = req.condition;
    const route = await this.#o.store.queryRoute(id, plat);
    if (!route || !labelMatches(route.label, label)) throw new NotFoundError(`channel_id ${id}${plat === undefined ? '' : ` of plat_name "${plat}"`} not found`);
    return [routeAnswer(route)];
  }

  /**
   * The default install: a stream_to named `bkstream` (platform `bkmonitor`) pointing at the bus's brokers
   * exists; created when missing, its addresses set again when the brokers changed. No route is made: a data
   * id without a route goes to the publishers' default, the bkstream topics.
   */
  async ensureDefault(brokers: readonly string[], operator: string): Promise<number> {
    const addresses = brokers.map(storageAddressOf);
    let current = await this.#o.store.streamToByName(DEFAULT_PLAT_NAME, DEFAULT_STREAM_TO_NAME);
    if (!current) {
      try {
        const id = await this.#o.store.addStreamTo(DEFAULT_PLAT_NAME, undefined, { name: DEFAULT_STREAM_TO_NAME, report_mode: 'kafka', kafka: { storage_address: addresses } }, null, operator);
        this.#log.info('created the default stream_to (the bus brokers)', { stream_to_id: id, brokers });
        return id;
      } catch (err) {
        // Another instance starting at the same time made it first.
        if (!(err instanceof GseRequestError)) throw err;
        current = await this.#o.store.streamToByName(DEFAULT_PLAT_NAME, DEFAULT_STREAM_TO_NAME);
        if (!current) throw err;
      }
    }
    if (JSON.stringify(current.kafka.storage_address) !== JSON.stringify(addresses)) {
      await this.#o.store.setStorageAddress(current.stream_to_id, addresses, operator);
      this.#log.info('the default stream_to follows the bus brokers', { stream_to_id: current.stream_to_id, brokers });
    }
    return current.stream_to_id;
  }

  /** At start: passwords sealed with a previous key are resealed with the current one (SECURITY.md, rotation). */
  async resealPasswords(): Promise<void> {
    const { resealed, unreadable } = await this.#o.store.resealPasswords(this.#o.box);
    if (resealed > 0) this.#log.info('resealed GSE receiver passwords with the current key', { receivers: resealed, key: this.#o.box.keyId });
    if (unreadable > 0) this.#log.error('GSE receivers hold passwords no configured key opens: publishers use them without a password until they are set again (update_streamto) or the old key is configured (BKSTREAM_SECRET_KEY_PREVIOUS)', { receivers: unreadable, key: this.#o.box.keyId });
  }

  async #publish(key: string): Promise<void> {
    await this.#o.publisher.publishNow(key, this.#o.publishWaitMs ?? 5_000);
  }
}

/** A stream_to as query_streamto answers it: the reference's nested form and its flat one together (module README). */
function streamToAnswer(r: StreamToRow): Record<string, unknown> {
  const kafka = { ...r.kafka, ...(r.sasl_passwd === null ? {} : { sasl_passwd: MASK }) };
  const streamTo = { name: r.name, report_mode: r.report_mode, ...(r.data_log_path === null ? {} : { data_log_path: r.data_log_path }), kafka };
  return {
    metadata: { plat_name: r.plat_name, stream_to_id: r.stream_to_id, ...(r.label === null ? {} : { label: r.label }) },
    stream_to: streamTo,
    stream_to_id: r.stream_to_id,
    ...streamTo,
  };
}

function routeAnswer(r: RouteRow): Record<string, unknown> {
  return {
    metadata: { plat_name: r.plat_name, channel_id: r.channel_id, ...(r.label === null ? {} : { label: r.label }) },
    route: r.route,
    stream_filters: r.stream_filters,
  };
}
