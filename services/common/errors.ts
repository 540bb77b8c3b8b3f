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

/** The thing asked for does not exist (a flow, an application, a listing). */
export class NotFoundError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('not_found', message, false, options);
  }
}

/** The request conflicts with the current state (already exists, wrong status for the operation). */
export class ConflictError extends BkError {
  constructor(message: string, options?: BkErrorOptions) {
    super('conflict', message, false, options);
  }
}

/** A listener could not bind its address (in use, or not allowed). */
export class PortInUseError extends BkError {
  constructor(what: string, host: string, port: number, cause: unknown) {
    super('port_in_use', `cannot listen on ${host}:${port} for ${what}: ${cause instanceof Error ? cause.message : String(cause)}`, false, { cause });
  }
}

/** A request carries no credentials, or credentials that are unknown, revoked or disabled (HTTP 401, gRPC UNAUTHENTICATED). */
export class UnauthenticatedError extends BkError {
  constructor(message: string) {
    super('unauthenticated', message, false);
  }
}

/** The credentials are valid but do not grant what was asked (HTTP 403, gRPC PERMISSION_DENIED). */
export class ForbiddenError extends BkError {
  constructor(message: string) {
    super('forbidden', message, false);
  }
}

/** Too many requests (or failed sign-in attempts) from one client; worth retrying after `retryAfterS`. */
export class TooManyRequestsError extends BkError {
  readonly retryAfterS: number;
  constructor(message: string, retryAfterS: number) {
    super('rate_limited', message, true);
    this.retryAfterS = retryAfterS;
  }
}

/** The parts of the system an outage can name to a client: never an address, only what it is. */
export type DependencyPart = 'database' | 'Kafka broker' | 'BKData API';

/**
 * A dependency (the database, the Kafka broker) cannot be reached. Its message names the part and
 * nothing else ("the database is unavailable"), so it may reach clients; the cause (with addresses)
 * goes to the logs only. Retriable: clients are told to retry (HTTP 503, gRPC UNAVAILABLE).
 */
export class DependencyUnavailableError extends UnavailableError {
  readonly part: DependencyPart;
  constructor(part: DependencyPart, options: BkErrorOptions = {}) {
    super(`the ${part} is unavailable`, { ...options, details: { ...options.details, part } });
    this.part = part;
  }
}

/** A request body's Content-Type is not one the endpoint reads. */
export class UnsupportedMediaTypeError extends BkError {
  constructor(message: string) {
    super('unsupported_media_type', message, false);
  }
}

/** A request or body is larger than allowed. */
export class PayloadTooLargeError extends BkError {
  constructor(message: string) {
    super('payload_too_large', message, false);
  }
}

/** gRPC status codes (grpc/status.h), so edges that only map errors need not import grpc-js. */
export const GrpcCode = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/** How an error reaches a client at any edge: a short outcome label, the HTTP status, the gRPC code. */
export interface EdgeStatus {
  outcome: string;
  http: number;
  grpc: GrpcCode;
}

/** Error code → edge status. Every HTTP and gRPC edge of every service maps errors through this one table. */
export const EDGE_STATUS: Readonly<Record<string, EdgeStatus>> = {
  invalid_argument: { outcome: 'invalid_argument', http: 400, grpc: GrpcCode.INVALID_ARGUMENT },
  unauthenticated: { outcome: 'unauthenticated', http: 401, grpc: GrpcCode.UNAUTHENTICATED },
  forbidden: { outcome: 'forbidden', http: 403, grpc: GrpcCode.PERMISSION_DENIED },
  not_found: { outcome: 'not_found', http: 404, grpc: GrpcCode.NOT_FOUND },
  conflict: { outcome: 'conflict', http: 409, grpc: GrpcCode.FAILED_PRECONDITION },
  payload_too_large: { outcome: 'too_large', http: 413, grpc: GrpcCode.RESOURCE_EXHAUSTED },
  unsupported_media_type: { outcome: 'unsupported_media_type', http: 415, grpc: GrpcCode.INVALID_ARGUMENT },
  rate_limited: { outcome: 'rate_limited', http: 429, grpc: GrpcCode.RESOURCE_EXHAUSTED },
  overloaded: { outcome: 'overloaded', http: 503, grpc: GrpcCode.UNAVAILABLE },
};
const UNAVAILABLE_STATUS: EdgeStatus = { outcome: 'unavailable', http: 503, grpc: GrpcCode.UNAVAILABLE };
const INTERNAL_STATUS: EdgeStatus = { outcome: 'internal', http: 500, grpc: GrpcCode.INTERNAL };

/**
 * The edge status of any thrown value: by its code in {@link EDGE_STATUS}; otherwise a retriable error is
 * `unavailable` (503 / UNAVAILABLE, clients retry) and anything else `internal` (500 / INTERNAL).
 */
export function edgeStatusOf(err: unknown): EdgeStatus {
  if (err instanceof ValidationError) return EDGE_STATUS.invalid_argument as EdgeStatus;
  if (err instanceof BkError) {
    const known = EDGE_STATUS[err.code];
    if (known) return known;
  }
  return isRetriable(err) ? UNAVAILABLE_STATUS : INTERNAL_STATUS;
}

/** The dependency an error says is unavailable, if it says so (itself or through its causes). */
export function unavailablePart(err: unknown): DependencyPart | undefined {
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 8; depth++) {
    if (e instanceof DependencyUnavailableError) return e.part;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * What a client may see of an error: a dependency outage names the part ("the database is
 * unavailable"), our own errors their message; anything else — a driver's or the network's message,
 * which may carry internal addresses — is "internal error" (or "a dependency is unavailable, retry
 * later" when it is retriable). Stacks never leave the process.
 */
export function clientMessage(err: unknown): string {
  const part = unavailablePart(err);
  if (part !== undefined) return `the ${part} is unavailable`;
  if (err instanceof BkError) return err.message;
  return isRetriable(err) ? 'a dependency is unavailable, retry later' : 'internal error';
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
