/**
 * A minimal protobuf writer for Prometheus's remote-write `WriteRequest` (field numbers as
 * `schemas/prometheus/remote.proto` and `types.proto` declare them). Hand-written: the message has four
 * small types, and the project keeps protobufjs inside services/common. Checked against a real
 * Prometheus in test/storage/sinks.test.ts.
 */

export interface Label {
  name: string;
  value: string;
}

export interface TimeSeries {
  /** Sorted by name, `__name__` among them. */
  labels: Label[];
  /** Sorted by timestamp (ms). */
  samples: { value: number; timestamp: number }[];
}

class Writer {
  #buf = Buffer.allocUnsafe(1024);
  #pos = 0;

  #ensure(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }

  varint(n: number): void {
    this.#ensure(10);
    // n is a non-negative safe integer: split with arithmetic, not 32-bit operators
    while (n >= 0x80) {
      this.#buf[this.#pos++] = (n % 0x80) | 0x80;
      n = Math.floor(n / 0x80);
    }
    this.#buf[this.#pos++] = n;
  }

  /** A signed int64 as protobuf's two's-complement varint. */
  int64(n: number): void {
    if (n >= 0) return this.varint(n);
    const v = BigInt.asUintN(64, BigInt(n));
    this.#ensure(10);
    let x = v;
    while (x >= 0x80n) {
      this.#buf[this.#pos++] = Number(x & 0x7fn) | 0x80;
      x >>= 7n;
    }
    this.#buf[this.#pos++] = Number(x);
  }

  double(v: number): void {
    this.#ensure(8);
    this.#buf.writeDoubleLE(v, this.#pos);
    this.#pos += 8;
  }

  bytes(b: Buffer): void {
    this.varint(b.length);
    this.#ensure(b.length);
    b.copy(this.#buf, this.#pos);
    this.#pos += b.length;
  }

  string(s: string): void {
    this.bytes(Buffer.from(s, 'utf8'));
  }

  finish(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }
}

function label(l: Label): Buffer {
  const w = new Writer();
  w.varint((1 << 3) | 2);
  w.string(l.name);
  w.varint((2 << 3) | 2);
  w.string(l.value);
  return w.finish();
}

function sample(s: { value: number; timestamp: number }): Buffer {
  const w = new Writer();
  w.varint((1 << 3) | 1);
  w.double(s.value);
  w.varint((2 << 3) | 0);
  w.int64(s.timestamp);
  return w.finish();
}

function timeSeries(ts: TimeSeries): Buffer {
  const w = new Writer();
  for (const l of ts.labels) {
    w.varint((1 << 3) | 2);
    w.bytes(label(l));
  }
  for (const s of ts.samples) {
    w.varint((2 << 3) | 2);
    w.bytes(sample(s));
  }
  return w.finish();
}

/** `WriteRequest { repeated TimeSeries timeseries = 1; }` */
export function encodeWriteRequest(series: readonly TimeSeries[]): Buffer {
  const w = new Writer();
  for (const ts of series) {
    w.varint((1 << 3) | 2);
    w.bytes(timeSeries(ts));
  }
  return w.finish();
}
