/** Logs one line per kind of failure per interval, so a flood of bad requests does not flood the log. */
export class LogThrottle {
  readonly #last = new Map<string, number>();
  readonly #intervalMs: number;

  /** `intervalMs`: one line per kind at most this often (10 000 ms). */
  constructor(intervalMs = 10_000) {
    this.#intervalMs = intervalMs;
  }

  /** Whether a line of `kind` may be logged now (and if so, counts it as logged). */
  allow(kind: string): boolean {
    const now = Date.now();
    if ((this.#last.get(kind) ?? 0) + this.#intervalMs > now) return false;
    this.#last.set(kind, now);
    return true;
  }
}
