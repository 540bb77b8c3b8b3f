/**
 * Who may do what (SECURITY.md): the credentials every API checks, whatever the service.
 *
 * - **Admin tokens** (`bkadm_` + 32 random bytes) manage applications and flows and read everything.
 *   They live in `bkstream_admin_token` as SHA-256 hashes (shown once, at creation: `bkstream admin
 *   token`, or the bootstrap token `bkstream up` prints on its first run), and one more may be configured
 *   per process (BKSTREAM_ADMIN_TOKEN / BKSTREAM_ADMIN_TOKEN_FILE, e.g. from a Kubernetes Secret; the only
 *   kind a service without a database accepts).
 * - **Application tokens** (`apm_application.token_hash`, issued by `bkstream apps create`) send spans
 *   and read their own application's data on the query APIs.
 *
 * An {@link Authenticator} resolves a token (by its hash, cached briefly) to a {@link Principal} and
 * checks it against an {@link Access} rule: `public`, `authenticated` (any valid token), `admin`, or
 * `{ app }` (that application's token, or an admin token). Failures are counted per client address:
 * past BKSTREAM_AUTH_FAILURE_LIMIT a minute, the address is refused for BKSTREAM_AUTH_BLOCK_S without a
 * lookup. Tokens travel as `Authorization: Bearer <token>` (or `x-bk-token`), never in URLs, and are
 * never logged.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { configuredAdminToken, type Config, type commonSpec } from './config.ts';
import { BkError, ConflictError, DependencyUnavailableError, ForbiddenError, NotFoundError, TooManyRequestsError, UnauthenticatedError, ValidationError, isRetriable } from './errors.ts';
import type { Logger } from './log.ts';
import { LRUCache } from './lru.ts';
import { counter, type Counter, type Registry } from './metrics.ts';
import type { Queryable } from './store/index.ts';

/** Prefix of admin tokens: recognisable in a leak (secret scanners, logs). */
export const ADMIN_TOKEN_PREFIX = 'bkadm_';
/** Characters of a token kept as its hint in listings. */
export const TOKEN_HINT_LENGTH = 12;
/** Longer strings are not tokens: refused without a lookup. */
export const MAX_TOKEN_LENGTH = 512;

/** SHA-256 of a token, lower-case hex: what the store keeps and looks up (admin and application tokens alike). */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A fresh admin token. */
export function generateAdminToken(): string {
  return `${ADMIN_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** An application, as access rules and principals name it. */
export interface AppRef {
  bkBizId: number;
  appName: string;
}

/** Who a valid token belongs to. */
export type Principal =
  | { kind: 'admin'; /** `configured` (BKSTREAM_ADMIN_TOKEN) or the database id. */ id: string; name: string }
  | ({ kind: 'app' } & AppRef);

/**
 * Who may call a route or RPC: anyone (`public`), any valid token (`authenticated`), an admin token
 * (`admin`), or the token of the application `app(request)` names — or an admin token.
 */
export type Access<R = never> = 'public' | 'authenticated' | 'admin' | { app: (request: R) => AppRef };

/** The token of a request: `Authorization: Bearer <token>`, else the `x-bk-token` header. */
export function tokenFromHeaders(headers: IncomingHttpHeaders): string | undefined {
  const auth = headers.authorization;
  const bearer = typeof auth === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(auth)?.[1] : undefined;
  if (bearer) return bearer;
  const raw = headers['x-bk-token'];
  const v = Array.isArray(raw) ? raw[0] : raw;
  return v && v.trim() !== '' ? v.trim() : undefined;
}

/** Whether a Host or Origin host name is one the APIs answer to: an IP address, or an allowed name. */
export function hostAllowed(hostname: string, allowed: readonly string[]): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  if (h === '') return false;
  if (isIP(h) !== 0) return true;
  return allowed.some((a) => {
    const name = a.toLowerCase();
    return name.startsWith('.') ? h.endsWith(name) || h === name.slice(1) : h === name;
  });
}

/** The host name of a Host header (`name:port`, `[::1]:port`). */
export function hostOf(header: string): string {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(header.trim());
  return m?.[1] ?? '';
}

export interface AuthenticatorOptions {
  /** Where admin tokens (`bkstream_admin_token`) and application tokens (`apm_application`) are looked up; none for a store-less service. */
  store?: Queryable | undefined;
  /** An admin token accepted besides the stored ones (BKSTREAM_ADMIN_TOKEN). */
  adminToken?: string | undefined;
  /** Host names (besides IP addresses) the APIs answer to (BKSTREAM_ALLOWED_HOSTS). */
  allowedHosts: readonly string[];
  /** Failed authentications per client address per minute before it is refused (BKSTREAM_AUTH_FAILURE_LIMIT). */
  failureLimit: number;
  /** How long an address over the limit is refused, s (BKSTREAM_AUTH_BLOCK_S). */
  blockS: number;
  /** How long a resolved token is trusted (so a revocation takes up to this long), ms. Default 10 000. */
  cacheTtlMs?: number;
  /** How long an unknown token stays unknown, ms. Default 2 000. */
  missTtlMs?: number;
  logger: Logger;
  registry?: Registry | undefined;
  now?: () => number;
}

interface FailureWindow {
  startedAt: number;
  count: number;
  blockedUntil: number;
}

const UNKNOWN = Symbol('unknown token');
type CacheEntry = Principal | typeof UNKNOWN;

interface TokenRow {
  kind: 'admin' | 'app';
  id: number;
  name: string;
  bk_biz_id: number | null;
  app_name: string | null;
}

/** Resolves tokens to principals and checks them against access rules (module comment). */
export class Authenticator {
  readonly allowedHosts: readonly string[];
  readonly #opts: AuthenticatorOptions;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #configuredHash: Buffer | undefined;
  readonly #cache: LRUCache<string, CacheEntry>;
  readonly #failures = new LRUCache<string, FailureWindow>({ max: 10_000 });
  readonly #outcomes: Counter<'result'> | undefined;

  constructor(options: AuthenticatorOptions) {
    this.#opts = options;
    this.allowedHosts = options.allowedHosts;
    this.#log = options.logger.child({ component: 'auth' });
    this.#now = options.now ?? Date.now;
    this.#configuredHash = options.adminToken ? createHash('sha256').update(options.adminToken, 'utf8').digest() : undefined;
    const store = options.store;
    this.#cache = new LRUCache<string, CacheEntry>({
      max: 10_000,
      ttl: options.cacheTtlMs ?? 10_000,
      fetchMethod: async (hash, _stale, { options: entry }) => {
        const found = store ? await lookup(store, hash) : undefined;
        if (found) return found;
        entry.ttl = options.missTtlMs ?? 2_000;
        return UNKNOWN;
      },
    });
    this.#outcomes = options.registry
      ? counter(options.registry, { name: 'bkstream_auth_checks_total', help: 'Credential checks of the APIs by result (ok, unauthenticated, forbidden, blocked)', labelNames: ['result'] })
      : undefined;
  }

  /** The principal of a token, or undefined when it is unknown, revoked or disabled. Throws DependencyUnavailableError when the store cannot tell. */
  async identify(token: string): Promise<Principal | undefined> {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return undefined;
    if (this.#configuredHash) {
      const given = createHash('sha256').update(token, 'utf8').digest();
      if (timingSafeEqual(given, this.#configuredHash)) return { kind: 'admin', id: 'configured', name: 'BKSTREAM_ADMIN_TOKEN' };
    }
    if (!this.#opts.store) return undefined;
    let entry: CacheEntry | undefined;
    try {
      entry = await this.#cache.fetch(hashToken(token));
    } catch (err) {
      throw err instanceof BkError && !isRetriable(err) ? err : new DependencyUnavailableError('database', { cause: err });
    }
    return entry === undefined || entry === UNKNOWN ? undefined : entry;
  }

  /**
   * Checks a request's token against `access` (anything but `public`). `client` is the caller's address,
   * whose failures are counted; `target` is the application an `{ app }` rule names. Returns the
   * principal; throws {@link UnauthenticatedError} (no or unknown token), {@link ForbiddenError} (valid
   * but not allowed), {@link TooManyRequestsError} (the address failed too often) or
   * {@link DependencyUnavailableError} (the store cannot tell).
   */
  async authorize(token: string | undefined, client: string, access: 'authenticated' | 'admin' | 'app', target?: AppRef): Promise<Principal> {
    const blocked = this.#blockedFor(client);
    if (blocked > 0) {
      this.#outcomes?.inc({ result: 'blocked' });
      throw new TooManyRequestsError(`too many failed authentications from this address: retry in ${blocked} s`, blocked);
    }
    if (token === undefined) {
      this.#outcomes?.inc({ result: 'unauthenticated' });
      throw new UnauthenticatedError('credentials required: send "Authorization: Bearer <token>" (an admin token, or the application\'s token)');
    }
    const principal = await this.identify(token);
    if (!principal) {
      this.#fail(client);
      this.#outcomes?.inc({ result: 'unauthenticated' });
      throw new UnauthenticatedError('unknown, revoked or disabled token');
    }
    const denied = this.#denied(principal, access, target);
    if (denied) {
      this.#outcomes?.inc({ result: 'forbidden' });
      throw new ForbiddenError(denied);
    }
    this.#outcomes?.inc({ result: 'ok' });
    return principal;
  }

  /** Forgets every cached token (after a revocation, so it applies at once in this process). */
  clear(): void {
    this.#cache.clear();
  }

  #denied(p: Principal, access: 'authenticated' | 'admin' | 'app', target: AppRef | undefined): string | undefined {
    if (access === 'authenticated' || p.kind === 'admin') return undefined;
    if (access === 'admin') return 'an admin token is required';
    if (!target) return 'an admin token is required';
    if (p.bkBizId === target.bkBizId && p.appName === target.appName) return undefined;
    return `this token is for another application: it reads only ${p.bkBizId}/${p.appName}`;
  }

  /** Seconds the address is still refused for (0 = not refused). */
  #blockedFor(client: string): number {
    const w = this.#failures.get(client);
    const left = w ? w.blockedUntil - this.#now() : 0;
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  #fail(client: string): void {
    const now = this.#now();
    let w = this.#failures.get(client);
    if (!w || now - w.startedAt >= 60_000) w = { startedAt: now, count: 0, blockedUntil: 0 };
    w.count++;
    if (w.count >= this.#opts.failureLimit && w.blockedUntil <= now) {
      w.blockedUntil = now + this.#opts.blockS * 1000;
      this.#log.warn('client refused after failed authentications', { client, failures: w.count, block_s: this.#opts.blockS });
    }
    this.#failures.set(client, w);
  }
}

async function lookup(db: Queryable, hash: string): Promise<Principal | undefined> {
  const { rows } = await db.query<TokenRow>(
    `SELECT 'admin'::text AS kind, id, name::text AS name, NULL::bigint AS bk_biz_id, NULL::text AS app_name
       FROM bkstream_admin_token WHERE token_hash = $1 AND revoked_at IS NULL
     UNION ALL
     SELECT 'app'::text, id, ''::text, bk_biz_id, app_name::text
       FROM apm_application WHERE token_hash = $1 AND is_enabled
     LIMIT 1`,
    [hash],
  );
  const r = rows[0];
  if (!r) return undefined;
  if (r.kind === 'admin') {
    // Last use, for rotation ("is the old token still in use?"): at most once per cache TTL per token.
    db.query('UPDATE bkstream_admin_token SET last_used_at = now() WHERE id = $1', [r.id]).catch(() => undefined);
    return { kind: 'admin', id: String(r.id), name: r.name };
  }
  return { kind: 'app', bkBizId: Number(r.bk_biz_id), appName: r.app_name ?? '' };
}

/** What an {@link Authenticator} needs of a service's dependencies. */
export interface AuthDeps {
  store?: Queryable | undefined;
  common: Pick<Config<typeof commonSpec>, 'adminToken' | 'adminTokenFile' | 'allowedHosts' | 'authFailureLimit' | 'authBlockS'>;
  logger: Logger;
  registry?: Registry | undefined;
}

/** The authenticator of a service, from its dependencies (the store if it has one) and the shared settings. */
export function serviceAuth(deps: AuthDeps): Authenticator {
  return new Authenticator({
    store: deps.store,
    adminToken: configuredAdminToken(deps.common),
    allowedHosts: deps.common.allowedHosts,
    failureLimit: deps.common.authFailureLimit,
    blockS: deps.common.authBlockS,
    logger: deps.logger,
    registry: deps.registry,
  });
}

// ---------------------------------------------------------------------------------------------------------
// admin tokens in the store

/** An admin token as listings show it (never the token itself). */
export interface AdminTokenInfo {
  id: number;
  name: string;
  hint: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

interface AdminRow {
  id: number;
  name: string;
  token_hint: string;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const ADMIN_COLUMNS = 'id, name, token_hint, created_at, last_used_at, revoked_at';
const NAME = /^[A-Za-z0-9_.@-]{1,64}$/;
/** Arbitrary constant naming the lock under which the bootstrap token is created. */
const BOOTSTRAP_LOCK_ID = 7_290_515;

function info(r: AdminRow): AdminTokenInfo {
  return { id: Number(r.id), name: r.name, hint: r.token_hint, createdAt: r.created_at, lastUsedAt: r.last_used_at, revokedAt: r.revoked_at };
}

/** Creates an admin token; the token is in the answer and nowhere else (only its hash is stored). */
export async function createAdminToken(db: Queryable, name: string): Promise<AdminTokenInfo & { token: string }> {
  if (!NAME.test(name)) throw new ValidationError('name must be 1-64 letters, digits, "_", ".", "@" or "-"');
  const token = generateAdminToken();
  const { rows } = await db.query<AdminRow>(
    `INSERT INTO bkstream_admin_token (name, token_hash, token_hint) VALUES ($1, $2, $3) RETURNING ${ADMIN_COLUMNS}`,
    [name, hashToken(token), token.slice(0, TOKEN_HINT_LENGTH)],
  );
  return { ...info(rows[0] as AdminRow), token };
}

export async function listAdminTokens(db: Queryable): Promise<AdminTokenInfo[]> {
  const { rows } = await db.query<AdminRow>(`SELECT ${ADMIN_COLUMNS} FROM bkstream_admin_token ORDER BY id`);
  return rows.map(info);
}

/**
 * Revokes an admin token (at once in this process; within the token cache TTL in others). Refuses to
 * revoke the last active one unless `force`, so an operator does not lock themselves out.
 */
export async function revokeAdminToken(db: Queryable, id: number, force = false): Promise<AdminTokenInfo> {
  const { rows: active } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM bkstream_admin_token WHERE revoked_at IS NULL AND id <> $1', [id]);
  if (!force && (active[0]?.n ?? 0) === 0) throw new ConflictError('this is the last active admin token: create another first (or revoke with force)');
  const { rows } = await db.query<AdminRow>(
    `UPDATE bkstream_admin_token SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 RETURNING ${ADMIN_COLUMNS}`,
    [id],
  );
  const row = rows[0];
  if (!row) throw new NotFoundError(`no admin token ${id}`);
  return info(row);
}

/**
 * The first run's admin token: when no active admin token exists, creates one named `bootstrap` and
 * returns it (to be shown once); otherwise undefined. Several processes starting at once create one.
 */
export async function ensureBootstrapAdminToken(db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> }): Promise<string | undefined> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK_ID]);
    const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM bkstream_admin_token WHERE revoked_at IS NULL');
    if ((rows[0]?.n ?? 0) > 0) return undefined;
    return (await createAdminToken(tx, 'bootstrap')).token;
  });
}
