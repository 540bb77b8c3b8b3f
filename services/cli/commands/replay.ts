/** `bkstream replay --from <time> --to <time> [--topic spans]`: backfill through `spans.replay`. */
import { commonSpec, loadConfig } from '../../common/config.ts';
import { ValidationError } from '../../common/errors.ts';
import { topicName } from '../../common/topics.ts';
import { cliBrokers, cliBus } from '../broker.ts';
import { defineCommand, type Command } from '../command.ts';
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

export const command: Command = defineCommand({
  name: 'replay',
  summary: 'copy a time range of a span topic into spans.replay (backfill)',
  options: {
    from: { type: 'string', value: 'time', required: true, help: 'the first record\'s time, inclusive' },
    to: { type: 'string', value: 'time', required: true, help: 'the end of the range, exclusive' },
    topic: { type: 'string', default: 'spans', help: 'the topic to copy from, with or without the prefix' },
  },
  notes: 'A time is an ISO 8601 time (2026-11-21T10:00:00Z), epoch ms, now, or -2h / -30m / -7d back from now\n(`--from -2h` and `--from=-2h` both work). The broker is KAFKA_BROKERS (default the local one); progress goes to stderr.',
}, async ({ values, usage }, env, print) => {
  const time = (name: 'from' | 'to'): number => {
    try {
      return parseTime(values[name]);
    } catch (err) {
      if (err instanceof ValidationError) usage(`--${name}: ${err.message}`);
      throw err;
    }
  };
  const fromMs = time('from');
  const toMs = time('to');
  if (!(fromMs < toMs)) usage(`--from (${new Date(fromMs).toISOString()}) must be before --to (${new Date(toMs).toISOString()})`);
  const config = loadConfig(commonSpec, { env });
  const bus = await cliBus(cliBrokers(config, env), 'bkstream-replay');
  const fromTopic = values.topic.includes('.') && values.topic.startsWith(`${config.topicPrefix}.`) ? values.topic : `${config.topicPrefix}.${values.topic}`;
  const result = await replay({
    bus,
    fromTopic,
    toTopic: topicName(config.topicPrefix, 'spansReplay'),
    fromMs,
    toMs,
    onProgress: progressPrinter(process.stderr),
  });
  print(`replayed ${result.copied} records (${(result.bytes / 1e6).toFixed(1)} MB) from ${fromTopic} into ${topicName(config.topicPrefix, 'spansReplay')}`);
  return 0;
});
