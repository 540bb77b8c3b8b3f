/** CRC-64-AVRO, the Rabin fingerprint of the Avro specification, that names a writer schema on the wire. */

const EMPTY64 = 0xc15d213aa4d7a795n;
const FP_TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i);
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY64 & -(fp & 1n));
  return fp & 0xffffffffffffffffn;
});

/** CRC-64-AVRO of `text` as an unsigned 64-bit integer. */
export function rabin64(text: string): bigint {
  let fp = EMPTY64;
  for (const byte of Buffer.from(text, 'utf8')) {
    fp = (fp >> 8n) ^ (FP_TABLE[Number((fp ^ BigInt(byte)) & 0xffn)] as bigint);
  }
  return fp;
}

/** The 8 fingerprint bytes as they appear in a single-object header (little-endian). */
export function fingerprintBytes(fp: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(fp);
  return b;
}
