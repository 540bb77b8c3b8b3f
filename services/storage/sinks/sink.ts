/**
 * Second sinks: the same records sent on to an engine users already run. Each sink is one file and a
 * line in `index.ts`; it runs its own consumer group on its topic, so it commits only what the remote end
 * accepted (at least once, like the store), and a slow or absent remote end never holds up storage.
 *
 * A request that fails with a network error, a timeout, 429 or 5xx is retried with backoff (the bus
 * retries a retriable handler error, then reads the batch again); a 4xx is the remote end refusing the
 * data itself (e.g. Prometheus rejecting an out-of-order sample on a replay): it is counted and dropped.
 */
import { UnavailableError } from '../../common/errors.ts';
import type { Logger } from '../../common/log.ts';
import type { RecordName, RecordTypes } from '../../common/records.ts';
import type { TopicKey } from '../../common/topics.ts';
import type { StorageConfig } from '../config.ts';

export interface SinkResult {
  /** Items (spans, samples) the remote end accepted. */
  sent: number;
  /** Items refused as invalid (4xx): dropped. */
  dropped: number;
}

export interface Sink<T> {
  /** Sends the records' items; resolves when the remote end accepted them (or refused them as invalid). */
  send(records: readonly T[]): Promise<SinkResult>;
}

export interface SinkFactory<N extends RecordName = RecordName> {
  readonly name: string;
  /** The topic it reads and the record type there. */
  readonly topic: TopicKey;
  readonly record: N;
  enabled(config: StorageConfig): boolean;
  groupId(config: StorageConfig): string;
  create(config: StorageConfig, logger: Logger): Sink<RecordTypes[N]>;
}

/** Declares a sink (only for type inference). */
export function defineSink<N extends RecordName>(factory: SinkFactory<N>): SinkFactory<N> {
  return factory;
}

/**
 * POSTs a body; resolves to `'ok'` (2xx) or `'refused'` (4xx other than 429); throws a retriable
 * UnavailableError on network errors, timeouts, 429 and 5xx.
 */
export async function post(url: string, body: Uint8Array | string, headers: Record<string, string>, timeoutMs: number, log: Logger): Promise<'ok' | 'refused'> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body), signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new UnavailableError(`cannot reach ${url}: ${(err as Error).message}`, { cause: err });
  }
  const text = await res.text().catch(() => '');
  if (res.ok) return 'ok';
  if (res.status === 429 || res.status >= 500) throw new UnavailableError(`${url} answered ${res.status}: ${text.slice(0, 300)}`);
  log.warn('sink request refused, dropped', { url, status: res.status, body: text.slice(0, 300) });
  return 'refused';
}
