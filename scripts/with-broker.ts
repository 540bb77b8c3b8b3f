/**
 * Runs a command with a Kafka broker available: `node scripts/with-broker.ts -- <command> [args...]`.
 *
 * KAFKA_BROKERS set → the command runs against it. Otherwise the local broker (scripts/kafka.ts) is used,
 * started first if it is not running and stopped afterwards if this script started it. The command gets
 * KAFKA_BROKERS in its environment; its exit code is this script's exit code.
 */
import { installWarningFilter } from '../services/common/process.ts';
import { spawn } from 'node:child_process';
import { brokersOf, kafkaSettings, KafkaSetupError, startKafka, stopKafka } from '../services/cli/local-kafka.ts';

/** Runs `fn` with KAFKA_BROKERS pointing at a live broker; stops the broker afterwards if it started it. */
export async function withBroker<T>(fn: (env: NodeJS.ProcessEnv) => Promise<T>): Promise<T> {
  const env = { ...process.env };
  let startedHere = false;
  const settings = kafkaSettings();
  if (!env.KAFKA_BROKERS) {
    const r = await startKafka(settings);
    startedHere = r.started;
    env.KAFKA_BROKERS = brokersOf(settings).join(',');
  }
  try {
    return await fn(env);
  } finally {
    if (startedHere) await stopKafka(settings);
  }
}

/** Spawns a command with inherited stdio (or piped stdout through `onStdout`); resolves with its exit code. */
export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, onStdout?: (chunk: Buffer) => void): Promise<number> {
  return new Promise<number>((resolve) => {
    const child = spawn(cmd, args, { stdio: ['inherit', onStdout ? 'pipe' : 'inherit', 'inherit'], env });
    if (onStdout) child.stdout?.on('data', onStdout);
    const forward = (sig: NodeJS.Signals): void => {
      child.kill(sig);
    };
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    child.once('exit', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      resolve(code ?? (signal ? 1 : 0));
    });
    child.once('error', (err) => {
      console.error(`cannot run ${cmd}: ${err.message}`);
      resolve(127);
    });
  });
}

export function reportSetupError(prefix: string, err: unknown): never {
  console.error(`${prefix}: ${err instanceof KafkaSetupError || err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

if (import.meta.main) {
  installWarningFilter();
  const sep = process.argv.indexOf('--');
  const [cmd, ...args] = sep >= 0 ? process.argv.slice(sep + 1) : process.argv.slice(2);
  if (!cmd) {
    console.error('usage: node scripts/with-broker.ts -- <command> [args...]');
    process.exit(2);
  }
  withBroker((env) => run(cmd, args, env)).then((code) => process.exit(code), (err: unknown) => reportSetupError('with-broker', err));
}
