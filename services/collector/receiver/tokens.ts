/**
 * Application tokens: where a request carries one, and what it resolves to.
 *
 * Extraction order (bk-collector's token checker, minus the TPS tenant headers; the collector README,
 * "Interfaces"):
 * - HTTP: query `X-BK-TOKEN`, header `X-BK-TOKEN`, Basic auth with user `bkmonitor` (password = token),
 *   `Authorization: Bearer <token>`.
 * - gRPC metadata: `x-bk-token`, then `authorization: Bearer <token>`.
 * A resource attribute `bk.data.token` overrides the request's token for its resource group.
 *
 * Resolution goes through an LRU cache keyed by the token's hash (so raw tokens are not kept): hits
 * live `ttlMs`, misses `missTtlMs` (a flood of bad tokens costs one store query per distinct token per
 * miss TTL), concurrent lookups of one token share a query. A store failure is not cached and surfaces
 * as {@link DependencyUnavailableError} ("the database is unavailable"). Tokens are never logged.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Metadata } from '../../common/grpc.ts';
import { LRUCache } from '../../common/lru.ts';
import { DependencyUnavailableError } from '../../common/errors.ts';
import { hashToken } from '../../common/auth.ts';
import type { Application } from '../applications.ts';

/** Longer strings are not tokens: rejected without a lookup. */
export const MAX_TOKEN_LENGTH = 512;

function bearer(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return m?.[1];
}

function basic(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const m = /^Basic\s+(\S+)\s*$/i.exec(value);
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0 || decoded.slice(0, colon) !== 'bkmonitor') return undefined;
  return decoded.slice(colon + 1) || undefined;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

export function tokenFromHttp(headers: IncomingHttpHeaders, query: URLSearchParams): string | undefined {
  const auth = header(headers, 'authorization');
  return query.get('X-BK-TOKEN') || header(headers, 'x-bk-token') || basic(auth) || bearer(auth) || undefined;
}

export function tokenFromGrpc(metadata: Metadata): string | undefined {
  const first = (key: string): string | undefined => {
    const v = metadata.get(key)[0];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  return first('x-bk-token') ?? bearer(first('authorization'));
}

/** Resolves tokens to applications. */
export interface TokenPort {
  /** The enabled application of `token`, or undefined. Throws {@link DependencyUnavailableError} when it cannot tell. */
  resolve(token: string): Promise<Application | undefined>;
}

export interface TokenCacheOptions {
  /** Looks an application up by token hash (the store query). */
  lookup: (tokenHash: string) => Promise<Application | undefined>;
  /** How long a resolved token is trusted. */
  ttlMs: number;
  /** How long an unknown token stays unknown. */
  missTtlMs: number;
  /** Cached tokens at most (hits and misses together). */
  maxEntries: number;
  /** Told `hit` / `miss` / `unknown` (cached miss) per resolution, for metrics. */
  onResult?: (result: 'hit' | 'miss' | 'unknown') => void;
}

const UNKNOWN = Symbol('unknown token');
type Entry = Application | typeof UNKNOWN;

export class TokenCache implements TokenPort {
  readonly #cache: LRUCache<string, Entry>;
  readonly #opts: TokenCacheOptions;

  constructor(options: TokenCacheOptions) {
    this.#opts = options;
    this.#cache = new LRUCache<string, Entry>({
      max: options.maxEntries,
      ttl: options.ttlMs,
      fetchMethod: async (hash, _stale, { options: entryOptions }) => {
        let app: Application | undefined;
        try {
          app = await options.lookup(hash);
        } catch (err) {
          throw err instanceof DependencyUnavailableError ? err : new DependencyUnavailableError('database', { cause: err });
        }
        if (app) return app;
        entryOptions.ttl = options.missTtlMs;
        return UNKNOWN;
      },
    });
  }

  async resolve(token: string): Promise<Application | undefined> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
    const hash = hashToken(token);
    const cached = this.#cache.get(hash);
    if (cached !== undefined) {
      this.#opts.onResult?.(cached === UNKNOWN ? 'unknown' : 'hit');
      return cached === UNKNOWN ? undefined : cached;
    }
    const entry = await this.#cache.fetch(hash);
    this.#opts.onResult?.('miss');
    return entry === UNKNOWN ? undefined : entry;
  }

  /** Forgets every token (e.g. on `/-/reload`), so changes in the registry apply at once. */
  clear(): void {
    this.#cache.clear();
  }

  size(): number {
    return this.#cache.size;
  }
}
