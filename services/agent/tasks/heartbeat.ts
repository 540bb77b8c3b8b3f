/**
 * The global heartbeat (reference §A7.1; daemon and cron modes only): every `heart_beat.period` (60 s),
 * and once at start when `publish_immediately`, a document to `heart_beat.global_dataid`:
 *
 * `{time (s), dataid, dimensions: {status: 0, version, bk_host_id}, metrics: {uptime (s), tasks,
 * config_load_at (s), published, errors, config_error_code, error_tasks}}`
 *
 * It is not a configured task (the reference sends it from its main loop, bypassing the beater layer), so
 * it does not count in `tasks` and runs on its own ticker. Differences (README): `version` carries the
 * agent's version (the reference never fills it); `error_tasks` counts the child files skipped at the last
 * load (the reference's counter is never filled, always 0).
 */
import type { Logger } from '../../common/log.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { EventOutput } from '../task.ts';

export interface HeartbeatFigures {
  dataId: number;
  bkHostId: number;
  version: string;
  startedAtMs: number;
  /** Tasks after deduplication. */
  tasks: number;
  /** ms since the epoch of the start or the last reload. */
  configLoadAtMs: number;
  /** Documents published with status 0. */
  published: number;
  /** Documents with a status other than 0 and -1. */
  errors: number;
  /** 111 when no `include` directory is configured, else 0. */
  configErrorCode: number;
  /** Child files skipped at the last load. */
  errorTasks: number;
}

/** Reference config error code of "`include` not configured" (ErrNoChildPath). */
export const CONFIG_ERROR_NO_CHILD_PATH = 111;

export function globalHeartbeat(f: HeartbeatFigures, nowMs: number): EventOutput {
  return {
    kind: 'event',
    eventType: 'heartbeat',
    dataId: f.dataId,
    timestampMs: nowMs,
    beaterLayer: false,
    cmdbLevel: false,
    body: {
      time: Math.floor(nowMs / 1_000),
      dataid: f.dataId,
      dimensions: { status: 0, version: f.version, bk_host_id: String(f.bkHostId) },
      metrics: {
        uptime: Math.floor((nowMs - f.startedAtMs) / 1_000),
        tasks: f.tasks,
        config_load_at: Math.floor(f.configLoadAtMs / 1_000),
        published: f.published,
        errors: f.errors,
        config_error_code: f.configErrorCode,
        error_tasks: f.errorTasks,
      },
    },
  };
}

export interface HeartbeatOptions {
  clock: Clock;
  periodMs: number;
  publishImmediately: boolean;
  figures: () => HeartbeatFigures;
  emit: (o: EventOutput) => Promise<void>;
  logger: Logger;
}

/** Sends the global heartbeat on its ticker. */
export class Heartbeat {
  readonly #o: HeartbeatOptions;
  #timer: TimerHandle | undefined;
  #origin = 0;
  #running = false;

  constructor(options: HeartbeatOptions) {
    this.#o = options;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#origin = this.#o.clock.now();
    if (this.#o.publishImmediately) this.#send();
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #schedule(): void {
    const now = this.#o.clock.now();
    const p = this.#o.periodMs;
    this.#timer = this.#o.clock.setTimer(p - ((now - this.#origin) % p), () => {
      if (!this.#running) return;
      this.#send();
      this.#schedule();
    });
  }

  #send(): void {
    const f = this.#o.figures();
    if (f.dataId <= 0) return;
    this.#o.emit(globalHeartbeat(f, this.#o.clock.now())).catch((err: unknown) => this.#o.logger.warn('heartbeat not queued', { err }));
  }
}
