/**
 * What runs behind the databus API (README, Cleans): every clean whose status is `running` consumes its
 * raw data's Kafka topic (a consumer per clean, group `bkdata-sim.<result_table_id>`) and applies its ETL
 * (etl/clean.ts) to every record; the rows are kept in memory, the newest `resultsMax` per result table,
 * with counts of records cleaned and failed per clean. A stopped clean's consumer stops; a clean updated
 * while running restarts with the new config. A record the clean cannot read is counted, never thrown.
 *
 * Statuses change with time (`starting` → `running` after the start delay) and are computed when read, so
 * the runner looks at the cleans every `pollMs` (and right after a databus call) and starts or stops
 * consumers to match.
 */
import { BackgroundStart } from '../common/background.ts';
import { rawDecoder, type Batch, type Bus, type BusConsumer } from '../common/bus/index.ts';
import { errorMessage } from '../common/errors.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import { cleanStatus, type SimTiming } from './api.ts';
import { compileClean, type CleanRow, type CompiledClean } from './etl/clean.ts';
import type { FaultSettings } from './faults.ts';
import type { SimMetrics } from './metrics.ts';
import type { Clean, RawData, SimState } from './state.ts';

export interface CleanRunnerOptions {
  state: SimState;
  timing: SimTiming;
  faults: FaultSettings;
  now: () => number;
  /** Without a bus nothing runs (tests of the API alone, the orchestrator's benchmark). */
  bus?: Bus | undefined;
  log: Logger;
  metrics: SimMetrics;
  /** Rows kept per result table (the newest). */
  resultsMax: number;
  /** How often the cleans' statuses are looked at, ms. */
  pollMs: number;
  /** Topic of a raw data without a Kafka access config: `{data_id}` is replaced by its id. */
  rawTopicTemplate: string;
  /** Where the consumers send records they cannot decode (none: the clean decodes raw bytes). */
  dlqTopic: string;
}

/** Counts of one clean since the sim started (or was reset). */
export interface CleanStats {
  /** Records read from the raw data topic. */
  records_in: number;
  /** Records that gave at least one row. */
  records_cleaned: number;
  /** Records that gave no row and failed (unreadable, or every item or row failed). */
  records_failed: number;
  /** Records that gave no row without a failure (an empty list to iterate, as BKData does). */
  records_empty: number;
  rows_out: number;
  /** BKData's bad values: items or rows dropped, fields left null (by error class). */
  errors: Record<string, number>;
}

export interface CleanView {
  result_table_id: string;
  raw_data_id: number;
  topic: string | null;
  /** `running` (consuming), `joining` (its consumer is starting), `stopped`, or `invalid` (config refused). */
  runner: 'running' | 'joining' | 'stopped' | 'invalid';
  /** Why the config is refused (`invalid`), or why its consumer has not started yet (`joining`). */
  problems: string[];
  stats: CleanStats;
}

interface Worker {
  signature: string;
  topic: string;
  consumer: BusConsumer<Buffer>;
  background: BackgroundStart;
}

const emptyStats = (): CleanStats => ({ records_in: 0, records_cleaned: 0, records_failed: 0, records_empty: 0, rows_out: 0, errors: {} });

/** The Kafka topic a raw data's records are on: its Kafka access config's, else the GSE data id topic. */
export function rawTopicOf(raw: RawData, template: string): string {
  const scope = (raw.params.access_conf_info as { resource?: { scope?: { topic?: unknown }[] } } | undefined)?.resource?.scope?.[0];
  return typeof scope?.topic === 'string' && scope.topic !== '' ? scope.topic : template.replaceAll('{data_id}', String(raw.raw_data_id));
}

export class CleanRunner implements Component {
  readonly name = 'bkdata-sim-cleans';
  readonly #o: CleanRunnerOptions;
  readonly #workers = new Map<string, Worker>();
  readonly #results = new Map<string, CleanRow[]>();
  readonly #stats = new Map<string, CleanStats>();
  /** Problems of cleans whose config cannot run, by result table id and signature. */
  readonly #invalid = new Map<string, { signature: string; problems: string[] }>();
  #timer: NodeJS.Timeout | undefined;
  #reconciling: Promise<void> = Promise.resolve();
  #running = false;

  constructor(options: CleanRunnerOptions) {
    this.#o = options;
  }

  async start(): Promise<void> {
    if (this.#running || !this.#o.bus) return;
    this.#running = true;
    this.#timer = setInterval(() => this.poke(), this.#o.pollMs);
    this.#timer.unref();
    this.poke();
  }

  async stop(): Promise<void> {
    this.#running = false;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#reconciling;
    await Promise.all([...this.#workers.keys()].map((rt) => this.#stopWorker(rt)));
  }

  /** Looks at the cleans now (after a databus call, and on every tick). */
  poke(): void {
    if (!this.#running) return;
    this.#reconciling = this.#reconciling.then(() => this.#reconcile()).catch((err: unknown) => this.#o.log.error('reconciling the cleans failed', { err }));
  }

  /** Forgets rows and counts (the admin reset). */
  reset(): void {
    this.#results.clear();
    this.#stats.clear();
    this.#invalid.clear();
  }

  /** The newest `limit` rows of a result table, oldest first. */
  results(resultTableId: string, limit: number): { rows: CleanRow[]; kept: number } {
    const rows = this.#results.get(resultTableId) ?? [];
    return { rows: rows.slice(Math.max(0, rows.length - limit)), kept: rows.length };
  }

  /** Every clean with its runner state and counts. */
  cleans(): CleanView[] {
    return [...this.#o.state.cleans.values()].map((c) => {
      const raw = this.#o.state.rawData.get(c.raw_data_id);
      const worker = this.#workers.get(c.processing_id);
      const invalid = this.#invalid.get(c.processing_id);
      return {
        result_table_id: c.processing_id,
        raw_data_id: c.raw_data_id,
        topic: raw ? rawTopicOf(raw, this.#o.rawTopicTemplate) : null,
        runner: worker ? (worker.background.started() && worker.consumer.joined() ? 'running' : 'joining') : invalid ? 'invalid' : 'stopped',
        // A consumer not started yet says why (the broker or the topic is missing: it is retried).
        problems: invalid?.problems ?? (worker && !worker.background.started() && worker.background.problem() ? [worker.background.problem() as string] : []),
        stats: this.#stats.get(c.processing_id) ?? emptyStats(),
      };
    });
  }

  #signature(clean: Clean, raw: RawData): string {
    return JSON.stringify([clean.params.json_config, clean.params.fields, rawTopicOf(raw, this.#o.rawTopicTemplate)]);
  }

  async #reconcile(): Promise<void> {
    if (!this.#running) return;
    const { state, timing, faults } = this.#o;
    const ctx = { state, timing, faults, now: this.#o.now() };
    const wanted = new Map<string, { clean: Clean; raw: RawData }>();
    for (const clean of state.cleans.values()) {
      const raw = state.rawData.get(clean.raw_data_id);
      if (raw && cleanStatus(ctx, clean) === 'running') wanted.set(clean.processing_id, { clean, raw });
    }
    for (const [rt, worker] of this.#workers) {
      const want = wanted.get(rt);
      if (!want || this.#signature(want.clean, want.raw) !== worker.signature) await this.#stopWorker(rt);
    }
    for (const [rt, { clean, raw }] of wanted) {
      if (!this.#workers.has(rt)) this.#startWorker(clean, raw);
    }
  }

  #startWorker(clean: Clean, raw: RawData): void {
    const rt = clean.processing_id;
    const signature = this.#signature(clean, raw);
    const known = this.#invalid.get(rt);
    if (known?.signature === signature) return;
    const { clean: compiled, problems } = compileClean(clean.params);
    if (!compiled) {
      this.#invalid.set(rt, { signature, problems });
      this.#o.log.warn('clean config cannot run', { result_table_id: rt, problems });
      return;
    }
    this.#invalid.delete(rt);
    const topic = rawTopicOf(raw, this.#o.rawTopicTemplate);
    const bus = this.#o.bus as Bus;
    const consumer = bus.consumer<Buffer>({
      groupId: `bkdata-sim.${rt}`,
      topics: [topic],
      codec: rawDecoder,
      dlqTopic: this.#o.dlqTopic,
      fromBeginning: true,
      handler: async (batch) => this.#handle(rt, compiled, batch),
    });
    const background = new BackgroundStart(consumer, { logger: this.#o.log });
    this.#workers.set(rt, { signature, topic, consumer, background });
    this.#o.log.info('clean running', { result_table_id: rt, topic });
    void background.start();
  }

  async #stopWorker(rt: string): Promise<void> {
    const worker = this.#workers.get(rt);
    if (!worker) return;
    this.#workers.delete(rt);
    try {
      await worker.background.stop();
    } catch (err) {
      this.#o.log.warn('stopping a clean failed', { result_table_id: rt, err: errorMessage(err) });
    }
    this.#o.log.info('clean stopped', { result_table_id: rt, topic: worker.topic });
  }

  async #handle(rt: string, clean: CompiledClean, batch: Batch<Buffer>): Promise<void> {
    let stats = this.#stats.get(rt);
    if (!stats) this.#stats.set(rt, (stats = emptyStats()));
    let rows = this.#results.get(rt);
    if (!rows) this.#results.set(rt, (rows = []));
    const { metrics } = this.#o;
    for (const record of batch.records) {
      let out;
      try {
        out = clean.apply(record.value, this.#o.now());
      } catch (err) {
        // A failure of the sim itself (not of the record): counted as the record's, logged, never thrown.
        out = { rows: [], failures: [{ error: 'InternalError', message: errorMessage(err) }] };
        this.#o.log.error('clean failed on a record', { result_table_id: rt, topic: batch.topic, partition: batch.partition, offset: record.offset, err: errorMessage(err) });
      }
      stats.records_in++;
      const outcome = out.rows.length > 0 ? 'cleaned' : out.failures.length > 0 ? 'failed' : 'empty';
      stats[`records_${outcome}`]++;
      stats.rows_out += out.rows.length;
      for (const f of out.failures) stats.errors[f.error] = (stats.errors[f.error] ?? 0) + 1;
      metrics.cleanRecords.inc({ result_table_id: rt, outcome });
      if (out.rows.length > 0) metrics.cleanRows.inc({ result_table_id: rt }, out.rows.length);
      rows.push(...out.rows);
    }
    if (rows.length > this.#o.resultsMax) rows.splice(0, rows.length - this.#o.resultsMax);
  }
}
