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
