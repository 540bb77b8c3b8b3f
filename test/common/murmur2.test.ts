/**
 * The 32-bit murmur2 partitioner agrees with kafkajs's DefaultPartitioner (an independent 64-bit-Long
 * implementation) on random keys; bus.test.ts pins it to kafka-clients' Utils.murmur2.
 */
import test from 'ava';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { partitionFor } from '../../services/common/bus/index.ts';
import { murmur2, partitionOf } from '../../services/common/murmur2.ts';

const kafkajsMurmur2 = createRequire(import.meta.url)('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: string | Buffer) => number;

test('agrees with kafkajs on random keys of every length, and on sub-ranges of a buffer', (t) => {
  for (let len = 0; len < 64; len++) {
    for (let i = 0; i < 30; i++) {
      const key = randomBytes(len);
      t.is(murmur2(key), kafkajsMurmur2(key));
      for (const n of [1, 3, 12, 100]) t.is(partitionOf(key, n), (kafkajsMurmur2(key) & 0x7fffffff) % n);
      const padded = Buffer.concat([randomBytes(5), key, randomBytes(3)]);
      t.is(murmur2(padded, 5, 5 + len), murmur2(key));
    }
  }
});

test('a string key hashes its UTF-8 bytes, as the producer does', (t) => {
  for (const key of ['4bf92f3577b34da6a3ce929d0e0e4736', 'ünïcødé', '']) {
    t.is(partitionFor(key, 12), (kafkajsMurmur2(key) & 0x7fffffff) % 12);
    t.is(partitionFor(key, 12), partitionFor(Buffer.from(key), 12));
  }
});
