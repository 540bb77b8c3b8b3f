/**
 * The only way the orchestrator calls BKData: every call goes through the circuit breaker of its API
 * family (access, databus, auth, dataflow, resourcecenter). Business errors (4xx, `result=false`) are
 * non-retriable and pass through without counting against the breaker; an open breaker rejects with
 * BreakerOpenError (retriable), which the engine turns into `waiting_dependency`.
 */
import { BreakerOpenError, createBreaker, type Breaker, type BreakerState } from '../common/breaker.ts';
import { BkError, isRetriable } from '../common/errors.ts';
import type { Logger } from '../common/log.ts';
import type { Registry } from '../common/metrics.ts';
import { BKDATA_APIS, BkdataApiError, FAMILIES, type ApiName, type BkdataClient, type Family, type Params } from './bkdata-client.ts';
import type { OrchestratorMetrics } from './metrics.ts';

/** What the flow steps need: one call at a time, by client name. */
export interface BkdataApi {
  call<T = unknown>(api: ApiName, params?: Params): Promise<T>;
}

export interface BreakerSettings {
  timeoutMs: number;
  resetTimeoutMs: number;
  errorThresholdPercentage: number;
  volumeThreshold: number;
  rollingWindowMs: number;
}

export type Breakers = Record<Family, Breaker>;

/** One breaker per API family, named after it; state on `bkstream_breaker_state{breaker="<family>"}`. */
export function createBreakers(settings: BreakerSettings, registry: Registry, logger: Logger): Breakers {
  const out = {} as Breakers;
  for (const family of FAMILIES) {
    out[family] = createBreaker({ name: family, ...settings, registry, logger });
  }
  return out;
}

/** The family a failed call belongs to (a BKData error, a breaker rejection or a breaker timeout). */
export function familyOfError(err: unknown): Family | undefined {
  if (err instanceof BkdataApiError) return BKDATA_APIS[err.api].family;
  if (err instanceof BkError) {
    const b = err.details.breaker;
    if (typeof b === 'string' && (FAMILIES as readonly string[]).includes(b)) return b as Family;
  }
  return undefined;
}

export class GuardedBkdataApi implements BkdataApi {
  readonly #client: BkdataClient;
  readonly #breakers: Breakers;
  readonly #metrics: Pick<OrchestratorMetrics, 'bkdataCalls' | 'bkdataCallSeconds'>;

  constructor(client: BkdataClient, breakers: Breakers, metrics: Pick<OrchestratorMetrics, 'bkdataCalls' | 'bkdataCallSeconds'>) {
    this.#client = client;
    this.#breakers = breakers;
    this.#metrics = metrics;
  }

  breakerState(family: Family): BreakerState {
    return this.#breakers[family].state();
  }

  async call<T = unknown>(api: ApiName, params: Params = {}): Promise<T> {
    const { family } = BKDATA_APIS[api];
    const started = performance.now();
    try {
      const out = await this.#breakers[family].fire((signal) => this.#client.request<T>(api, params, signal));
      this.#metrics.bkdataCalls.inc({ family, api, outcome: 'ok' });
      return out;
    } catch (err) {
      const outcome = err instanceof BreakerOpenError ? 'rejected' : isRetriable(err) ? 'unavailable' : 'business_error';
      this.#metrics.bkdataCalls.inc({ family, api, outcome });
      throw err;
    } finally {
      this.#metrics.bkdataCallSeconds.observe({ family }, (performance.now() - started) / 1000);
    }
  }
}
