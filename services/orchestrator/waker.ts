/**
 * A sleep that can be cut short: a loop sleeps with {@link Waker.sleep}; anyone calls
 * {@link Waker.wake} to have it look again now. A wake that arrives while the loop is busy is not lost:
 * the next sleep returns at once.
 */
export class Waker {
  #woken = false;
  #wakeUp: (() => void) | undefined;

  wake(): void {
    this.#woken = true;
    this.#wakeUp?.();
  }

  /** Sleeps up to `ms`, or less if woken (now or since the last sleep). */
  sleep(ms: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wakeUp = undefined;
        this.#woken = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wakeUp = done;
    });
  }
}
