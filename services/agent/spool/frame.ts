/**
 * The spool's record framing (pure): `[u32 length][u32 CRC-32 of payload][payload]`, little-endian, the
 * CRC being zlib's (IEEE) over the payload. The payload is
 * `u8 version=1 | u64 seq | f64 timestamp ms | u8 run id length | run id | u16 topic length | topic |
 * u16 key length | key | value bytes (the rest)`.
 *
 * A reader stops at the first frame that is incomplete (a torn write), fails its CRC, or declares a length
 * over {@link MAX_PAYLOAD_BYTES}: what follows cannot be trusted to be framed.
 */
import { crc32 } from 'node:zlib';

/** One spooled record: an encoded Avro value with where it goes. */
export interface SpoolRecord {
  /** Per-agent sequence, monotonic across runs (stored in the spool). */
  readonly seq: number;
  /** Id of the agent run that produced it. */
  readonly run: string;
  /** ms since the epoch (the Kafka record timestamp). */
  readonly timestamp: number;
  readonly topic: string;
  readonly key: string;
  readonly value: Buffer;
}

export const FRAME_HEADER_BYTES = 8;
/** A frame declaring more is corrupt (records are at most a few MiB; Kafka's default limit is 1 MiB). */
export const MAX_PAYLOAD_BYTES = 64 * 1024 * 1024;
const VERSION = 1;

export function encodeFrame(r: SpoolRecord): Buffer {
  const run = Buffer.from(r.run, 'utf8');
  const topic = Buffer.from(r.topic, 'utf8');
  const key = Buffer.from(r.key, 'utf8');
  if (run.length > 255 || topic.length > 65_535 || key.length > 65_535) throw new RangeError('run id, topic or key too long for the spool');
  const payloadLen = 1 + 8 + 8 + 1 + run.length + 2 + topic.length + 2 + key.length + r.value.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payloadLen);
  let o = FRAME_HEADER_BYTES;
  o = buf.writeUInt8(VERSION, o);
  o = buf.writeBigUInt64LE(BigInt(r.seq), o);
  o = buf.writeDoubleLE(r.timestamp, o);
  o = buf.writeUInt8(run.length, o);
  o += run.copy(buf, o);
  o = buf.writeUInt16LE(topic.length, o);
  o += topic.copy(buf, o);
  o = buf.writeUInt16LE(key.length, o);
  o += key.copy(buf, o);
  r.value.copy(buf, o);
  buf.writeUInt32LE(payloadLen, 0);
  buf.writeUInt32LE(crc32(buf.subarray(FRAME_HEADER_BYTES)), 4);
  return buf;
}

function decodePayload(p: Buffer): SpoolRecord {
  let o = 0;
  if (p.readUInt8(o) !== VERSION) throw new Error(`unknown spool record version ${p.readUInt8(o)}`);
  o += 1;
  const seq = Number(p.readBigUInt64LE(o));
  o += 8;
  const timestamp = p.readDoubleLE(o);
  o += 8;
  const runLen = p.readUInt8(o);
  o += 1;
  const run = p.toString('utf8', o, o + runLen);
  o += runLen;
  const topicLen = p.readUInt16LE(o);
  o += 2;
  const topic = p.toString('utf8', o, o + topicLen);
  o += topicLen;
  const keyLen = p.readUInt16LE(o);
  o += 2;
  const key = p.toString('utf8', o, o + keyLen);
  o += keyLen;
  if (o > p.length) throw new Error('spool record fields overrun the payload');
  return { seq, run, timestamp, topic, key, value: Buffer.from(p.subarray(o)) };
}

export type FrameStop = 'end' | 'torn' | 'crc' | 'length' | 'payload';

export interface DecodedFrames {
  /** Decoded records with the offset and size of their frame. */
  readonly frames: { record: SpoolRecord; offset: number; size: number }[];
  /** Offset after the last good frame. */
  readonly goodEnd: number;
  /** Why decoding stopped: `end` = the buffer ended on a frame boundary. */
  readonly stop: FrameStop;
}

/** Decodes consecutive frames of `buf` from `offset` (at most `maxFrames`). */
export function decodeFrames(buf: Buffer, offset = 0, maxFrames = Number.POSITIVE_INFINITY): DecodedFrames {
  const frames: DecodedFrames['frames'] = [];
  let o = offset;
  let stop: FrameStop = 'end';
  while (frames.length < maxFrames) {
    if (o === buf.length) break;
    if (buf.length - o < FRAME_HEADER_BYTES) {
      stop = 'torn';
      break;
    }
    const len = buf.readUInt32LE(o);
    if (len < 1 + 8 + 8 + 1 + 2 + 2 || len > MAX_PAYLOAD_BYTES) {
      stop = 'length';
      break;
    }
    if (buf.length - o - FRAME_HEADER_BYTES < len) {
      stop = 'torn';
      break;
    }
    const payload = buf.subarray(o + FRAME_HEADER_BYTES, o + FRAME_HEADER_BYTES + len);
    if (crc32(payload) !== buf.readUInt32LE(o + 4)) {
      stop = 'crc';
      break;
    }
    let record: SpoolRecord;
    try {
      record = decodePayload(payload);
    } catch {
      stop = 'payload';
      break;
    }
    frames.push({ record, offset: o, size: FRAME_HEADER_BYTES + len });
    o += FRAME_HEADER_BYTES + len;
  }
  return { frames, goodEnd: o, stop };
}

/** The total frame size of the frame at `offset` of `buf` (header read only), or undefined when the header is incomplete. */
export function frameSizeAt(buf: Buffer, offset: number): number | undefined {
  if (buf.length - offset < FRAME_HEADER_BYTES) return undefined;
  return FRAME_HEADER_BYTES + buf.readUInt32LE(offset);
}
