/**
 * Typed configuration from environment variables and an optional file, validated at start-up with every
 * problem reported at once (a {@link ConfigError} naming each key). Only `main` may turn that into an exit.
 *
 * A service declares a spec — an object of fields built with {@link str}, {@link int}, {@link bool},
 * {@link list}, {@link oneOf}, {@link url} — and gets back a frozen, typed object:
 *
 * ```ts
 * const spec = { ...commonSpec, flushIntervalMs: int({ env: 'FLUSH_INTERVAL_MS', default: 1000, min: 1, doc: '…' }) };
 * const config = loadConfig(spec);            // Config<typeof spec>
 * ```
 *
 * Precedence: environment > file (`BKSTREAM_CONFIG`, YAML or JSON, keys are the env names) > default.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ConfigError, type ConfigProblem } from './errors.ts';

export interface Field<T> {
  /** Environment variable (and file key) the value comes from. */
  readonly env: string;
  /** One line for the README's configuration table. */
  readonly doc: string;
  /** Used when neither env nor file sets the key; `undefined` makes the key required. */
  readonly default: T | undefined;
  /** Turns a raw env string or file value into T; throws an Error whose message says what is wrong. */
  readonly parse: (raw: unknown) => T;
  /** Printable default for docs. */
  readonly defaultText: string;
  /** A required key has no default and must be set. */
  readonly required: boolean;
}

export type Spec = Record<string, Field<unknown>>;
export type Config<S extends Spec> = { readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };

interface Base<T> {
  env: string;
  doc: string;
  default?: T;
}

function field<T>(base: Base<T>, parse: (raw: unknown) => T, show: (v: T) => string = String): Field<T> {
  return {
    env: base.env,
    doc: base.doc,
    default: base.default,
    parse,
    defaultText: base.default === undefined ? '(required)' : show(base.default),
    required: base.default === undefined,
  };
}

function asString(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number' || typeof raw === 'boolean') return String(raw);
  throw new Error(`expected a string, got ${JSON.stringify(raw)}`);
}

/** A string; `pattern` restricts it. */
export function str(opts: Base<string> & { pattern?: RegExp; allowEmpty?: boolean }): Field<string> {
  return field(opts, (raw) => {
    const s = asString(raw);
    if (s === '' && !opts.allowEmpty) throw new Error('must not be empty');
    if (opts.pattern && !opts.pattern.test(s)) throw new Error(`must match ${opts.pattern}, got ${JSON.stringify(s)}`);
    return s;
  }, (v) => (v === '' ? '(empty)' : v));
}

/** An optional string: empty or unset gives `undefined`. */
export function optionalStr(opts: { env: string; doc: string }): Field<string | undefined> {
  return { env: opts.env, doc: opts.doc, default: undefined, defaultText: '(unset)', required: false, parse: (raw) => {
    const s = asString(raw);
    return s === '' ? undefined : s;
  } };
}

/** An integer within [min, max]. */
export function int(opts: Base<number> & { min?: number; max?: number }): Field<number> {
  return field(opts, (raw) => {
    const s = asString(raw).trim();
    if (!/^-?\d+$/.test(s)) throw new Error(`must be an integer, got ${JSON.stringify(s)}`);
    const n = Number(s);
    if (!Number.isSafeInteger(n)) throw new Error(`is out of range: ${s}`);
    if (opts.min !== undefined && n < opts.min) throw new Error(`must be >= ${opts.min}, got ${n}`);
    if (opts.max !== undefined && n > opts.max) throw new Error(`must be <= ${opts.max}, got ${n}`);
    return n;
  });
}

/** A finite number within [min, max]. */
export function num(opts: Base<number> & { min?: number; max?: number }): Field<number> {
  return field(opts, (raw) => {
    const s = asString(raw).trim();
    const n = s === '' ? NaN : Number(s);
    if (!Number.isFinite(n)) throw new Error(`must be a number, got ${JSON.stringify(s)}`);
    if (opts.min !== undefined && n < opts.min) throw new Error(`must be >= ${opts.min}, got ${n}`);
    if (opts.max !== undefined && n > opts.max) throw new Error(`must be <= ${opts.max}, got ${n}`);
    return n;
  });
}

/** true/false, 1/0, yes/no, on/off. */
export function bool(opts: Base<boolean>): Field<boolean> {
  return field(opts, (raw) => {
    if (typeof raw === 'boolean') return raw;
    const s = asString(raw).trim().toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(s)) return true;
    if (['false', '0', 'no', 'off'].includes(s)) return false;
    throw new Error(`must be true or false, got ${JSON.stringify(s)}`);
  });
}

/** A comma-separated list (or a YAML list in the file); blanks are dropped. */
export function list(opts: Base<readonly string[]> & { item?: (s: string) => void; minItems?: number }): Field<readonly string[]> {
  return field(opts, (raw) => {
    const items = (Array.isArray(raw) ? raw.map(asString) : asString(raw).split(','))
      .map((s) => s.trim())
      .filter((s) => s !== '');
    if (opts.minItems !== undefined && items.length < opts.minItems) {
      throw new Error(`needs at least ${opts.minItems} item${opts.minItems === 1 ? '' : 's'}`);
    }
    for (const item of items) {
      try {
        opts.item?.(item);
      } catch (err) {
        throw new Error(`item ${JSON.stringify(item)}: ${(err as Error).message}`);
      }
    }
    return Object.freeze(items);
  }, (v) => (v.length === 0 ? '(empty)' : v.join(',')));
}

/** One of a fixed set of strings. */
export function oneOf<const T extends string>(opts: Base<T> & { values: readonly T[] }): Field<T> {
  return field(opts, (raw) => {
    const s = asString(raw).trim();
    if (!(opts.values as readonly string[]).includes(s)) {
      throw new Error(`must be one of ${opts.values.join(', ')}, got ${JSON.stringify(s)}`);
    }
    return s as T;
  });
}

/** An absolute URL with one of the given protocols. */
export function url(opts: Base<string> & { protocols: readonly string[] }): Field<string> {
  return field(opts, (raw) => {
    const s = asString(raw).trim();
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      throw new Error(`must be a URL, got ${JSON.stringify(s)}`);
    }
    if (!opts.protocols.includes(u.protocol.replace(/:$/, ''))) {
      throw new Error(`must use ${opts.protocols.join(' or ')}, got ${u.protocol}`);
    }
    return s;
  });
}

/** An optional URL: empty or unset gives `undefined`. */
export function optionalUrl(opts: { env: string; doc: string; protocols: readonly string[] }): Field<string | undefined> {
  const inner = url({ env: opts.env, doc: opts.doc, protocols: opts.protocols });
  return { env: opts.env, doc: opts.doc, default: undefined, defaultText: '(unset)', required: false, parse: (raw) => {
    const s = asString(raw).trim();
    return s === '' ? undefined : inner.parse(s);
  } };
}

/**
 * An optional secret (a token, a password): empty or unset gives `undefined`. Problems never repeat
 * the value, and the README shows no default.
 */
export function optionalSecret(opts: { env: string; doc: string; minLength?: number }): Field<string | undefined> {
  return { env: opts.env, doc: opts.doc, default: undefined, defaultText: '(unset)', required: false, parse: (raw) => {
    if (typeof raw !== 'string') throw new Error('must be a string');
    const s = raw.trim();
    if (s === '') return undefined;
    if (opts.minLength !== undefined && s.length < opts.minLength) throw new Error(`must be at least ${opts.minLength} characters long (the value is not shown)`);
    return s;
  } };
}

/**
 * Reads a file that holds a secret (a token, a key), refusing one that other users may read or write:
 * its mode must be 0600 or stricter (no group or other bits). Throws an Error saying what to fix.
 */
export function readPrivateFile(path: string): string {
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new Error(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    throw new Error(`${path} is accessible to other users (mode ${(mode & 0o777).toString(8).padStart(4, '0')}): chmod 600 ${path}`);
  }
  const text = readFileSync(path, 'utf8').trim();
  if (text === '') throw new Error(`${path} is empty`);
  return text;
}

/** An optional path of a secret file (0600 or stricter): the field's value is the file's content, trimmed. */
export function secretFile(opts: { env: string; doc: string }): Field<string | undefined> {
  return { env: opts.env, doc: opts.doc, default: undefined, defaultText: '(unset)', required: false, parse: (raw) => {
    const path = asString(raw).trim();
    return path === '' ? undefined : readPrivateFile(path);
  } };
}

/** `host:port` with a port in 1..65535. */
export function hostPort(s: string): void {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new Error('must be host:port');
}

export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** Config file path; defaults to env `BKSTREAM_CONFIG`. */
  file?: string;
  /** Cross-field checks, run only when every field parsed. */
  validate?: (config: never) => ConfigProblem[];
}

/** Reads a YAML/JSON config file into a flat key → value map. */
function readFile(path: string, problems: ConfigProblem[]): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push({ key: 'BKSTREAM_CONFIG', message: `cannot read ${path}: ${(err as Error).message}` });
    return {};
  }
  try {
    const doc: unknown = parseYaml(text);
    if (doc === null || doc === undefined) return {};
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error('top level must be a mapping of KEY: value');
    return doc as Record<string, unknown>;
  } catch (err) {
    problems.push({ key: 'BKSTREAM_CONFIG', message: `cannot parse ${path}: ${(err as Error).message}` });
    return {};
  }
}

/**
 * Loads and validates `spec`. Throws one {@link ConfigError} listing every problem: missing required
 * keys, unparsable values, unknown keys in the file, and cross-field problems from `validate`.
 */
export function loadConfig<S extends Spec>(spec: S, options: LoadOptions = {}): Config<S> {
  const env = options.env ?? process.env;
  const problems: ConfigProblem[] = [];
  const filePath = options.file ?? env.BKSTREAM_CONFIG;
  const fileValues = filePath ? readFile(filePath, problems) : {};
  const knownEnv = new Set(Object.values(spec).map((f) => f.env));
  for (const key of Object.keys(fileValues)) {
    if (!knownEnv.has(key)) problems.push({ key: `${filePath}:${key}`, message: 'unknown key' });
  }
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(spec)) {
    const fromEnv = env[f.env];
    const raw: unknown = fromEnv !== undefined && fromEnv !== '' ? fromEnv : fileValues[f.env];
    const where = fromEnv !== undefined && fromEnv !== '' ? f.env : `${filePath}:${f.env}`;
    if (raw === undefined || raw === null || raw === '') {
      if (f.required) {
        problems.push({ key: f.env, message: `is required (${f.doc})` });
      }
      out[name] = f.default;
      continue;
    }
    try {
      out[name] = f.parse(raw);
    } catch (err) {
      problems.push({ key: where, message: (err as Error).message });
    }
  }
  if (problems.length === 0 && options.validate) problems.push(...options.validate(out as never));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as Config<S>;
}

/** Markdown rows `| ENV | default | doc |` for a README's configuration table. */
export function configTable(spec: Spec): string {
  const rows = Object.values(spec).map((f) => `| \`${f.env}\` | ${f.defaultText} | ${f.doc} |`);
  return ['| variable | default | meaning |', '| --- | --- | --- |', ...rows].join('\n');
}

/** Settings every service shares: where Kafka and the store are, topic prefix, logging. */
export const commonSpec = {
  kafkaBrokers: list({
    env: 'KAFKA_BROKERS',
    default: [],
    item: hostPort,
    doc: 'Kafka bootstrap brokers (host:port, comma separated); unset = the local broker managed by scripts/kafka.ts',
  }),
  topicPrefix: str({
    env: 'TOPIC_PREFIX',
    default: 'bkstream',
    pattern: /^[A-Za-z0-9._-]{1,100}$/,
    doc: 'prefix of every topic name (`<prefix>.spans`, ...)',
  }),
  databaseUrl: optionalUrl({
    env: 'DATABASE_URL',
    protocols: ['postgres', 'postgresql'],
    doc: 'PostgreSQL connection URL; unset = embedded PGlite under DATA_DIR',
  }),
  dataDir: str({ env: 'DATA_DIR', default: './data', doc: 'directory of the embedded PGlite database and local state' }),
  pgliteSharedBuffers: str({
    env: 'PGLITE_SHARED_BUFFERS',
    default: '32MB',
    pattern: /^[1-9]\d{0,5}(kB|MB|GB)$/,
    doc: "embedded PGlite's shared_buffers (its buffer pool stays in the process's memory)",
  }),
  pgliteHeapLimitMb: int({
    env: 'PGLITE_HEAP_LIMIT_MB',
    default: 0,
    min: 0,
    doc: "V8 old-generation limit of embedded PGlite's thread, MB (0 = V8's default); a statement that needs more ends the thread, fails as retriable, and the next opens the database again",
  }),
  logLevel: oneOf({
    env: 'LOG_LEVEL',
    default: 'info',
    values: ['error', 'warn', 'info', 'debug', 'silent'],
    doc: 'log level of the JSON logs on stdout',
  }),
  adminToken: optionalSecret({
    env: 'BKSTREAM_ADMIN_TOKEN',
    minLength: 32,
    doc: 'an admin token every service accepts besides the ones in the database (`bkstream admin token`), e.g. from a Kubernetes Secret; the only one a service without a database (the agent) accepts. The CLI sends it',
  }),
  adminTokenFile: secretFile({
    env: 'BKSTREAM_ADMIN_TOKEN_FILE',
    doc: 'a file holding that admin token instead (mode 0600 or stricter, else refused)',
  }),
  allowedHosts: list({
    env: 'BKSTREAM_ALLOWED_HOSTS',
    default: ['localhost'],
    item: (s) => {
      if (!/^\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(s)) throw new Error('must be a host name, or .domain for its subdomains');
    },
    doc: 'host names the authenticated APIs answer to in Host and Origin headers (against DNS rebinding); IP addresses are always accepted; `.example.org` accepts its subdomains',
  }),
  authFailureLimit: int({
    env: 'BKSTREAM_AUTH_FAILURE_LIMIT',
    default: 20,
    min: 1,
    doc: 'failed authentications one client address may make in a minute; past it the address is refused (429) for BKSTREAM_AUTH_BLOCK_S',
  }),
  authBlockS: int({ env: 'BKSTREAM_AUTH_BLOCK_S', default: 60, min: 1, max: 86_400, doc: 'how long an address that failed too often is refused, s' }),
  healthProbeIntervalMs: int({
    env: 'HEALTH_PROBE_INTERVAL_MS',
    default: 1_000,
    min: 100,
    max: 2_000,
    doc: 'how often readiness probes the database and the Kafka broker, ms (with the timeout, an outage shows within 5 s)',
  }),
  healthProbeTimeoutMs: int({
    env: 'HEALTH_PROBE_TIMEOUT_MS',
    default: 2_000,
    min: 100,
    max: 3_000,
    doc: 'a readiness probe that takes longer fails, ms',
  }),
} satisfies Spec;

/** Cross-field checks of the shared settings. */
export function validateCommon(c: Config<typeof commonSpec>): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  if (c.adminToken !== undefined && c.adminTokenFile !== undefined) {
    problems.push({ key: 'BKSTREAM_ADMIN_TOKEN_FILE', message: 'set BKSTREAM_ADMIN_TOKEN or BKSTREAM_ADMIN_TOKEN_FILE, not both' });
  }
  if (c.adminTokenFile !== undefined && c.adminTokenFile.length < 32) {
    problems.push({ key: 'BKSTREAM_ADMIN_TOKEN_FILE', message: 'the token in the file must be at least 32 characters long (the value is not shown)' });
  }
  return problems;
}

/** The admin token configured for this process (BKSTREAM_ADMIN_TOKEN or the content of BKSTREAM_ADMIN_TOKEN_FILE). */
export function configuredAdminToken(c: Pick<Config<typeof commonSpec>, 'adminToken' | 'adminTokenFile'>): string | undefined {
  return c.adminToken ?? c.adminTokenFile;
}

/** Local broker default when `KAFKA_BROKERS` is unset. */
export function brokersOrLocal(brokers: readonly string[], env: NodeJS.ProcessEnv = process.env): string[] {
  if (brokers.length > 0) return [...brokers];
  return [`127.0.0.1:${env.KAFKA_PORT ?? '9092'}`];
}
