/**
 * Replay (backfill): copy the records of a time range of `spans` into `spans.replay`, which discovery
 * consumes in its own consumer group. Because discovery writes with event time and GREATEST(last_seen),
 * a replay never moves anything back.
 *
 * The range is found by timestamp (per partition: the first offset at or after `from`, up to the first
 * offset at or after `to`). Records keep their bytes, key, headers and timestamp; a record of source
 * partition p goes to partition p mod N of the target, so spans that met on one partition (one trace)
 * still meet on one partition.
 */
import type { Bus, OutMessage } from '../common/bus/index.ts';
import { ValidationError } from '../common/errors.ts';

export interface ReplayOptions {
  bus: Bus;
  fromTopic: string;
  toTopic: string;
  /** ms since the epoch, inclusive. */
  fromMs: number;
  /** ms since the epoch, exclusive. */
  toMs: number;
  onProgress?: (p: ReplayProgress) => void;
}

export interface ReplayProgress {
  copied: number;
  total: number;
  bytes: number;
}

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `now`, `-2h` / `-30m` / `-7d` (relative to now), epoch ms, or an ISO 8601 time. */
export function parseTime(text: string, now = Date.now()): number {
  const t = text.trim();
  if (t === 'now') return now;
  const rel = /^-(\d+)([smhd])$/.exec(t);
  if (rel) return now - Number(rel[1]) * (UNITS[rel[2] as string] as number);
  if (/^\d{10,}$/.test(t)) return Number(t);
  const ms = Date.parse(t);
  if (Number.isNaN(ms)) throw new ValidationError(`cannot read time ${JSON.stringify(text)}: use an ISO time (2026-11-21T10:00:00Z), epoch ms, now, or -2h / -30m / -7d`);
  return ms;
}

export async function replay(options: ReplayOptions): Promise<ReplayProgress> {
  const { bus, fromTopic, toTopic, fromMs, toMs } = options;
  if (!(fromMs < toMs)) throw new ValidationError(`--from (${new Date(fromMs).toISOString()}) must be before --to (${new Date(toMs).toISOString()})`);
  const admin = bus.admin();
  const producer = bus.producer();
  await admin.start();
  try {
    await admin.checkTopics([fromTopic, toTopic]);
    const targetPartitions = await admin.partitionCount(toTopic);
    const [starts, ends] = await Promise.all([admin.offsetsForTime(fromTopic, fromMs), admin.offsetsForTime(fromTopic, toMs)]);
    const ranges = starts.map((s) => ({ partition: s.partition, start: s.offset, end: ends.find((e) => e.partition === s.partition)?.offset ?? s.offset }));
    const progress: ReplayProgress = { copied: 0, total: ranges.reduce((n, r) => n + Math.max(0, Number(BigInt(r.end) - BigInt(r.start))), 0), bytes: 0 };
    options.onProgress?.({ ...progress });
    if (progress.total === 0) return progress;
    await producer.start();
    await bus.readRange(fromTopic, ranges, async (records) => {
      const messages: OutMessage[] = records.map((r) => {
        const headers: Record<string, string | Buffer> = {};
        for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string' || Buffer.isBuffer(v)) headers[k] = v;
        return { key: r.key, value: r.value, headers, partition: r.partition % targetPartitions, timestamp: r.timestamp };
      });
      await producer.send(toTopic, messages);
      progress.copied += records.length;
      progress.bytes += records.reduce((n, r) => n + r.value.length, 0);
      options.onProgress?.({ ...progress });
    });
    return progress;
  } finally {
    await producer.stop();
    await admin.stop();
  }
}
