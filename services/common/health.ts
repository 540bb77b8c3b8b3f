/**
 * Health that tells the truth (SECURITY.md, "Health"): liveness and readiness are separate.
 *
 * - Liveness (`/livez`): the process answers. Nothing outside it can make it fail, so an orchestrator
 *   never restarts a service for an outage of its database or broker.
 * - Readiness (`/readyz`, and `/healthz` as before): every dependency answers its probes and the
 *   service's own checks pass. A {@link Readiness} probes each dependency every HEALTH_PROBE_INTERVAL_MS
 *   with a HEALTH_PROBE_TIMEOUT_MS deadline (1 s and 2 s by default). An available dependency becomes
 *   unavailable after two failed probes in a row (one slow answer on a busy machine is not an outage),
 *   one not yet seen at its first failure, and either is available again after one answer: a refused connection shows within about 2 s, a hung one within 4 s, a return
 *   within 1 s of the next probe — inside the 5 s both ways the issue asks for. A probe still hanging
 *   when the next is due does not block it (at most two hang).
 *
 * What a probe says reaches clients only as `ok` / `unavailable`; its error (with addresses) goes to
 * the logs, once per change.
 */
import type { Component } from './lifecycle.ts';
import type { Logger } from './log.ts';
import { errorMessage } from './errors.ts';
import { gauge, type Gauge, type Registry } from './metrics.ts';
import type { Queryable } from './store/index.ts';
import { kafkaProbe } from './bus/probe.ts';

/** One dependency's check. */
export interface Probe {
  /** What it checks, as `/readyz` names it: `database`, `kafka`. */
  readonly name: string;
  /** Resolves when the dependency answered; rejects when it did not. */
  check(): Promise<void>;
}

/** A probe's last verdict: `unknown` until its first answer (not ready). */
export type ProbeVerdict = 'ok' | 'unavailable' | 'unknown';

export interface ReadinessOptions {
  probes: readonly Probe[];
  intervalMs: number;
  timeoutMs: number;
  logger: Logger;
  registry?: Registry | undefined;
}

/** At most this many checks of one probe may hang at once (a hung database connection each). */
const MAX_PENDING = 2;

/** Failed probes in a row that make a dependency unavailable. */
const FAILURES_TO_FAIL = 2;

interface ProbeRun {
  probe: Probe;
  verdict: ProbeVerdict;
  pending: number;
  /** Failed probes since the last answer. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

/** Probes dependencies on an interval while started; see the module comment. */
export class Readiness implements Component {
  readonly name = 'readiness';
  readonly #opts: ReadinessOptions;
  readonly #log: Logger;
  readonly #runs: ProbeRun[];
  readonly #up: Gauge<'dependency'> | undefined;
  #running = false;

  constructor(options: ReadinessOptions) {
    this.#opts = options;
    this.#log = options.logger.child({ component: 'readiness' });
    this.#runs = options.probes.map((probe) => ({ probe, verdict: 'unknown', pending: 0, failures: 0, timer: undefined }));
    this.#up = options.registry
      ? gauge(options.registry, { name: 'bkstream_dependency_up', help: 'Whether the dependency answered its last readiness probe (1) or not (0)', labelNames: ['dependency'] })
      : undefined;
  }

  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await Promise.all(this.#runs.map((run) => this.#probe(run)));
  }

  async stop(): Promise<void> {
    this.#running = false;
    for (const run of this.#runs) clearTimeout(run.timer);
  }

  /** Every probe answered its last check. */
  ok(): boolean {
    return this.#runs.every((r) => r.verdict === 'ok');
  }

  /** Each dependency's verdict, for `/readyz`. */
  checks(): Record<string, ProbeVerdict> {
    return Object.fromEntries(this.#runs.map((r) => [r.probe.name, r.verdict]));
  }

  /** One check of `run`, then the next after the interval. */
  async #probe(run: ProbeRun): Promise<void> {
    if (!this.#running) return;
    run.timer = setTimeout(() => void this.#probe(run), this.#opts.intervalMs);
    run.timer.unref();
    if (run.pending >= MAX_PENDING) {
      this.#set(run, 'unavailable', `${run.pending} checks still pending`);
      return;
    }
    run.pending++;
    let timeout: NodeJS.Timeout | undefined;
    const check = run.probe.check().finally(() => {
      run.pending--;
    });
    const deadline = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error(`no answer within ${this.#opts.timeoutMs} ms`)), this.#opts.timeoutMs);
    });
    try {
      await Promise.race([check, deadline]);
      this.#set(run, 'ok');
    } catch (err) {
      this.#set(run, 'unavailable', errorMessage(err));
    } finally {
      clearTimeout(timeout);
      check.catch(() => undefined);
    }
  }

  #set(run: ProbeRun, verdict: ProbeVerdict, problem?: string): void {
    if (!this.#running && verdict !== 'ok') return;
    // One failed probe of an available dependency is a blip; a dependency not yet seen is unavailable at once.
    if (verdict === 'ok') run.failures = 0;
    else if (++run.failures < FAILURES_TO_FAIL && run.verdict === 'ok') return;
    const before = run.verdict;
    run.verdict = verdict;
    this.#up?.set({ dependency: run.probe.name }, verdict === 'ok' ? 1 : 0);
    if (before === verdict) return;
    if (verdict === 'ok') this.#log.info('dependency available', { dependency: run.probe.name });
    else this.#log.warn('dependency unavailable: not ready', { dependency: run.probe.name, problem });
  }
}

/** The database's probe: one `SELECT 1`. */
export function storeProbe(store: Queryable): Probe {
  return {
    name: 'database',
    async check() {
      await store.query('SELECT 1');
    },
  };
}

/** Probes of what a service opened: its store (if any) and its bus's brokers (if any). */
export function dependencyProbes(deps: { store?: Queryable | undefined; bus?: { brokers: readonly string[] } | undefined; common: { healthProbeTimeoutMs: number } }): Probe[] {
  const probes: Probe[] = [];
  if (deps.store) probes.push(storeProbe(deps.store));
  if (deps.bus) probes.push(kafkaProbe(deps.bus.brokers, deps.common.healthProbeTimeoutMs));
  return probes;
}
