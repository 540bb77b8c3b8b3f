/**
 * The flow commands of application changes: queued in `apm_application_flow_outbox` in the transaction
 * that changes the application (so a registration and its commands commit together, whoever makes the
 * change — the admin API or `bkstream apps` against the store), and published on `<prefix>.flow.commands`
 * by the collector's {@link FlowCommandPublisher}: Avro `FlowCommand`, key `bk_biz_id:app_name:flow_type`,
 * oldest first, deleted once the broker acknowledged them.
 *
 * At-least-once: a crash between the send and the delete sends those commands again after the claim
 * lapses; the orchestrator ignores a repeated `command_id`. `requested_at` is the database's clock at the
 * change, so the orchestrator orders the commands of one flow even when they reach it out of order.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Codec } from '../common/avro/index.ts';
import type { BusProducer } from '../common/bus/index.ts';
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { Counter } from '../common/metrics.ts';
import type { FlowCommand } from '../common/records.ts';
import { backoffDelay } from '../common/retry.ts';
import type { Queryable } from '../common/store/index.ts';
import type { PlannedCommand } from './app-flows.ts';

/** A flow command as queued (its config an object; the record carries it as JSON). */
export type QueuedCommand = Omit<FlowCommand, 'config'> & { config: Record<string, unknown> };

/** Who changed the application, as the commands' `operator` (at most 128 characters). */
export function operatorName(name: string | undefined): string {
  return (name && name !== '' ? name : 'bkstream').slice(0, 128);
}

/** Queues `commands` for an application (inside the caller's transaction); returns them as queued. */
export async function enqueueFlowCommands(tx: Queryable, app: { bkBizId: number; appName: string }, commands: readonly PlannedCommand[], operator: string): Promise<QueuedCommand[]> {
  const out: QueuedCommand[] = [];
  for (const c of commands) {
    const payload = { command_id: randomUUID(), action: c.action, flow_type: c.flow_type, bk_biz_id: app.bkBizId, app_name: app.appName, config: c.config, operator, requested_at: 0 };
    const { rows } = await tx.query<{ payload: QueuedCommand }>(
      `INSERT INTO apm_application_flow_outbox (flow_key, payload)
       VALUES ($1, jsonb_set($2::jsonb, '{requested_at}', to_jsonb(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)))
       RETURNING payload`,
      [`${app.bkBizId}:${app.appName}:${c.flow_type}`, JSON.stringify(payload)],
    );
    if (rows[0]) out.push({ ...rows[0].payload, requested_at: Number(rows[0].payload.requested_at) });
  }
  return out;
}

/** Drops the unsent commands of an application (its deletion makes them moot); returns how many. */
export async function dropQueuedCommands(tx: Queryable, bkBizId: number, appName: string): Promise<number> {
  const { rowCount } = await tx.query(
    `DELETE FROM apm_application_flow_outbox WHERE (payload->>'bk_biz_id')::bigint = $1 AND payload->>'app_name' = $2
       AND (claimed_until IS NULL OR claimed_until < now())`,
    [bkBizId, appName],
  );
  return rowCount;
}

/** The commands still queued (oldest first), for tests and listings. */
export async function queuedCommands(db: Queryable): Promise<QueuedCommand[]> {
  const { rows } = await db.query<{ payload: QueuedCommand }>('SELECT payload FROM apm_application_flow_outbox ORDER BY id');
  return rows.map((r) => ({ ...r.payload, requested_at: Number(r.payload.requested_at) }));
}

export interface FlowCommandPublisherOptions {
  store: Queryable;
  /** A producer of its own (started when there is something to send). */
  producer: Pick<BusProducer, 'start' | 'stop' | 'send'>;
  codec: Codec<FlowCommand>;
  /** `<prefix>.flow.commands`. */
  topic: string;
  /** Look at the outbox at least this often, ms (COLLECTOR_FLOW_COMMANDS_POLL_INTERVAL_MS). */
  pollIntervalMs: number;
  logger: Logger;
  /** Commands by result (published, failed). */
  counter: Counter<'result'>;
  /** Commands per send. Default 100. */
  batchSize?: number;
  /** How long claimed commands stay this publisher's before another may send them, ms. Default 30 000. */
  claimMs?: number;
}

/** How long a stop waits for a send in progress (Kafka may be away: its commands stay queued, sent again later). */
const STOP_WAIT_MS = 2_000;

/** Drains the outbox to flow.commands: at once when woken (an admin API change), else every poll interval. */
export class FlowCommandPublisher implements Component {
  readonly name = 'flow-command-publisher';
  readonly #o: FlowCommandPublisherOptions;
  readonly #log: Logger;
  readonly #owner = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  #running = false;
  #loop: Promise<void> | undefined;
  #stopped = new AbortController();
  #wakeUp: (() => void) | undefined;
  #woken = false;

  constructor(options: FlowCommandPublisherOptions) {
    this.#o = options;
    this.#log = options.logger.child({ component: 'flow-commands', topic: options.topic });
  }

  /** Look at the outbox now. */
  wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    this.#stopped = new AbortController();
    this.#loop = this.#run();
  }

  /** Stops the loop (commands left queued go out with the next start, of this or another collector). */
  async stop(): Promise<void> {
    if (this.#running) {
      this.#running = false;
      this.#stopped.abort();
      this.wake();
      const timer = sleep(STOP_WAIT_MS, undefined, { ref: false });
      await Promise.race([this.#loop, timer]);
    }
    await this.#o.producer.stop().catch((err: unknown) => this.#log.warn('stopping the flow-command producer failed', { err: errorMessage(err) }));
  }

  async #sleep(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeUp = done;
    });
    this.#wakeUp = undefined;
    this.#woken = false;
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (this.#running) {
      let sent = 0;
      try {
        sent = await this.drainOnce();
        failures = 0;
      } catch (err) {
        failures++;
        this.#log.warn('publishing flow commands failed; will retry', { err: errorMessage(err), failures });
        await this.#o.producer.stop().catch(() => undefined);
        await sleep(backoffDelay(failures, { initialDelayMs: 200, maxDelayMs: 10_000 }), undefined, { signal: this.#stopped.signal }).catch(() => undefined);
        continue;
      }
      if (sent === (this.#o.batchSize ?? 100)) continue;
      await this.#sleep(this.#o.pollIntervalMs);
    }
  }

  /** Sends one batch of queued commands; returns how many went out. */
  async drainOnce(): Promise<number> {
    const { rows } = await this.#o.store.query<{ id: number; flow_key: string; payload: QueuedCommand }>(
      `UPDATE apm_application_flow_outbox SET claimed_by = $1, claimed_until = now() + make_interval(secs => $2::float8 / 1000)
       WHERE id IN (
         SELECT id FROM apm_application_flow_outbox WHERE claimed_until IS NULL OR claimed_until < now()
         ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
       RETURNING id, flow_key, payload`,
      [this.#owner, this.#o.claimMs ?? 30_000, this.#o.batchSize ?? 100],
    );
    if (rows.length === 0) return 0;
    rows.sort((a, b) => Number(a.id) - Number(b.id));
    const ids = rows.map((r) => Number(r.id));
    try {
      await this.#o.producer.start();
      await this.#o.producer.send(
        this.#o.topic,
        rows.map((r) => ({ key: r.flow_key, value: this.#o.codec.encode({ ...r.payload, requested_at: Number(r.payload.requested_at), config: JSON.stringify(r.payload.config) }) })),
      );
    } catch (err) {
      this.#o.counter.inc({ result: 'failed' }, rows.length);
      await this.#o.store.query('UPDATE apm_application_flow_outbox SET claimed_by = NULL, claimed_until = NULL WHERE id = ANY($1::bigint[])', [ids]).catch(() => undefined);
      throw err;
    }
    await this.#o.store.query('DELETE FROM apm_application_flow_outbox WHERE id = ANY($1::bigint[])', [ids]);
    this.#o.counter.inc({ result: 'published' }, rows.length);
    for (const r of rows) this.#log.info('flow command published', { command_id: r.payload.command_id, action: r.payload.action, flow_type: r.payload.flow_type, bk_biz_id: r.payload.bk_biz_id, app_name: r.payload.app_name });
    return rows.length;
  }
}
