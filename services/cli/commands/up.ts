/**
 * `bkstream up`: the whole pipeline on one machine, on the embedded defaults.
 *
 * - Kafka: KAFKA_BROKERS, or the local broker (scripts/kafka.ts), started here and stopped on exit.
 * - Topics: created when missing (partitions/retention from config).
 * - Store: DATABASE_URL, or embedded PGlite under DATA_DIR (./data); migrated.
 * - Services: every entry of services/cli/services.ts, in one process sharing the store and the bus.
 * Ctrl-C (SIGINT) or SIGTERM stops everything, intake first.
 */
import { brokersOf, kafkaSettings, startKafka, stopKafka } from '../local-kafka.ts';
import { ensureTopics } from '../topics.ts';
import { commonSpec, loadConfig } from '../../common/config.ts';
import { Lifecycle } from '../../common/lifecycle.ts';
import { ConfigError, type ConfigProblem } from '../../common/errors.ts';
import { openInfrastructure, type ServiceDeps, type ServiceModule } from '../../common/service.ts';
import { topicsSpec } from '../../common/topics.ts';
import type { Command } from '../command.ts';
import { UP_SERVICES } from '../services.ts';

export const command: Command = {
  summary: 'run the whole pipeline locally (broker, topics, store, every service)',
  usage: 'bkstream up',
  async run(_args, baseEnv) {
    const env = { ...baseEnv };
    const config = loadConfig({ ...commonSpec, ...topicsSpec }, { env });
    const settings = kafkaSettings(env);
    let startedBroker = false;
    if (config.kafkaBrokers.length === 0) {
      console.log(`local Kafka broker on 127.0.0.1:${settings.port} (the first run downloads the broker jars with mvn)…`);
      startedBroker = (await startKafka(settings)).started;
      env.KAFKA_BROKERS = brokersOf(settings).join(',');
    }
    const all = new Lifecycle({ logger: (await import('../../common/log.ts')).createLogger({ level: 'warn' }) });
    if (startedBroker) all.onStop('kafka', () => stopKafka(settings).then(() => undefined));
    try {
      const created = await ensureTopics(env.KAFKA_BROKERS ? env.KAFKA_BROKERS.split(',') : brokersOf(settings), config.topicPrefix, config);
      if (created.length > 0) console.log(`created topics: ${created.join(', ')}`);
      // Every service's settings are checked before anything is opened, so one run lists every problem.
      const entries = UP_SERVICES.filter((entry) => !entry.enabled || entry.enabled(env));
      const planned: { module: ServiceModule; config: unknown }[] = [];
      const problems: ConfigProblem[] = [];
      for (const entry of entries) {
        Object.assign(env, entry.env?.(env) ?? {});
        const module = await entry.module();
        try {
          planned.push({ module, config: module.config(env) });
        } catch (err) {
          if (!(err instanceof ConfigError)) throw err;
          for (const p of err.problems) if (!problems.some((q) => q.key === p.key && q.message === p.message)) problems.push(p);
        }
      }
      if (problems.length > 0) throw new ConfigError(problems);
      const needs = [...new Set(planned.flatMap((p) => p.module.needs))];
      const infra = await openInfrastructure(env, 'bkstream', needs);
      all.add(infra.lifecycle);
      await all.start();
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
