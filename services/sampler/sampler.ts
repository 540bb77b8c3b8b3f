/**
 * The tail-sampling state machine of one application (README: How it works), the Flink job's keyed
 * function without Flink: per trace id a tag (marked, minute of first sight, spans counted) and a buffer
 * of spans by span id, each with the job's TTLs on an injected clock, decided span by span exactly as the
 * job decides (flink/tail-sampling/conformance.json is the proof).
 *
 * State lives in a {@link TraceTable} per (partition, application), ordered by last write, so expiry
 * sweeps the front; an instance-wide {@link StateBudget} bounds traces and buffered bytes, evicting the
 * least recently written traces (counted) when a bound is passed — where the job, on RocksDB, keeps all.
 */
import { createHash } from 'node:crypto';
import type { DocObject } from './document.ts';
import { JavaError } from './java.ts';
import { Matcher } from './conditions.ts';
import type { SamplingPolicy } from './policy.ts';

const MINUTE_MS = 60_000;

/** md5(trace id) as an unsigned number, mod 100 (the job's random-sampling bucket). */
export function bucketOf(traceId: string): number {
  let rest = 0;
  for (const b of createHash('md5').update(traceId, 'utf8').digest()) rest = (rest * 256 + b) % 100;
  return rest;
}

/** The order a trace's buffered spans flush in: RocksDB's, bytewise over Flink's serialized span ids. */
export function rocksDbKeyOrder(a: string, b: string): number {
  const x = serializedKey(a);
  const y = serializedKey(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

/** Flink's StringSerializer: length + 1, then every UTF-16 char, each in 7-bit groups, low first. */
function serializedKey(s: string): number[] {
  const out: number[] = [];
  const put = (v: number): void => {
    while (v >= 0x80) {
      out.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    out.push(v);
  };
  put(s.length + 1);
  for (let i = 0; i < s.length; i++) put(s.charCodeAt(i));
  return out;
}

/** What became of a span. */
export type Outcome =
  /** emitted: its trace is in the random-sampling bucket */
  | 'sampled'
  /** emitted: its trace is marked */
  | 'marked'
  /** emitted: it matched the conditions and marked its trace (its buffer flushed) */
  | 'matched'
  | 'buffered'
  /** dropped: first seen more than trace_mark_timeout_min ago (the tag is cleared) */
  | 'timeout'
  /** dropped: its marked trace has emitted max_span_count spans */
  | 'max_spans'
  /** dropped: the conditions could not be evaluated on it (the job would fail); state unchanged */
  | 'rejected';

/** A span offered to the sampler. */
export interface OfferedSpan<P> {
  traceId: string;
  spanId: string;
  /** The time the job stamps output rows with (dtEventTimeStamp), ms. */
  time: number;
  payload: P;
  /** Bytes the payload holds while buffered. */
  bytes: number;
  /** The span as a document, read only when conditions are evaluated. */
  document: () => DocObject;
}

/** A span the sampler lets out: its own, or one flushed from the buffer (stamped with the flushing span's time). */
export interface Emitted<P> {
  spanId: string;
  time: number;
  payload: P;
}

interface Tag {
  marked: boolean;
  firstMinute: number;
  spanCount: number;
  writtenAt: number;
}

interface Buffered<P> {
  payload: P;
  bytes: number;
  putAt: number;
}

interface TraceState<P> {
  readonly traceId: string;
  readonly bucket: number;
  tag: Tag | undefined;
  buffer: Map<string, Buffered<P>> | undefined;
  bufferedBytes: number;
  lastWrite: number;
}

/** What a {@link StateBudget} evicts from. */
interface Evictable {
  /** Last write of the least recently written trace (Infinity if none). */
  oldestWrite(): number;
  /** Drops the least recently written trace. */
  evictOldest(): void;
}

/** Instance-wide bounds on sampler state and the counts of what they evicted. */
export class StateBudget {
  readonly maxTraces: number;
  readonly maxBufferedBytes: number;
  traces = 0;
  bufferedSpans = 0;
  bufferedBytes = 0;
  /** Traces evicted before their TTLs to respect a bound, and the buffered spans they held. */
  evictedTraces = 0;
  evictedSpans = 0;
  readonly #tables = new Set<Evictable>();

  constructor(options: { maxTraces: number; maxBufferedBytes: number }) {
    this.maxTraces = options.maxTraces;
    this.maxBufferedBytes = options.maxBufferedBytes;
  }

  register<P>(table: TraceTable<P>): void {
    this.#tables.add(table);
  }

  unregister<P>(table: TraceTable<P>): void {
    this.#tables.delete(table);
  }

  /** Evicts the least recently written traces of all tables until both bounds hold. */
  enforce(): void {
    while (this.traces > this.maxTraces || this.bufferedBytes > this.maxBufferedBytes) {
      let oldest: Evictable | undefined;
      let at = Infinity;
      for (const t of this.#tables) {
        const w = t.oldestWrite();
        if (w < at) {
          at = w;
          oldest = t;
        }
      }
      if (!oldest) return;
      oldest.evictOldest();
    }
  }
}

/** The state of one application's traces in one partition, with that application's policy. */
export class TraceTable<P> implements Evictable {
  #policy: SamplingPolicy;
  #matcher: Matcher;
  readonly #budget: StateBudget;
  /** By trace id, least recently written first. */
  readonly #traces = new Map<string, TraceState<P>>();
  /** Buffered spans freed at their TTL, never flushed, since the last {@link expire}. */
  #expiredUnflushed = 0;

  readonly #retain: (payload: P) => P;

  /** `retain` makes the payload a buffered span keeps (e.g. a copy of bytes that belong to a larger buffer). */
  constructor(policy: SamplingPolicy, budget: StateBudget, options: { retain?: (payload: P) => P } = {}) {
    this.#retain = options.retain ?? ((p) => p);
    this.#policy = policy;
    this.#matcher = new Matcher(policy);
    this.#budget = budget;
    budget.register(this);
  }

  get policy(): SamplingPolicy {
    return this.#policy;
  }

  /** A changed policy applies to the state as it is (as the job restarted from its savepoint). */
  setPolicy(policy: SamplingPolicy): void {
    this.#policy = policy;
    this.#matcher = new Matcher(policy);
  }

  get size(): number {
    return this.#traces.size;
  }

  /**
   * Decides one span at `now` (ms of the processing clock); emitted spans go to `emit` in output order.
   * Throws nothing: a span the conditions cannot be evaluated on is `rejected`, leaving state as it was.
   */
  offer(span: OfferedSpan<P>, now: number, emit: (e: Emitted<P>) => void): Outcome {
    const p = this.#policy;
    const timeoutMs = p.markTimeoutMin * MINUTE_MS;
    let st = this.#traces.get(span.traceId);
    if (st?.tag && st.tag.writtenAt + timeoutMs <= now) {
      this.#setTag(st, undefined);
      st = this.#traces.get(span.traceId);
    }
    const stored = st?.tag;
    const tag: Tag = stored ? { ...stored } : { marked: false, firstMinute: Math.floor(now / MINUTE_MS), spanCount: 0, writtenAt: now };
    if (Math.floor(now / MINUTE_MS) - tag.firstMinute > p.markTimeoutMin) {
      if (st) this.#setTag(st, undefined);
      return 'timeout';
    }
    const bucket = st?.bucket ?? bucketOf(span.traceId);
    let outcome: Outcome;
    if (bucket < p.randomSamplingRatio && tag.spanCount < p.maxSpanCount) {
      emit({ spanId: span.spanId, time: span.time, payload: span.payload });
      tag.spanCount++;
      outcome = 'sampled';
    } else if (tag.marked) {
      if (tag.spanCount >= p.maxSpanCount) return 'max_spans';
      emit({ spanId: span.spanId, time: span.time, payload: span.payload });
      tag.spanCount++;
      outcome = 'marked';
    } else {
      let matched: boolean;
      try {
        matched = this.#matcher.matches(span.document);
      } catch (err) {
        if (err instanceof JavaError) return 'rejected';
        throw err;
      }
      st ??= this.#create(span.traceId, bucket);
      if (matched) {
        tag.marked = true;
        emit({ spanId: span.spanId, time: span.time, payload: span.payload });
        tag.spanCount++;
        const complete = this.#flush(st, tag, span.time, now, emit);
        if (!complete) {
          // Stopped at max_span_count: the buffer is gone and the tag is not written (the job's behaviour).
          this.#drop(st);
          return 'matched';
        }
        outcome = 'matched';
      } else {
        if (tag.spanCount >= p.maxSpanCount) {
          this.#clearBuffer(st);
          tag.spanCount = 1;
        }
        this.#put(st, span, now);
        outcome = 'buffered';
      }
    }
    st ??= this.#create(span.traceId, bucket);
    tag.writtenAt = now;
    this.#setTag(st, tag);
    this.#touch(st, now);
    this.#budget.enforce();
    return outcome;
  }

  /** Emits the live buffered spans in RocksDB's order; false if it stopped at max_span_count. */
  #flush(st: TraceState<P>, tag: Tag, time: number, now: number, emit: (e: Emitted<P>) => void): boolean {
    const buffer = st.buffer;
    if (!buffer) return true;
    const gapMs = this.#policy.sessionGapMin * MINUTE_MS;
    const live = [...buffer].filter(([, b]) => b.putAt + gapMs > now);
    if (live.length > 1) live.sort(([a], [b]) => rocksDbKeyOrder(a, b));
    let complete = true;
    for (const [spanId, b] of live) {
      if (tag.spanCount >= this.#policy.maxSpanCount) {
        complete = false;
        break;
      }
      emit({ spanId, time, payload: b.payload });
      tag.spanCount++;
    }
    this.#clearBuffer(st);
    return complete;
  }

  #create(traceId: string, bucket: number): TraceState<P> {
    const st: TraceState<P> = { traceId, bucket, tag: undefined, buffer: undefined, bufferedBytes: 0, lastWrite: -Infinity };
    this.#traces.set(traceId, st);
    this.#budget.traces++;
    return st;
  }

  #setTag(st: TraceState<P>, tag: Tag | undefined): void {
    st.tag = tag;
    if (!tag && !st.buffer) this.#remove(st);
  }

  #put(st: TraceState<P>, span: OfferedSpan<P>, now: number): void {
    const buffer = (st.buffer ??= new Map<string, Buffered<P>>());
    const old = buffer.get(span.spanId);
    if (old) {
      buffer.delete(span.spanId);
      this.#account(st, -1, -old.bytes);
    }
    // Spans past their TTL are invisible already; free them (the buffer is in write order).
    const gapMs = this.#policy.sessionGapMin * MINUTE_MS;
    for (const [id, b] of buffer) {
      if (b.putAt + gapMs > now) break;
      buffer.delete(id);
      this.#account(st, -1, -b.bytes);
      this.#expiredUnflushed++;
    }
    buffer.set(span.spanId, { payload: this.#retain(span.payload), bytes: span.bytes, putAt: now });
    this.#account(st, 1, span.bytes);
  }

  #clearBuffer(st: TraceState<P>): void {
    if (!st.buffer) return;
    this.#account(st, -st.buffer.size, -st.bufferedBytes);
    st.buffer = undefined;
  }

  #account(st: TraceState<P>, spans: number, bytes: number): void {
    st.bufferedBytes += bytes;
    this.#budget.bufferedSpans += spans;
    this.#budget.bufferedBytes += bytes;
  }

  /** Moves a written trace to the back of the table. */
  #touch(st: TraceState<P>, now: number): void {
    st.lastWrite = now;
    this.#traces.delete(st.traceId);
    this.#traces.set(st.traceId, st);
  }

  #drop(st: TraceState<P>): void {
    if (!st.tag && !st.buffer) this.#remove(st);
  }

  #remove(st: TraceState<P>): void {
    if (this.#traces.get(st.traceId) !== st) return;
    this.#clearBuffer(st);
    this.#traces.delete(st.traceId);
    this.#budget.traces--;
  }

  /** Last write of the least recently written trace (Infinity if none). */
  oldestWrite(): number {
    for (const st of this.#traces.values()) return st.lastWrite;
    return Infinity;
  }

  /** Drops the least recently written trace, counting it and its buffered spans as evicted. */
  evictOldest(): void {
    for (const st of this.#traces.values()) {
      this.#budget.evictedTraces++;
      this.#budget.evictedSpans += st.buffer?.size ?? 0;
      this.#remove(st);
      return;
    }
  }

  /**
   * Frees the state whose TTLs have all passed at `now`: a trace's tag `trace_mark_timeout_min` and its
   * spans `trace_session_gap_min` after their writes. Returns the buffered spans that expired unflushed.
   */
  expire(now: number): number {
    const p = this.#policy;
    const ttlMs = Math.max(p.markTimeoutMin, p.sessionGapMin) * MINUTE_MS;
    let expiredSpans = this.#expiredUnflushed;
    this.#expiredUnflushed = 0;
    for (const st of this.#traces.values()) {
      if (st.lastWrite + ttlMs > now) break;
      expiredSpans += st.buffer?.size ?? 0;
      this.#remove(st);
    }
    return expiredSpans;
  }

  /** Drops everything (partition revoked, application unconfigured); returns the buffered spans dropped. */
  clear(): number {
    let spans = 0;
    for (const st of [...this.#traces.values()]) {
      spans += st.buffer?.size ?? 0;
      this.#remove(st);
    }
    this.#budget.unregister(this);
    return spans;
  }
}
