/**
 * The readiness probe of the Kafka broker: one short admin round trip (connect, describe the cluster,
 * disconnect) on a client of its own, with no retries, short timeouts and no logs, so a dead or hung
 * broker fails the probe within its timeout instead of kafkajs's retry budget, and the service's own
 * clients are not disturbed.
 */
import { Kafka, logLevel } from 'kafkajs';

/** A readiness probe (health.ts's Probe) of the brokers. */
export function kafkaProbe(brokers: readonly string[], timeoutMs: number): { name: string; check(): Promise<void> } {
  const kafka = new Kafka({
    clientId: 'bkstream-readiness',
    brokers: [...brokers],
    connectionTimeout: Math.max(100, Math.floor(timeoutMs / 2)),
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  });
  return {
    name: 'kafka',
    async check() {
      const admin = kafka.admin();
      try {
        await admin.connect();
        await admin.describeCluster();
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    },
  };
}
