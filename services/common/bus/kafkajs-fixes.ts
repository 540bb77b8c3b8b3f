/**
 * Fixes for kafkajs 2.2.4 (in maintenance mode: fixes are not released), applied once when the first
 * Bus is made. Each checks that the code it fixes is still there and otherwise leaves kafkajs alone.
 *
 * - An idle request queue polls itself every millisecond forever. `checkPendingRequests` always ends in
 *   `scheduleCheckPendingRequests`, which arms a timer even when nothing is pending; with no throttle the
 *   delay is negative (Node clamps it to 1 ms, and Node 24 warns: TimeoutNegativeWarning), and the timer
 *   calls `checkPendingRequests` again. That costs ~3 % of a core per idle connection (measured in the
 *   agent). With nothing pending there is nothing to check: a request pushed later is either sent at once
 *   or queued by `push`, which schedules the check itself, and a completed one calls the check directly.
 */
// A deep import of kafkajs's request queue (kafkajs has no `exports` map); static, so that a bundle (the
// host agent's, services/agent/build.ts) patches the copy it runs.
import RequestQueue from 'kafkajs/src/network/requestQueue/index.js';
import type { Consumer } from 'kafkajs';

interface RequestQueueProto {
  scheduleCheckPendingRequests?: (this: { pending: unknown[] }) => void;
  __bkstreamIdlePollFixed?: boolean;
}

let applied = false;

/** Applies the fixes (idempotent); returns the names of those applied. */
export function applyKafkajsFixes(): string[] {
  if (applied) return ['idle-request-queue-poll'];
  applied = true;
  const proto = RequestQueue?.prototype as RequestQueueProto | undefined;
  const original = proto?.scheduleCheckPendingRequests;
  if (!proto || typeof original !== 'function' || proto.__bkstreamIdlePollFixed) return [];
  proto.scheduleCheckPendingRequests = function scheduleCheckPendingRequests(this: { pending: unknown[] }): void {
    if (this.pending.length === 0) return;
    original.call(this);
  };
  proto.__bkstreamIdlePollFixed = true;
  return ['idle-request-queue-poll'];
}

/**
 * A consumer kafkajs brings back after we disconnected it. kafkajs restarts a crashed consumer on a timer
 * it sets after emitting CRASH, and a restart that is connecting is not undone by a racing disconnect, so
 * a consumer stopped during a broker outage can come back and keep the process alive with its
 * connections. This disconnects `consumer` again whenever it crashes, joins its group or connects while
 * `retired()` is true — on the next turn, after the CRASH listeners, so kafkajs's restart timer is set
 * and the disconnect clears it. The caller's own listeners ignore events while retired.
 */
export function keepRetiredDisconnected(consumer: Consumer, retired: () => boolean): void {
  const again = (): void => {
    if (!retired()) return;
    setImmediate(() => {
      if (retired()) void consumer.disconnect().catch(() => undefined);
    });
  };
  consumer.on(consumer.events.CRASH, again);
  consumer.on(consumer.events.GROUP_JOIN, again);
  consumer.on(consumer.events.CONNECT, again);
}
