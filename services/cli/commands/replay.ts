/** `bkstream replay --from <time> --to <time> [--topic spans]`: backfill through `spans.replay`. */
import { parseArgs } from 'node:util';
import { Bus } from '../../common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../../common/config.ts';
import { ValidationError } from '../../common/errors.ts';
import { createLogger } from '../../common/log.ts';
import { topicName } from '../../common/topics.ts';
import type { Command } from '../command.ts';
import { parseTime, replay, type ReplayProgress } from '../replay.ts';

function progressPrinter(out: NodeJS.WriteStream): (p: ReplayProgress) => void {
  const started = Date.now();
  let last = 0;
  return (p) => {
    const now = Date.now();
    const done = p.copied === p.total;
    if (!done && now - last < (out.isTTY ? 200 : 2_000)) return;
    last = now;
    const pct = p.total === 0 ? 100 : (p.copied / p.total) * 100;
    const width = 30;
    const bar = '#'.repeat(Math.round((pct / 100) * width)).padEnd(width, '.');
    const rate = Math.round(p.copied / Math.max(0.001, (now - started) / 1000));
    const line = `replay [${bar}] ${pct.toFixed(1)}% ${p.copied}/${p.total} records, ${(p.bytes / 1e6).toFixed(1)} MB, ${rate} rec/s`;
    out.write(out.isTTY ? `\r${line}${done ? '\n' : ''}` : `${line}\n`);
  };
}

export const command: Command = {
  summary: 'copy a time range of a span topic into spans.replay (backfill)',
  usage: 'bkstream replay --from <time> --to <time> [--topic spans]   (time: ISO 8601, epoch ms, now, -2h, -30m, -7d)',
  async run(args, env) {
    const { values } = parseArgs({ args, options: { from: { type: 'string' }, to: { type: 'string' }, topic: { type: 'string', default: 'spans' } } });
    if (!values.from || !values.to) throw new ValidationError('replay needs --from and --to');
    const config = loadConfig(commonSpec, { env });
    const bus = new Bus({ brokers: brokersOrLocal(config.kafkaBrokers, env), clientId: 'bkstream-replay', logger: createLogger({ level: 'warn' }) });
    const fromTopic = values.topic.includes('.') && values.topic.startsWith(`${config.topicPrefix}.`) ? values.topic : `${config.topicPrefix}.${values.topic}`;
    const result = await replay({
      bus,
      fromTopic,
      toTopic: topicName(config.topicPrefix, 'spansReplay'),
      fromMs: parseTime(values.from),
      toMs: parseTime(values.to),
      onProgress: progressPrinter(process.stderr),
    });
    console.log(`replayed ${result.copied} records (${(result.bytes / 1e6).toFixed(1)} MB) from ${fromTopic} into ${topicName(config.topicPrefix, 'spansReplay')}`);
    return 0;
  },
};
