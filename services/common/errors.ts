/**
 * One error taxonomy for every service.
 *
 * Every error we raise on purpose is a {@link BkError}: it has a stable `code`, a `retriable` flag and an
 * optional `cause`. Edges translate them: the OTLP receiver maps retriable errors to gRPC UNAVAILABLE and
 * validation errors to INVALID_ARGUMENT; breakers ignore non-retriable (business) errors; the bus
 * dead-letters records whose failure is not retriable.
 */

export interface BkErrorOptions {
  cause?: unknown;
  /** Extra structured context for logs (topic, partition, key, ...). */
  details?: Record<string, unknown>;
}

export class BkError extends Error {
  /** Stable machine-readable code, e.g. `config_invalid`, `record_corrupt`. */
  readonly code: string;
  /** True when trying the same operation again later may succeed. */
  readonly retriable: boolean;
  readonly details: Record<string, unknown>;

  constructor(code: string, message: string, retriable: boolean, options: BkErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = retriable;
    this.details = options.details ?? {};
  }
}

/** Bad input from outside (a request, a record, a command). Never retried. */
export class ValidationError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('invalid_argument', message, false, options);
  }
}

/** One problem found while loading configuration. */
export interface ConfigProblem {
  /** The env var or file key that caused it, e.g. `KAFKA_BROKERS`. */
  key: string;
  message: string;
}

/** Configuration is invalid; lists every problem at once. Only `main` turns this into an exit. */
export class ConfigError extends BkError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(
      'config_invalid',
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  - ${p.key}: ${p.message}`).join('\n'),
      false,
    );
    this.problems = problems;
  }
}

/** A record's bytes do not start with the single-object marker, are truncated, or do not decode. */
export class CorruptRecordError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('record_corrupt', message, false, options);
  }
}

/** A record names a writer schema (by fingerprint) that is not in `schemas/`. */
export class UnknownSchemaError extends BkError {
  readonly fingerprint: string;

  constructor(fingerprint: string) {
    super('schema_unknown', `unknown writer schema fingerprint ${fingerprint}`, false, {
      details: { fingerprint },
    });
    this.fingerprint = fingerprint;
  }
}

/** The writer schema is known but cannot be read with the requested reader schema. */
export class SchemaMismatchError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('schema_mismatch', message, false, options);
  }
}

/** A dependency (broker, database, HTTP API) is unreachable or overloaded; try again later. */
export class UnavailableError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('unavailable', message, true, options);
  }
}

/** A topic the service needs does not exist. */
export class MissingTopicsError extends BkError {
  readonly topics: readonly string[];

  constructor(topics: readonly string[]) {
    super(
      'topics_missing',
      `missing Kafka topic${topics.length === 1 ? '' : 's'}: ${topics.join(', ')} ` +
        '(create them with `npm run topics`, or `bkstream up`)',
      false,
    );
    this.topics = topics;
  }
}

const PROGRAMMER_ERRORS = [TypeError, RangeError, ReferenceError, SyntaxError, EvalError, URIError];

/** Network error codes of Node and `pg` that mean "try again". */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'ENOTCONN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  '57P01', // admin_shutdown
  '57P03', // cannot_connect_now
  '53300', // too_many_connections
  '40001', // serialization_failure
  '40P01', // deadlock_detected
]);

/**
 * Whether an error is worth retrying. Our own errors say so; kafkajs errors carry `retriable`; network
 * errors are transient; programmer errors (TypeError, ...) and anything unknown are not.
 */
export function isRetriable(err: unknown): boolean {
  if (err instanceof BkError) return err.retriable;
  if (PROGRAMMER_ERRORS.some((t) => err instanceof t)) return false;
  if (typeof err !== 'object' || err === null) return false;
  const e = err as { retriable?: unknown; code?: unknown; name?: unknown };
  if (typeof e.retriable === 'boolean') return e.retriable;
  if (typeof e.code === 'string' && TRANSIENT_CODES.has(e.code)) return true;
  if (e.name === 'KafkaJSConnectionError' || e.name === 'KafkaJSRequestTimeoutError') return true;
  return false;
}

/** A short class name for an error, for metrics labels and DLQ headers. */
export function errorClass(err: unknown): string {
  if (err instanceof BkError) return err.code;
  if (err instanceof Error) return err.name;
  return typeof err;
}

/** The message of any thrown value. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
