/**
 * The publisher (reference MonitorBeater.PublishEvent): the one consumer of the agent's channel. It takes
 * what tasks emitted, in order, turns each output into its Kafka record (envelope.ts), counts document
 * statuses for the heartbeat, and appends the records to the on-disk spool, from which the sender
 * delivers them. Stop closes the channel and drains what is in it into the spool.
 */
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { BoundedChannel } from './channel.ts';
import { envelope, type EnvelopeContext, type StatusCount } from './envelope.ts';
import type { AgentMetrics } from './metrics.ts';
import type { DiskSpool, SpoolRecord } from './spool/spool.ts';
import type { TaskOutput } from './task.ts';

/** Document status counts (heartbeat `published` / `errors`). */
export interface StatusCounters {
  success: number;
  error: number;
  fail: number;
}

export interface PublisherOptions {
  channel: BoundedChannel<TaskOutput>;
  spool: DiskSpool;
  /** The envelope context of the moment (the host identity can change with the hostid file). */
  context: () => EnvelopeContext;
  /** Id of this agent run, carried by every record. */
  runId: string;
  metrics: AgentMetrics;
  logger: Logger;
  /** Outputs taken from the channel per spool append (one fsync each). Default 64. */
  batch?: number;
}

export class Publisher implements Component {
  readonly name = 'agent-publisher';
  readonly counters: StatusCounters = { success: 0, error: 0, fail: 0 };
  readonly #o: PublisherOptions;
  readonly #log: Logger;
  #loop: Promise<void> | undefined;

  constructor(options: PublisherOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'agent.publisher' });
  }

  async start(): Promise<void> {
    this.#loop ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#o.channel.close();
    await this.#loop;
  }

  #count(s: StatusCount | undefined): void {
    if (s) this.counters[s]++;
  }

  async #run(): Promise<void> {
    const { channel, spool, metrics } = this.#o;
    for (;;) {
      metrics.queueDepth.set(channel.size);
      const outputs = await channel.take(this.#o.batch ?? 64);
      if (outputs.length === 0) return;
      const ctx = this.#o.context();
      const records: Omit<SpoolRecord, 'seq'>[] = [];
      const kinds: string[] = [];
      for (const output of outputs) {
        const e = envelope(output, ctx);
        this.#count(e.status);
        if (!e.ok) {
          metrics.dropped.inc({ reason: e.reason });
          if (e.reason === 'invalid' || e.reason === 'bad_status') this.#log.warn('output dropped', { event_type: output.eventType, reason: e.reason, detail: e.detail });
          continue;
        }
        records.push({ run: this.#o.runId, timestamp: e.timestamp, topic: e.topic, key: e.key, value: e.value });
        kinds.push(output.kind === 'event' ? 'events' : 'metrics');
      }
      if (records.length === 0) continue;
      try {
        const before = spool.stats().dropped;
        await spool.append(records);
        for (const kind of kinds) metrics.spooled.inc({ kind });
        const lost = spool.stats().dropped - before;
        if (lost > 0) metrics.dropped.inc({ reason: 'spool_full' }, lost);
        metrics.spoolBytes.set(spool.stats().bytes);
        metrics.spoolRecords.set(spool.stats().pending);
      } catch (err) {
        // A disk that refuses writes (full, read-only): the records cannot be kept. Counted and logged;
        // the agent goes on (the next append may succeed).
        metrics.dropped.inc({ reason: 'spool_write' }, records.length);
        this.#log.error('cannot write to the spool; records lost', { records: records.length, err });
      }
    }
  }
}
