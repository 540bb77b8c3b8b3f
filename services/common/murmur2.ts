/**
 * The Java client's default partitioner (murmur2 of the key bytes, made positive, modulo the partition
 * count) on a byte range, with 32-bit integer math — so a hot path can hash a key where it lies in a
 * buffer (the receiver hashes trace ids inside the OTLP request). `partitionFor` in bus.ts uses it too.
 * Tests pin it to kafka-clients' Utils.murmur2 and to kafkajs's DefaultPartitioner.
 */

const SEED = 0x9747b28c | 0;
const M = 0x5bd1e995;

/** murmur2 (Kafka `Utils.murmur2`) of `data[start, end)`, as a signed 32-bit int. */
export function murmur2(data: Uint8Array, start = 0, end = data.length): number {
  const length = end - start;
  let h = SEED ^ length;
  const whole = start + (length & ~3);
  let i = start;
  for (; i < whole; i += 4) {
    let k = (data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= (data[i + 2] as number) << 16;
    if (rest >= 2) h ^= (data[i + 1] as number) << 8;
    h ^= data[i] as number;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** The partition of a key given as bytes `data[start, end)`. */
export function partitionOf(data: Uint8Array, numPartitions: number, start = 0, end = data.length): number {
  return (murmur2(data, start, end) & 0x7fffffff) % numPartitions;
}
