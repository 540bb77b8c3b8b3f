/**
 * `bkstream up`: the whole pipeline on one machine, on the embedded defaults.
 *
 * - Configuration: the shared settings, the topics' and every service's own are checked first, before
 *   anything starts or connects, and every problem of every key is listed in one error.
 * - Kafka: KAFKA_BROKERS, or the local broker (scripts/kafka.ts), started here and stopped on exit.
 * - Topics: created when missing (partitions/retention from config).
 * - Store: DATABASE_URL, or embedded PGlite under DATA_DIR (./data); migrated.
 * - Admin token: on the first run (no admin token in the store yet) one is created and printed, once
 *   (SECURITY.md); the CLI and the console use it.
 * - Services: every entry of services/cli/services.ts, in one process sharing the store and the bus.
 * Ctrl-C (SIGINT) or SIGTERM stops everything, intake first.
 */
import { brokersOf, kafkaSettings, startKafka, stopKafka } from '../local-kafka.ts';
import { ensureTopics } from '../topics.ts';
import { ensureBootstrapAdminToken } from '../../common/auth.ts';
import { commonSpec, loadConfig, validateCommon } from '../../common/config.ts';
import { Lifecycle } from '../../common/lifecycle.ts';
import { ConfigError, type ConfigProblem } from '../../common/errors.ts';
import { openInfrastructure, type ServiceDeps, type ServiceModule } from '../../common/service.ts';
import { topicsSpec } from '../../common/topics.ts';
import type { Command } from '../command.ts';
import { UP_SERVICES, type UpEntry } from '../services.ts';
import { adminTokenHelp } from './admin.ts';

/**
 * Every configuration problem `up` would meet — shared keys, topics, each service's own — in one
 * ConfigError, without starting or connecting anything; the planned services and their configs otherwise.
 */
export async function checkUpConfig(env: NodeJS.ProcessEnv, entries: readonly UpEntry[] = UP_SERVICES): Promise<{ module: ServiceModule; config: unknown }[]> {
  const problems: ConfigProblem[] = [];
  const add = (err: unknown): void => {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) if (!problems.some((q) => q.key === p.key && q.message === p.message)) problems.push(p);
  };
  try {
    loadConfig({ ...commonSpec, ...topicsSpec }, { env, validate: validateCommon });
  } catch (err) {
    add(err);
  }
  const planned: { module: ServiceModule; config: unknown }[] = [];
  for (const entry of entries.filter((e) => !e.enabled || e.enabled(env))) {
    Object.assign(env, entry.env?.(env) ?? {});
    const module = await entry.module();
    try {
      planned.push({ module, config: module.config(env) });
    } catch (err) {
      add(err);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return planned;
}

export const command: Command = {
  summary: 'run the whole pipeline locally (broker, topics, store, every service)',
  usage: 'bkstream up',
  async run(_args, baseEnv) {
    const env = { ...baseEnv };
    // Every setting is checked before anything is started or opened, so one run lists every problem.
    await checkUpConfig({ ...env });
    const config = loadConfig({ ...commonSpec, ...topicsSpec }, { env });
    const settings = kafkaSettings(env);
    let startedBroker = false;
    if (config.kafkaBrokers.length === 0) {
      console.log(`local Kafka broker on 127.0.0.1:${settings.port}…`);
      // The first run resolves the broker jars with mvn: its downloads are reported, condensed.
      startedBroker = (await startKafka(settings, undefined, { progress: (m) => console.log(`  kafka: ${m}`) })).started;
      env.KAFKA_BROKERS = brokersOf(settings).join(',');
    }
    const all = new Lifecycle({ logger: (await import('../../common/log.ts')).createLogger({ level: 'warn' }) });
    if (startedBroker) all.onStop('kafka', () => stopKafka(settings).then(() => undefined));
    try {
      const created = await ensureTopics(env.KAFKA_BROKERS ? env.KAFKA_BROKERS.split(',') : brokersOf(settings), config.topicPrefix, config);
      if (created.length > 0) console.log(`created topics: ${created.join(', ')}`);
      // The configs again, on the final environment (the local broker's address is known now).
      const planned = await checkUpConfig(env);
      const needs = [...new Set(planned.flatMap((p) => p.module.needs))];
      const infra = await openInfrastructure(env, 'bkstream', needs);
      all.add(infra.lifecycle);
      await all.start();
      const store = (infra.deps as Partial<ServiceDeps>).store;
      const bootstrap = store ? await ensureBootstrapAdminToken(store) : undefined;
      if (bootstrap) console.log(`first run: ${adminTokenHelp(bootstrap)}`);
      for (const { module, config } of planned) {
        const service = await module.create({ ...infra.deps, env }, config);
        all.add(service);
        await all.start();
        console.log(`started ${module.name}`);
      }
      console.log(`bkstream is up (store: ${(infra.deps as ServiceDeps).store.driver}, brokers: ${env.KAFKA_BROKERS ?? ''}). Ctrl-C stops it.`);
    } catch (err) {
      await all.stop().catch(() => undefined);
      throw err;
    }
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    console.log('stopping…');
    await all.stop();
    return 0;
  },
};
