/**
 * OTLP request fixtures for the collector's unit tests: a seeded generator of varied requests (every
 * attribute type, nested lists, arrays, events, links, blank keys, invalid spans) and a small builder.
 */
import { decodeRequest, encodeRequest, type LongLike } from '../../services/common/otlp/index.ts';

/** A small deterministic PRNG (mulberry32), so failures reproduce. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

type Json = Record<string, unknown>;

export function kv(key: string, value: Json | undefined): Json {
  return value === undefined ? { key } : { key, value };
}

const WORDS = ['GET', 'orders', 'üñíçødé ✓', '', ' ', 'a.b', 'x'.repeat(90), '10.0.0.1', 'http.method', '🙂'];

export function randomValue(r: () => number, depth = 0): Json {
  const pick = Math.floor(r() * (depth > 2 ? 7 : 9));
  const word = WORDS[Math.floor(r() * WORDS.length)] as string;
  switch (pick) {
    case 0:
      return { stringValue: word };
    case 1:
      return { boolValue: r() < 0.5 };
    case 2: {
      const ints = ['0', '-1', '42', '9007199254740990', '9007199254740991', '-9007199254740993', '9223372036854775807', '-9223372036854775808', String(Math.floor(r() * 1e12))];
      return { intValue: ints[Math.floor(r() * ints.length)] };
    }
    case 3: {
      const doubles = [0.5, -0, 3, 1e300, -2.25, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60, r()];
      return { doubleValue: doubles[Math.floor(r() * doubles.length)] };
    }
    case 4:
      return { bytesValue: Buffer.from(word + 'bytes') };
    case 5:
      return {};
    case 6:
      return { arrayValue: { values: Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, 3)) } };
    case 7:
      return { arrayValue: { values: [randomValue(r, 3), randomValue(r, depth + 1)] } };
    default:
      return { kvlistValue: { values: Array.from({ length: 1 + Math.floor(r() * 3) }, (_, i) => kv(`k${i}${word.trim() ? '' : ' '}`, randomValue(r, depth + 1))) } };
  }
}

export function randomAttributes(r: () => number, n: number): Json[] {
  const keys = ['http.method', 'http.status_code', 'db.system', 'peer', '', '  ', '\u00a0\u3000', 'nested', 'dup', 'dup', 'üñí.key'];
  return Array.from({ length: n }, () => {
    const key = keys[Math.floor(r() * keys.length)] as string;
    return r() < 0.05 ? kv(key, undefined) : kv(key, randomValue(r));
  });
}

function id(r: () => number, n: number): Buffer {
  return Buffer.from(Array.from({ length: n }, () => Math.floor(r() * 256)));
}

/** A varied request: `groups` resource groups of `spans` spans, ~5 % invalid spans. */
export function randomRequest(seed: number, groups = 2, spans = 20): Json {
  const r = rng(seed);
  const now = 1_763_700_000_123_456_789n;
  return {
    resourceSpans: Array.from({ length: groups }, (_, g) => ({
      resource: {
        attributes: [
          kv('service.name', { stringValue: `svc-${g}` }),
          kv('telemetry.sdk.language', { stringValue: 'go' }),
          kv('net.host.port', { intValue: 8080 + g }),
          ...(g % 2 === 0 ? [kv('net.host.ip', { stringValue: '10.0.0.1' })] : []),
          ...randomAttributes(r, 3),
        ],
      },
      scopeSpans: [
        {
          scope: { name: 'lib', version: '1' },
          spans: Array.from({ length: spans }, (_, i) => {
            const bad = r() < 0.05;
            const start = now + BigInt(Math.floor(r() * 1e12));
            return {
              traceId: bad ? Buffer.alloc(16) : id(r, 16),
              spanId: id(r, 8),
              parentSpanId: i === 0 ? Buffer.alloc(0) : id(r, 8),
              name: `op ${WORDS[i % WORDS.length]}`,
              kind: i % 6,
              startTimeUnixNano: start.toString(),
              endTimeUnixNano: (r() < 0.1 ? start - 5000n : start + BigInt(Math.floor(r() * 1e9))).toString(),
              traceState: i % 3 === 0 ? 'k=v' : '',
              attributes: randomAttributes(r, Math.floor(r() * 8)),
              events: Array.from({ length: Math.floor(r() * 3) }, (_, e) => ({
                timeUnixNano: (start + BigInt(e)).toString(),
                name: `event ${e}`,
                attributes: randomAttributes(r, 2),
              })),
              links: Array.from({ length: Math.floor(r() * 2) }, () => ({ traceId: id(r, 16), spanId: id(r, 8), traceState: 'a=1', attributes: randomAttributes(r, 2) })),
              status: { code: Math.floor(r() * 3), message: r() < 0.3 ? 'boom' : '' },
            };
          }),
        },
      ],
    })),
  };
}

export function randomRequestBytes(seed: number, groups?: number, spans?: number): Buffer {
  return encodeRequest(randomRequest(seed, groups, spans));
}

/**
 * A 64-bit integer as protobufjs decodes it (a long.js Long), through an encode/decode round trip: fixed64
 * (unsigned) as a span's start time, int64 (signed) as an attribute value.
 */
export function decodedLong(decimal: string, unsigned = false): LongLike {
  const span = unsigned ? { startTimeUnixNano: decimal } : { attributes: [kv('n', { intValue: decimal })] };
  const decoded = decodeRequest(encodeRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span] }] }] })).resourceSpans?.[0]?.scopeSpans?.[0]?.spans?.[0];
  const value = unsigned ? decoded?.startTimeUnixNano : decoded?.attributes?.[0]?.value?.intValue;
  if (typeof value !== 'object') throw new Error(`${decimal} did not decode to a Long`);
  return value;
}

/**
 * Protobuf wire bytes written by hand, field by field (the tag `field << 3 | wireType` as a varint, then
 * the value), for messages protobufjs would not write: fields out of order, unknown fields, repeated
 * singular fields. `fork()` opens a length-delimited field, `ldelim()` closes it.
 */
export class WireWriter {
  #parts: number[] = [];
  readonly #forks: number[][] = [];

  /** A varint; negative numbers as 64-bit two's complement (as int32/int64 fields are written). */
  varint(value: number | bigint): this {
    let v = BigInt.asUintN(64, BigInt(value));
    do {
      const byte = Number(v & 0x7fn);
      v >>= 7n;
      this.#parts.push(v > 0n ? byte | 0x80 : byte);
    } while (v > 0n);
    return this;
  }

  fixed32(value: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value);
    this.#parts.push(...b);
    return this;
  }

  fixed64(value: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(value);
    this.#parts.push(...b);
    return this;
  }

  string(value: string): this {
    return this.bytes(Buffer.from(value, 'utf8'));
  }

  bytes(value: Uint8Array): this {
    this.varint(value.length);
    this.#parts.push(...value);
    return this;
  }

  fork(): this {
    this.#forks.push(this.#parts);
    this.#parts = [];
    return this;
  }

  ldelim(): this {
    const inner = this.#parts;
    const outer = this.#forks.pop();
    if (!outer) throw new Error('ldelim() without fork()');
    this.#parts = outer;
    return this.bytes(Uint8Array.from(inner));
  }

  finish(): Buffer {
    return Buffer.from(this.#parts);
  }
}

let seq = 0;

/** A request of `spans` spans named `op-<seed>-<i>` of service `shutdown`, with span ids unique in the process. */
export function sampleRequest(seed: number, spans: number): Buffer {
  return encodeRequest({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'shutdown' } }] },
        scopeSpans: [
          {
            spans: Array.from({ length: spans }, (_, i) => {
              seq++;
              return {
                traceId: Buffer.from(`${seed.toString(16).padStart(16, '0')}${i.toString(16).padStart(16, '0')}`, 'hex'),
                spanId: Buffer.from(seq.toString(16).padStart(16, '0'), 'hex'),
                name: `op-${seed}-${i}`,
                startTimeUnixNano: '1763700000000000000',
                endTimeUnixNano: '1763700000000500000',
              };
            }),
          },
        ],
      },
    ],
  });
}
