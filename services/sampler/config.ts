/**
 * Configuration of the sampler (env keys `SAMPLER_*`), validated at start-up with every problem reported
 * at once. Durations carry their unit in the name.
 */
import v8 from 'node:v8';
import { int, str, type Config } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';

export const samplerSpec = {
  httpHost: str({ env: 'SAMPLER_HTTP_HOST', default: '127.0.0.1', doc: 'address /metrics and /healthz listen on' }),
  httpPort: int({ env: 'SAMPLER_HTTP_PORT', default: 8084, min: 0, max: 65535, doc: 'port of /metrics and /healthz (0 = any free port)' }),
  groupId: str({ env: 'SAMPLER_GROUP_ID', default: 'bkstream-sampler', doc: 'consumer group on `<prefix>.spans`' }),
  policyRefreshMs: int({ env: 'SAMPLER_POLICY_REFRESH_MS', default: 10_000, min: 100, doc: 'how often the tail-sampling flows (bkdata_flow) are read again, ms' }),
  maxTraces: int({ env: 'SAMPLER_MAX_TRACES', default: 500_000, min: 1, doc: 'traces whose state (tag, buffered spans) the instance keeps; beyond it the least recently written are evicted and counted' }),
  maxBufferedMb: int({ env: 'SAMPLER_MAX_BUFFERED_MB', default: 256, min: 1, doc: 'bytes of buffered spans the instance keeps, MB; beyond it the least recently written traces are evicted and counted' }),
  expireIntervalMs: int({ env: 'SAMPLER_EXPIRE_INTERVAL_MS', default: 5_000, min: 10, doc: 'how often state past its TTLs is freed, ms' }),
  partitionsConcurrently: int({ env: 'SAMPLER_PARTITIONS_CONCURRENTLY', default: 3, min: 1, max: 64, doc: 'partitions handled at the same time' }),
  maxInFlightRecords: int({ env: 'SAMPLER_MAX_IN_FLIGHT_RECORDS', default: 20_000, min: 1, doc: 'Kafka records per partition accepted but not yet acknowledged downstream before the partition is paused' }),
  maxRecordBytes: int({ env: 'SAMPLER_MAX_RECORD_BYTES', default: 900_000, min: 1_024, doc: 'largest SpanBatch record written to `<prefix>.spans.sampled`, bytes (keep under the topic\'s max.message.bytes)' }),
  stopDrainMs: int({ env: 'SAMPLER_STOP_DRAIN_MS', default: 5_000, min: 0, doc: 'on stop, how long the consumer waits for in-flight output to be acknowledged, ms' }),
};

export type SamplerConfig = Config<typeof samplerSpec>;

/**
 * V8 heap the sampler needs: the buffered span bytes (copies on the JS heap, with ~100 bytes of
 * bookkeeping per span of ~1 KB), ~250 bytes per trace state, and ~100 MB for the rest.
 */
const HEAP_PER_TRACE = 250;
const HEAP_OVERHEAD_OF_BUFFERS = 1.25;
const HEAP_BESIDES_STATE = 100 * 2 ** 20;

/** Cross-field checks; `heapLimit` is this process's V8 heap limit. */
export function validateSampler(c: SamplerConfig, heapLimit = v8.getHeapStatistics().heap_size_limit): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const needed = c.maxTraces * HEAP_PER_TRACE + c.maxBufferedMb * 2 ** 20 * HEAP_OVERHEAD_OF_BUFFERS + HEAP_BESIDES_STATE;
  if (needed > heapLimit) {
    const mb = (n: number): string => `${Math.round(n / 2 ** 20)} MB`;
    problems.push({
      key: 'SAMPLER_MAX_BUFFERED_MB',
      message: `${c.maxTraces} traces and ${c.maxBufferedMb} MB of buffered spans need about ${mb(needed)} of V8 heap, more than this process's limit of ${mb(heapLimit)}: lower SAMPLER_MAX_BUFFERED_MB or SAMPLER_MAX_TRACES, or raise node's --max-old-space-size`,
    });
  }
  if (c.expireIntervalMs > c.policyRefreshMs * 10) {
    problems.push({ key: 'SAMPLER_EXPIRE_INTERVAL_MS', message: `${c.expireIntervalMs} ms is more than ten policy refreshes (${c.policyRefreshMs} ms): state of removed applications would linger` });
  }
  return problems;
}
