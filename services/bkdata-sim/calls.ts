/**
 * What bkdata-sim counts: every API call by name and outcome, and a bounded log of the most recent calls
 * (with their parameters), so tests and benchmarks can say which calls reached the API and when.
 */

export type CallOutcome = 'ok' | 'business_error' | 'injected_error' | 'answer_lost' | 'outage' | 'unknown_route';

export interface CallRecord {
  /** Increasing number of the call since the last reset. */
  seq: number;
  api: string;
  family: string;
  method: string;
  path: string;
  write: boolean;
  outcome: CallOutcome;
  /** Arrival time, ms since the epoch. */
  at: number;
  /** `X-Bkstream-Sent-At` of the request (when the client sent it), if any. */
  sentAt: number | undefined;
  /** `X-Bk-Tenant-Id` of the request (the caller's tenant), if any. */
  tenant?: string | undefined;
  /** `blueking-language` of the request, if any. */
  language?: string | undefined;
  params: Record<string, unknown>;
}

export interface CallStats {
  total: number;
  /** Calls that changed state and succeeded (including those whose answer was lost). */
  writes: number;
  byApi: Record<string, number>;
  byOutcome: Record<string, number>;
  /** Successful writes by API. */
  writesByApi: Record<string, number>;
}

export class CallLog {
  readonly #max: number;
  #log: CallRecord[] = [];
  #seq = 0;
  #stats: CallStats = emptyStats();

  constructor(max: number) {
    this.#max = max;
  }

  record(call: Omit<CallRecord, 'seq'>): CallRecord {
    const r: CallRecord = { ...call, seq: ++this.#seq };
    const s = this.#stats;
    s.total++;
    s.byApi[r.api] = (s.byApi[r.api] ?? 0) + 1;
    s.byOutcome[r.outcome] = (s.byOutcome[r.outcome] ?? 0) + 1;
    if (r.write && (r.outcome === 'ok' || r.outcome === 'answer_lost')) {
      s.writes++;
      s.writesByApi[r.api] = (s.writesByApi[r.api] ?? 0) + 1;
    }
    if (this.#max > 0) {
      this.#log.push(r);
      // Trim in chunks so recording stays O(1) amortised.
      if (this.#log.length > this.#max * 1.25) this.#log = this.#log.slice(-this.#max);
    }
    return r;
  }

  stats(): CallStats {
    return structuredClone(this.#stats);
  }

  /** Recorded calls (at most the configured maximum), oldest first, optionally only after `afterSeq`. */
  entries(afterSeq = 0): CallRecord[] {
    const log = this.#log.length > this.#max ? this.#log.slice(-this.#max) : this.#log;
    return log.filter((r) => r.seq > afterSeq);
  }

  /** The sequence number of the last call. */
  lastSeq(): number {
    return this.#seq;
  }

  reset(): void {
    this.#log = [];
    this.#stats = emptyStats();
  }
}

function emptyStats(): CallStats {
  return { total: 0, writes: 0, byApi: {}, byOutcome: {}, writesByApi: {} };
}
