/**
 * Structured JSON logs through winston. One root logger per process, a child per component
 * (`logger.child({ component: 'discovery.flush' })`), metadata objects instead of values pasted into
 * strings. kafkajs logs are routed into the same logger by {@link kafkaLogCreator}.
 */
import winston from 'winston';
import { errorMessage } from './errors.ts';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent';

/** The subset of winston's logger the services use; tests can pass {@link silentLogger}. */
export interface Logger {
  error(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  debug(message: string, meta?: Record<string, unknown>): void;
  child(meta: Record<string, unknown>): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Added to every line, e.g. `{ service: 'discovery' }`. */
  defaultMeta?: Record<string, unknown>;
  /** Where lines go; default stdout. */
  stream?: NodeJS.WritableStream;
}

/** Serialises Error objects (and their causes) found in metadata. */
const errors = winston.format((info) => {
  for (const [k, v] of Object.entries(info)) {
    if (v instanceof Error) {
      info[k] = { name: v.name, message: v.message, ...(v.cause === undefined ? {} : { cause: errorMessage(v.cause) }) };
    }
  }
  return info;
});

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? 'info';
  return winston.createLogger({
    level: level === 'silent' ? 'error' : level,
    silent: level === 'silent',
    defaultMeta: options.defaultMeta,
    format: winston.format.combine(errors(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stdout })],
  });
}

/** A logger that drops everything (tests). */
export const silentLogger: Logger = createLogger({ level: 'silent' });

/** kafkajs log levels: NOTHING 0, ERROR 1, WARN 2, INFO 4, DEBUG 5. */
const KAFKA_LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = { 1: 'error', 2: 'warn', 4: 'info', 5: 'debug' };

interface KafkaLogEntry {
  namespace: string;
  level: number;
  label: string;
  log: { message: string } & Record<string, unknown>;
}

/**
 * A kafkajs `logCreator` that writes into `logger` (component `kafkajs`). kafkajs is chatty at info
 * (every group join, every connection): its info lines are logged at debug. So are the error lines its
 * connections write for every error code in a broker's answer (`Response Metadata(key: 3, version: 6)`
 * with "This server does not host this topic-partition" while a new topic's leaders are elected, and the
 * like): kafkajs retries those itself, and what still fails reaches the caller as an error, which logs it
 * once in its own words — a raw line per retried answer only buried that on the terminal. The runner's
 * "The group is rebalancing, re-joining" (a warning in kafkajs) is info: a member joining or leaving the
 * group is normal operation (scaling, a restart, `bkstream up` starting its consumers), and the bus logs
 * the assignment that follows at info itself.
 */
export function kafkaLogCreator(logger: Logger): () => (entry: KafkaLogEntry) => void {
  const kafkaLogger = logger.child({ component: 'kafkajs' });
  return () => (entry) => {
    const { message, timestamp: _ts, logger: _l, ...meta } = entry.log;
    let level = KAFKA_LEVELS[entry.level] ?? 'debug';
    if (level === 'info' || (entry.namespace === 'Connection' && message.startsWith('Response '))) level = 'debug';
    else if (entry.namespace === 'Runner' && message.startsWith('The group is rebalancing')) level = 'info';
    kafkaLogger[level](message, { namespace: entry.namespace, ...meta });
  };
}
