/**
 * The local single-node Kafka broker's command line (the broker itself: services/cli/local-kafka.ts).
 *
 *   node scripts/kafka.ts install   resolve the broker jars from Maven Central (mvn, cached in ~/.m2)
 *   node scripts/kafka.ts start     install if needed, format storage once, start, wait for metadata
 *   node scripts/kafka.ts stop      stop the broker started from this checkout (SIGTERM, then SIGKILL)
 *   node scripts/kafka.ts status    running / stopped
 *   node scripts/kafka.ts reset     stop and delete the broker's data
 *
 * Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT + 1), KAFKA_VERSION (3.9.2),
 * KAFKA_HEAP (512m), BKSTREAM_HOME (<checkout>/.bkstream).
 */
import { rmSync } from 'node:fs';
import { installKafka, KafkaSetupError, kafkaSettings, kafkaStatus, runDir, startKafka, stopKafka } from '../services/cli/local-kafka.ts';
import { installWarningFilter } from '../services/common/process.ts';

async function main(): Promise<void> {
  const [cmd] = process.argv.slice(2);
  const s = kafkaSettings();
  switch (cmd) {
    case 'install':
      installKafka(s);
      return;
    case 'start': {
      const r = await startKafka(s);
      if (process.env.VERBOSE) console.log(`kafka ${r.started ? 'started' : 'already running'} at ${r.brokers.join(',')}`);
      return;
    }
    case 'stop':
      await stopKafka(s);
      return;
    case 'status':
      console.log(await kafkaStatus(s));
      return;
    case 'reset':
      await stopKafka(s);
      rmSync(runDir(s), { recursive: true, force: true });
      return;
    default:
      console.error('usage: node scripts/kafka.ts install|start|stop|status|reset');
      process.exitCode = 2;
  }
}

if (import.meta.main) {
  installWarningFilter();
  main().catch((err: unknown) => {
    console.error(`kafka: ${err instanceof KafkaSetupError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
}
