/**
 * The applications' sampling policies, read from the store: every tail-sampling flow the orchestrator
 * keeps in `bkdata_flow` whose desired state is running, its `config` turned into the job's `user_args`
 * (policy.ts). Read at start and then every `refreshMs`; a failed refresh keeps the last policies.
 */
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { Queryable } from '../common/store/index.ts';
import { parseUserArgs, PolicyError, userArgsOf, type SamplingPolicy } from './policy.ts';

/** An application's policy, or why its config would not start the job. */
export type PolicyEntry = { policy: SamplingPolicy; problems?: undefined } | { policy?: undefined; problems: readonly string[] };

interface FlowRow {
  bk_biz_id: string | number;
  app_name: string;
  config: unknown;
}

export const POLICY_SQL = "SELECT bk_biz_id, app_name, config FROM bkdata_flow WHERE flow_type = 'tail_sampling' AND desired = 'running'";

export class PolicySource implements Component {
  readonly name = 'sampler-policies';
  readonly #db: Queryable;
  readonly #log: Logger;
  readonly #refreshMs: number;
  readonly #onRefreshFailed: () => void;
  /** bk_biz_id → app_name → entry. */
  #byApp = new Map<number, Map<string, PolicyEntry>>();
  /** Config text of each entry, so an unchanged config keeps its policy object (and its compiled regexes). */
  #texts = new Map<string, string>();
  #timer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;

  constructor(options: { db: Queryable; logger: Logger; refreshMs: number; onRefreshFailed?: () => void }) {
    this.#db = options.db;
    this.#log = options.logger.child({ component: 'sampler-policies' });
    this.#refreshMs = options.refreshMs;
    this.#onRefreshFailed = options.onRefreshFailed ?? (() => undefined);
  }

  /** Loads the policies (a failure fails the start: without them every span would be dropped). */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer ??= setInterval(() => {
      this.refresh().catch((err: unknown) => {
        this.#onRefreshFailed();
        this.#log.warn('policy refresh failed; keeping the last policies', { err });
      });
    }, this.#refreshMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#refreshing?.catch(() => undefined);
  }

  /** The entry of an application, if it has a running tail-sampling flow. */
  get(bkBizId: number, appName: string): PolicyEntry | undefined {
    return this.#byApp.get(bkBizId)?.get(appName);
  }

  /** Applications with a policy, and with a config the job would refuse. */
  counts(): { configured: number; invalid: number } {
    let configured = 0;
    let invalid = 0;
    for (const apps of this.#byApp.values()) {
      for (const e of apps.values()) {
        if (e.policy) configured++;
        else invalid++;
      }
    }
    return { configured, invalid };
  }

  /** Reads the flows again now. */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#load().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #load(): Promise<void> {
    const { rows } = await this.#db.query<FlowRow>(POLICY_SQL);
    const byApp = new Map<number, Map<string, PolicyEntry>>();
    const texts = new Map<string, string>();
    for (const row of rows) {
      const biz = Number(row.bk_biz_id);
      const config = (typeof row.config === 'string' ? JSON.parse(row.config) : row.config) as Record<string, unknown> | null;
      const key = `${biz}:${row.app_name}`;
      const text = JSON.stringify(config);
      texts.set(key, text);
      let entry = this.#texts.get(key) === text ? this.get(biz, row.app_name) : undefined;
      if (!entry) {
        try {
          entry = { policy: parseUserArgs(userArgsOf(config ?? {})) };
        } catch (err) {
          if (!(err instanceof PolicyError)) throw err;
          entry = { problems: err.problems };
          this.#log.error('tail-sampling config the job would not start with; the application\'s spans are dropped', { bk_biz_id: biz, app_name: row.app_name, problems: err.problems });
        }
        this.#log.info('policy loaded', { bk_biz_id: biz, app_name: row.app_name, valid: entry.policy !== undefined });
      }
      let apps = byApp.get(biz);
      if (!apps) byApp.set(biz, (apps = new Map<string, PolicyEntry>()));
      apps.set(row.app_name, entry);
    }
    for (const key of this.#texts.keys()) if (!texts.has(key)) this.#log.info('policy removed', { app: key });
    this.#byApp = byApp;
    this.#texts = texts;
  }
}
