/** The second sinks: one file each, listed here. A sink runs when its setting is set. */
import { otlpSink } from './otlp.ts';
import { remoteWriteSink } from './remote-write.ts';
import type { SinkFactory } from './sink.ts';

export const SINKS: readonly SinkFactory<'SpanBatch' | 'MetricBatch'>[] = [otlpSink, remoteWriteSink] as readonly SinkFactory<'SpanBatch' | 'MetricBatch'>[];
