/** Test doubles of the receiver's ports: real implementations that record what they are given. */
import type { OutMessage } from '../../services/common/bus/index.ts';
import type { RecordSender } from '../../services/collector/receiver/batcher.ts';

/** Records every produce request; each is acknowledged when `release()` is called (or at once). */
export class RecordingSender implements RecordSender {
  readonly requests: OutMessage[][] = [];
  readonly #pending: { resolve: () => void; reject: (e: Error) => void }[] = [];
  manual = false;
  failWith: Error | undefined;

  send(_topic: string, messages: readonly OutMessage[]): Promise<void> {
    this.requests.push([...messages]);
    if (this.failWith) return Promise.reject(this.failWith);
    if (!this.manual) return Promise.resolve();
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }

  release(): void {
    for (const p of this.#pending.splice(0)) p.resolve();
  }

  pending(): number {
    return this.#pending.length;
  }
}

