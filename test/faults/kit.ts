/**
 * What the fault tests (test/faults/*.test.ts, issue 18 item 5) share: one result line per test,
 * `FAULT <name> in=<records accepted> out=<records stored/arrived> duplicates=<n>`, printed on stdout and
 * with t.log (docs/operations.md quotes them); a service module started on a given broker and store with
 * its own bus and registry, the way a service's main does; the topics of a fresh prefix on a broker.
 * Brokers of their own and proxied databases are test/common/fault-kit.ts's.
 */
import type { ExecutionContext } from 'ava';
import { Bus } from '../../services/common/bus/index.ts';
import { commonSpec, loadConfig } from '../../services/common/config.ts';
import type { Component } from '../../services/common/lifecycle.ts';
import { silentLogger } from '../../services/common/log.ts';
import { createRegistry, type Registry } from '../../services/common/metrics.ts';
import type { ServiceDeps, ServiceModule } from '../../services/common/service.ts';
import type { Store } from '../../services/common/store/index.ts';
import { topicPlan } from '../../services/common/topics.ts';
import { ADMIN_ENV } from '../common/auth-kit.ts';
import { uniqueName } from '../helpers/kafka.ts';

export interface FaultCounts {
  /** Records the system accepted (acknowledged to their sender). */
  in: number;
  /** Records that arrived where they go (rows stored, messages read back). */
  out: number;
  /** Records stored or delivered more than once. */
  duplicates: number;
}

/** Prints the test's result line (stdout and t.log). */
export function faultLine(t: ExecutionContext, name: string, counts: FaultCounts, detail = ''): string {
  const line = `FAULT ${name} in=${counts.in} out=${counts.out} duplicates=${counts.duplicates}${detail ? ` ${detail}` : ''}`;
  // eslint-disable-next-line no-console -- the line is for the CI log, beside the test report
  console.log(line);
  t.log(line);
  return line;
}

/** A fresh topic prefix with every topic of the plan on `brokers` (partitions as given, 1 h retention), deleted in teardown. */
export async function faultTopics(t: ExecutionContext, brokers: readonly string[], partitions = 3): Promise<string> {
  const prefix = uniqueName('fault');
  const plan = topicPlan(prefix).map((p) => ({ ...p, numPartitions: partitions, retentionMs: 3_600_000 }));
  const admin = new Bus({ brokers: [...brokers], clientId: uniqueName('fault-topics'), logger: silentLogger }).admin();
  await admin.start();
  try {
    await admin.ensureTopics(plan);
  } finally {
    await admin.stop();
  }
  t.teardown(async () => {
    const a = new Bus({ brokers: [...brokers], clientId: uniqueName('fault-topics'), logger: silentLogger }).admin();
    await a.start().catch(() => undefined);
    await a.deleteTopics(plan.map((p) => p.topic)).catch(() => undefined);
    await a.stop().catch(() => undefined);
  });
  return prefix;
}

/** The settings every service of a fault test runs with: quick flushes and drains, ports 0, the test admin token. */
export const FAULT_ENV: NodeJS.ProcessEnv = {
  LOG_LEVEL: 'silent',
  DISCOVERY_HTTP_PORT: '0',
  DISCOVERY_FLUSH_INTERVAL_MS: '100',
  DISCOVERY_PAIRING_TTL_MS: '300',
  DISCOVERY_STOP_DRAIN_MS: '1000',
  DISCOVERY_SWEEP_INTERVAL_MS: '3600000',
  STORAGE_HTTP_PORT: '0',
  STORAGE_FLUSH_INTERVAL_MS: '50',
  STORAGE_STOP_DRAIN_MS: '1000',
  ...ADMIN_ENV,
};

export interface StartedService<S extends Component = Component> {
  service: S;
  registry: Registry;
  bus: Bus;
  env: NodeJS.ProcessEnv;
}

/**
 * Creates and starts `module` as its main would — its config from `env` (over FAULT_ENV, on `brokers` and
 * `prefix`), its own bus and registry, the given store — and stops it in teardown.
 */
export async function startService<C, S extends Component = Component>(
  t: ExecutionContext,
  module: ServiceModule<C, 'store' | 'bus'>,
  options: { brokers: readonly string[]; prefix: string; store: Store; env?: NodeJS.ProcessEnv },
): Promise<StartedService<S>> {
  const env: NodeJS.ProcessEnv = { ...FAULT_ENV, KAFKA_BROKERS: options.brokers.join(','), TOPIC_PREFIX: options.prefix, ...options.env };
  const registry = createRegistry({ service: module.name });
  const bus = new Bus({ brokers: [...options.brokers], clientId: uniqueName(`fault-${module.name}`), logger: silentLogger, registry });
  const deps: ServiceDeps<'store' | 'bus'> = { env, logger: silentLogger, registry, store: options.store, bus, common: loadConfig(commonSpec, { env }) };
  const service = (await module.create(deps, module.config(env))) as S;
  t.teardown(() => service.stop());
  await service.start();
  return { service, registry, bus, env };
}

/** The sum of a counter's (or gauge's) values in a registry, optionally only those with the given labels. */
export async function metricSum(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const values = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return values.filter((v) => Object.entries(labels).every(([k, x]) => String((v.labels as Record<string, unknown>)[k]) === x)).reduce((sum, v) => sum + v.value, 0);
}
