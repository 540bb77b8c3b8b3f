/**
 * How commands reach Kafka: a bus that prints no kafkajs logs on the terminal, and a probe first, so a
 * broker that does not answer fails the command in a few seconds with one line (`cannot reach the Kafka
 * broker at … (set KAFKA_BROKERS): …`) instead of kafkajs's whole retry budget of logged errors.
 */
import { Bus, type BusOptions } from '../common/bus/index.ts';
import { kafkaProbe } from '../common/bus/probe.ts';
import { brokersOrLocal, type commonSpec, type Config } from '../common/config.ts';
import { UnavailableError } from '../common/errors.ts';
import { silentLogger } from '../common/log.ts';
import { innermostMessage } from './messages.ts';

/** How long a command waits for the broker's first answer, ms. */
export const BROKER_PROBE_TIMEOUT_MS = 3_000;

/** The brokers of the configuration, or the local broker's address. */
export function cliBrokers(config: Pick<Config<typeof commonSpec>, 'kafkaBrokers'>, env: NodeJS.ProcessEnv): string[] {
  return brokersOrLocal(config.kafkaBrokers, env);
}

/** Throws UnavailableError, one line, unless a broker of `brokers` answers within `timeoutMs`. */
export async function expectBroker(brokers: readonly string[], timeoutMs = BROKER_PROBE_TIMEOUT_MS): Promise<void> {
  try {
    await kafkaProbe(brokers, timeoutMs).check();
  } catch (err) {
    throw new UnavailableError(`cannot reach the Kafka broker at ${brokers.join(',')} (set KAFKA_BROKERS): ${innermostMessage(err)}`, { cause: err });
  }
}

/** A bus with no logs (its errors reach the command as exceptions), once the broker has answered the probe. */
export async function cliBus(brokers: readonly string[], clientId: string, options: Partial<Omit<BusOptions, 'brokers' | 'clientId' | 'logger'>> = {}): Promise<Bus> {
  await expectBroker(brokers);
  return new Bus({ brokers, clientId, logger: silentLogger, ...options });
}
