/**
 * Secrets at rest and in logs (SECURITY.md, "Secrets").
 *
 * - {@link SecretBox}: AES-256-GCM through node:crypto. A sealed value is the text
 *   `enc:v1:<key id>:<base64url(iv ‖ tag ‖ ciphertext)>`, bound to where it is kept (the additional
 *   data, e.g. `es_cluster.password`), so it can be stored in a JSON column in place of the plain text.
 *   The key id (8 hex digits of a hash of the key) lets an instance with another key say so instead of
 *   failing obscurely, and lets a rotation find what is still sealed with an old key.
 * - The key comes from config: BKSTREAM_SECRET_KEY (32 bytes, base64 or hex), or BKSTREAM_SECRET_KEY_FILE
 *   (the same in a file of mode 0600 or stricter); BKSTREAM_SECRET_KEY_PREVIOUS lists keys that still open
 *   old values during a rotation. Without either, `${DATA_DIR}/secret.key` is used, created on first use.
 * - {@link sealSecrets} / {@link openSecrets} seal and open every value of a `password` / `secret` key
 *   of a JSON document; {@link maskSecretKeys} masks them (and tokens) in documents shown to clients;
 *   {@link maskingLogger} replaces secret strings anywhere in a log line.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { readPrivateFile, type Field } from './config.ts';
import { BkError } from './errors.ts';
import type { Logger } from './log.ts';

/** What a masked secret shows. */
export const MASK = '******';

const PREFIX = 'enc:v1:';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A key's id: 8 hex digits of its SHA-256 (with a label), safe to log. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('bkstream-secret-key:').update(key).digest('hex').slice(0, 8);
}

/** Parses a key: 32 bytes as base64 / base64url (43–44 characters) or hex (64). Errors never show the value. */
export function parseKey(text: string): Buffer {
  const s = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) key = Buffer.from(s, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(s)) key = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (!key || key.length !== KEY_BYTES) throw new Error('must be 32 random bytes, base64 or hex (`bkstream admin secret-key` prints one; the value is not shown)');
  return key;
}

/** A fresh key, base64. */
export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/** Whether a value is sealed by a {@link SecretBox}. */
export function isSealed(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith(PREFIX);
}

/** A sealed value that cannot be opened: no key of this instance sealed it, or it was tampered with. */
export class SecretError extends BkError {
  constructor(message: string) {
    super('secret_unreadable', message, false);
  }
}

/** Seals and opens secrets with the current key; opens with previous keys too (rotation). */
export class SecretBox {
  readonly #key: Buffer;
  readonly #keyId: string;
  readonly #keys = new Map<string, Buffer>();

  constructor(key: Buffer, previous: readonly Buffer[] = []) {
    if (key.length !== KEY_BYTES) throw new Error(`a secret key has ${KEY_BYTES} bytes`);
    this.#key = key;
    this.#keyId = keyId(key);
    for (const k of [key, ...previous]) this.#keys.set(keyId(k), k);
  }

  /** The id of the key new values are sealed with. */
  get keyId(): string {
    return this.#keyId;
  }

  /** Seals `plain` for the place `context` (additional authenticated data). */
  seal(plain: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv);
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
    return `${PREFIX}${this.#keyId}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
  }

  /** Opens a sealed value sealed for `context`; throws {@link SecretError} when it cannot. */
  open(sealed: string, context: string): string {
    const m = /^enc:v1:([0-9a-f]{8}):([A-Za-z0-9_-]+)$/.exec(sealed);
    if (!m) throw new SecretError(`${context}: not a sealed value`);
    const id = m[1] as string;
    const key = this.#keys.get(id);
    if (!key) throw new SecretError(`${context} was sealed with key ${id}; this instance has key ${this.#keyId} (set BKSTREAM_SECRET_KEY, or list the old key in BKSTREAM_SECRET_KEY_PREVIOUS)`);
    const raw = Buffer.from(m[2] as string, 'base64url');
    if (raw.length < IV_BYTES + TAG_BYTES) throw new SecretError(`${context}: sealed value is truncated`);
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new SecretError(`${context}: sealed value does not open with key ${id} (tampered with, or moved from another field)`);
    }
  }

  /** Whether a sealed value is sealed with the current key (false: reseal it, during a rotation). */
  current(sealed: string): boolean {
    return sealed.startsWith(`${PREFIX}${this.#keyId}:`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// config

/** A key field: the value parsed into its bytes. */
function keyField(env: string, doc: string, fromFile: boolean): Field<Buffer | undefined> {
  return { env, doc, default: undefined, defaultText: '(unset)', required: false, parse: (raw) => {
    if (typeof raw !== 'string') throw new Error('must be a string');
    const s = raw.trim();
    if (s === '') return undefined;
    return parseKey(fromFile ? readPrivateFile(s) : s);
  } };
}

/** The settings of a service that seals secrets (declared once; the orchestrator's spec includes them). */
export const secretKeySpec = {
  secretKey: keyField('BKSTREAM_SECRET_KEY', 'key sealing secrets at rest (flow-config passwords): 32 random bytes, base64 or hex (`bkstream admin secret-key`); instances sharing a database need the same key', false),
  secretKeyFile: keyField('BKSTREAM_SECRET_KEY_FILE', 'a file holding that key instead (mode 0600 or stricter, else refused); neither set = `${DATA_DIR}/secret.key`, created on first use', true),
  secretKeyPrevious: {
    env: 'BKSTREAM_SECRET_KEY_PREVIOUS',
    doc: 'older keys (comma separated) that still open values sealed before a rotation; values are resealed with the current key at start',
    default: [] as readonly Buffer[],
    defaultText: '(empty)',
    required: false,
    parse: (raw: unknown): readonly Buffer[] => {
      if (typeof raw !== 'string') throw new Error('must be a comma-separated list of keys');
      return raw.split(',').map((s) => s.trim()).filter((s) => s !== '').map((s, i) => {
        try {
          return parseKey(s);
        } catch (err) {
          throw new Error(`key ${i + 1}: ${(err as Error).message}`);
        }
      });
    },
  } satisfies Field<readonly Buffer[]>,
};

export interface SecretKeySettings {
  secretKey: Buffer | undefined;
  secretKeyFile: Buffer | undefined;
  secretKeyPrevious: readonly Buffer[];
  dataDir: string;
}

/** Cross-field check: one source of the key. */
export function validateSecretKey(c: Pick<SecretKeySettings, 'secretKey' | 'secretKeyFile'>): { key: string; message: string }[] {
  return c.secretKey && c.secretKeyFile ? [{ key: 'BKSTREAM_SECRET_KEY_FILE', message: 'set BKSTREAM_SECRET_KEY or BKSTREAM_SECRET_KEY_FILE, not both' }] : [];
}

/**
 * The box of a service's settings. Without a configured key, `${DATA_DIR}/secret.key` is read, or
 * created (mode 0600) on first use; `onCreated` is told its path.
 */
export function secretBoxOf(c: SecretKeySettings, onCreated?: (path: string) => void): SecretBox {
  let key = c.secretKey ?? c.secretKeyFile;
  if (!key) {
    const path = join(c.dataDir, 'secret.key');
    if (!existsSync(path)) {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      writeFileSync(path, `${generateKey()}\n`, { mode: 0o600, flag: 'wx' });
      onCreated?.(path);
    }
    key = parseKey(readPrivateFile(path));
  }
  return new SecretBox(key, c.secretKeyPrevious);
}

// ---------------------------------------------------------------------------------------------------------
// masking

/** Keys whose string values are sealed at rest (flow configs, stored BKData requests): `password`, `*_password`, `secret`, `*_secret`. */
const SEALED_KEY = /(^|_)(password|passwd|secret)$/i;

/**
 * A copy of a JSON document in which `fn` replaced the string value of every key {@link SEALED_KEY}
 * matches (empty strings are left alone), `fn` being told the value's path (`config.es_cluster.password`,
 * arrays by index); the rest is shared, not copied.
 */
export function mapSecretValues(doc: unknown, context: string, fn: (value: string, path: string) => string): unknown {
  if (Array.isArray(doc)) {
    let changed = false;
    const out = doc.map((v: unknown, i) => {
      const next = mapSecretValues(v, `${context}.${i}`, fn);
      changed ||= next !== v;
      return next;
    });
    return changed ? out : doc;
  }
  if (doc === null || typeof doc !== 'object') return doc;
  let out: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(doc)) {
    const path = `${context}.${k}`;
    const next = SEALED_KEY.test(k) && typeof v === 'string' && v !== '' ? fn(v, path) : mapSecretValues(v, path, fn);
    if (next !== v) (out ??= { ...(doc as Record<string, unknown>) })[k] = next;
  }
  return out ?? doc;
}

/**
 * `doc` with every secret sealed by `box` for its path: plain values are sealed, values sealed with a
 * previous key resealed with the current one, current ones kept. A sealed value that does not open
 * throws {@link SecretError}.
 */
export function sealSecrets<T>(doc: T, box: SecretBox, context: string): T {
  return mapSecretValues(doc, context, (value, path) => {
    if (!isSealed(value)) return box.seal(value, path);
    if (box.current(value)) {
      box.open(value, path);
      return value;
    }
    return box.seal(box.open(value, path), path);
  }) as T;
}

/** `doc` with every sealed secret opened (plain values, from before sealing, are kept); throws {@link SecretError}. */
export function openSecrets<T>(doc: T, box: SecretBox, context: string): T {
  return mapSecretValues(doc, context, (value, path) => (isSealed(value) ? box.open(value, path) : value)) as T;
}

/** The plain secret values of a document (to mask them wherever they might be echoed). */
export function secretValues(doc: unknown): string[] {
  const out: string[] = [];
  mapSecretValues(doc, '', (value) => {
    if (!isSealed(value)) out.push(value);
    return value;
  });
  return out;
}

/** Keys whose values the CLI and logs never show. */
const SECRET_KEY = /(^|_)(password|passwd|secret|token|app_secret|api_key)$/i;

/** A copy of any JSON value with the values of secret-looking keys (`password`, `*_secret`, `token`, …) and every sealed value masked. */
export function maskSecretKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(maskSecretKeys);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, (SECRET_KEY.test(k) && typeof v === 'string' && v !== '') || isSealed(v) ? MASK : maskSecretKeys(v)]));
}

/** `text` with every occurrence of each secret replaced by {@link MASK}. */
export function maskText(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s !== '' && out.includes(s)) out = out.split(s).join(MASK);
  return out;
}

function maskValue(value: unknown, secrets: readonly string[], depth = 0): unknown {
  if (typeof value === 'string') return maskText(value, secrets);
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) {
    const cause = (value as { cause?: unknown }).cause;
    return { name: value.name, message: maskText(value.message, secrets), ...(cause === undefined ? {} : { cause: maskValue(cause instanceof Error ? cause.message : cause, secrets, depth + 1) }) };
  }
  if (Array.isArray(value)) return value.map((v) => maskValue(v, secrets, depth + 1));
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, maskValue(v, secrets, depth + 1)]));
}

/**
 * A logger that replaces each of `secrets` (e.g. the BKData app secret) with {@link MASK} in messages and
 * metadata, errors and their causes included; its children do the same.
 */
export function maskingLogger(logger: Logger, secrets: readonly (string | undefined)[]): Logger {
  const list = secrets.filter((s): s is string => typeof s === 'string' && s.length >= 4);
  if (list.length === 0) return logger;
  const wrap = (inner: Logger): Logger => ({
    error: (message, meta) => inner.error(maskText(message, list), meta && (maskValue(meta, list) as Record<string, unknown>)),
    warn: (message, meta) => inner.warn(maskText(message, list), meta && (maskValue(meta, list) as Record<string, unknown>)),
    info: (message, meta) => inner.info(maskText(message, list), meta && (maskValue(meta, list) as Record<string, unknown>)),
    debug: (message, meta) => inner.debug(maskText(message, list), meta && (maskValue(meta, list) as Record<string, unknown>)),
    child: (meta) => wrap(inner.child(maskValue(meta, list) as Record<string, unknown>)),
  });
  return wrap(logger);
}
