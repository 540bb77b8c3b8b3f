/** The on-disk spool: framing, order across reads and restarts, the size cap, torn and corrupt tails. */
import test from 'ava';
import { appendFileSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../../services/common/log.ts';
import { decodeFrames, encodeFrame, FRAME_HEADER_BYTES, type SpoolRecord } from '../../services/agent/spool/frame.ts';
import { DiskSpool } from '../../services/agent/spool/spool.ts';
import { tempDir } from './kit.ts';

const item = (i: number, size = 100): Omit<SpoolRecord, 'seq'> => ({
  run: 'run-a',
  timestamp: 1_700_000_000_000 + i,
  topic: i % 2 ? 'bkstream.events' : 'bkstream.metrics',
  key: `2:1001:${i}`,
  value: Buffer.alloc(size, i % 251),
});

async function openSpool(dir: string, maxBytes = 1 << 20, segmentBytes?: number): Promise<DiskSpool> {
  const s = new DiskSpool({ dir, maxBytes, ...(segmentBytes ? { segmentBytes } : {}), logger: silentLogger });
  await s.open();
  return s;
}

async function readAll(s: DiskSpool): Promise<SpoolRecord[]> {
  const out: SpoolRecord[] = [];
  for (;;) {
    const batch = await s.read(7, 1 << 20);
    if (batch.length === 0) return out;
    out.push(...batch);
  }
}

test('a frame round-trips every field, and its length and CRC guard it', (t) => {
  const r: SpoolRecord = { seq: 2 ** 40 + 3, run: 'r-1', timestamp: 1_700_000_000_123, topic: 'p.events', key: '2:1000', value: Buffer.from([0xc3, 0x01, 9, 8, 7]) };
  const frame = encodeFrame(r);
  t.is(frame.readUInt32LE(0), frame.length - FRAME_HEADER_BYTES);
  const back = decodeFrames(frame);
  t.is(back.stop, 'end');
  t.deepEqual(back.frames[0]?.record, r);
  const flipped = Buffer.from(frame);
  flipped[frame.length - 1] = (flipped[frame.length - 1] as number) ^ 0xff;
  t.is(decodeFrames(flipped).stop, 'crc');
  t.is(decodeFrames(frame.subarray(0, frame.length - 2)).stop, 'torn');
  const huge = Buffer.from(frame);
  huge.writeUInt32LE(0xfffffff0, 0);
  t.is(decodeFrames(huge).stop, 'length');
  t.is(decodeFrames(Buffer.concat([frame, frame])).frames.length, 2);
});

test('records come back in order, with sequences, and survive a restart until acknowledged', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir);
  const written = await s.append(Array.from({ length: 20 }, (_, i) => item(i)));
  t.deepEqual(written.map((r) => r.seq), Array.from({ length: 20 }, (_, i) => i + 1));
  const first = await s.read(5, 1 << 20);
  t.deepEqual(first.map((r) => r.seq), [1, 2, 3, 4, 5]);
  t.deepEqual(first[2]?.value, item(2).value);
  await s.ack(5, 5);
  t.is(s.stats().pending, 15);
  await s.read(5, 1 << 20); // read but not acknowledged: comes back after a restart
  await s.close();

  const again = await openSpool(dir);
  t.is(again.stats().ackedSeq, 5);
  t.is(again.stats().pending, 15);
  const rest = await readAll(again);
  t.deepEqual(rest.map((r) => r.seq), Array.from({ length: 15 }, (_, i) => i + 6));
  t.deepEqual(rest.map((r) => r.key), Array.from({ length: 15 }, (_, i) => `2:1001:${i + 5}`));
  // sequences keep growing across runs
  const more = await again.append([item(100)]);
  t.is(more[0]?.seq, 21);
  await again.close();
});

test('acknowledged segments are deleted, and the sequence survives an empty spool', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir, 1 << 20, 64 << 10);
  await s.append(Array.from({ length: 300 }, (_, i) => item(i, 1_000)));
  const segs = readdirSync(dir).filter((f) => f.endsWith('.seg'));
  t.true(segs.length >= 4, `${segs.length} segments of 64 KiB`);
  const all = await readAll(s);
  t.is(all.length, 300);
  await s.ack(300, 300);
  t.is(readdirSync(dir).filter((f) => f.endsWith('.seg')).length, 1, 'only the segment being written is kept');
  await s.close();
  const again = await openSpool(dir);
  t.is(again.stats().pending, 0);
  t.is(again.stats().segments, 0);
  t.is((await again.append([item(1)]))[0]?.seq, 301);
  await again.close();
});

test('past the size cap the oldest records are dropped and counted; the newest are kept in order', async (t) => {
  const dir = tempDir(t);
  const cap = 256 << 10;
  const s = await openSpool(dir, cap, 64 << 10);
  await s.append(Array.from({ length: 1_000 }, (_, i) => item(i, 1_000)));
  const stats = s.stats();
  t.true(stats.bytes <= cap, `${stats.bytes} bytes on disk`);
  t.true(stats.dropped > 0);
  t.is(stats.pending + stats.dropped, 1_000);
  const left = await readAll(s);
  t.is(left.length, stats.pending);
  t.is(left[left.length - 1]?.seq, 1_000, 'the newest record is kept');
  t.true(left.every((r, i) => i === 0 || r.seq === (left[i - 1] as SpoolRecord).seq + 1), 'what is left is contiguous');
  await s.close();
});

test('records already handed to the sender are not counted as dropped when their segment goes', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir, 256 << 10, 64 << 10);
  await s.append(Array.from({ length: 60 }, (_, i) => item(i, 1_000)));
  const inFlight = await s.read(60, 10 << 20);
  t.is(inFlight.length, 60);
  await s.append(Array.from({ length: 250 }, (_, i) => item(i, 1_000)));
  const stats = s.stats();
  const rest = await readAll(s);
  t.is(rest[0]?.seq, 60 + stats.dropped + 1);
  t.is(60 + stats.dropped + rest.length, 310);
  await s.close();
});

test('a torn last record is cut off at open, counted, and appending goes on', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir);
  await s.append(Array.from({ length: 5 }, (_, i) => item(i)));
  await s.close();
  const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg')) as string);
  const size = statSync(seg).size;
  // a write cut short: half of a sixth frame
  appendFileSync(seg, encodeFrame({ ...item(5), seq: 6 }).subarray(0, 40));
  const again = await openSpool(dir);
  t.is(again.stats().corrupt, 1);
  t.is(statSync(seg).size, size, 'the torn frame is gone');
  t.deepEqual((await readAll(again)).map((r) => r.seq), [1, 2, 3, 4, 5]);
  t.is((await again.append([item(9)]))[0]?.seq, 6);
  t.deepEqual((await readAll(again)).map((r) => r.seq), [6]);
  await again.close();
});

test('a corrupt record (bad CRC) ends what is trusted of its segment; earlier records are kept', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir);
  await s.append(Array.from({ length: 5 }, (_, i) => item(i)));
  await s.close();
  const seg = join(dir, readdirSync(dir).find((f) => f.endsWith('.seg')) as string);
  const buf = readFileSync(seg);
  const frames = decodeFrames(buf).frames;
  const third = frames[2] as (typeof frames)[number];
  buf[third.offset + 20] = (buf[third.offset + 20] as number) ^ 0x55;
  writeFileSync(seg, buf);
  const again = await openSpool(dir);
  t.is(again.stats().corrupt, 1);
  t.deepEqual((await readAll(again)).map((r) => r.seq), [1, 2]);
  await again.close();
});

test('an unreadable ack file means resending from the oldest record, not losing any', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir);
  await s.append(Array.from({ length: 3 }, (_, i) => item(i)));
  await s.read(3, 1 << 20);
  await s.ack(2, 2);
  await s.close();
  writeFileSync(join(dir, 'ack.json'), '{"seq": tor');
  const again = await openSpool(dir);
  t.deepEqual((await readAll(again)).map((r) => r.seq), [1, 2, 3]);
  await again.close();
});

test('waitForData resolves on append and on abort', async (t) => {
  const dir = tempDir(t);
  const s = await openSpool(dir);
  let woke = false;
  const waiting = s.waitForData().then(() => (woke = true));
  await new Promise((r) => setImmediate(r));
  t.false(woke);
  await s.append([item(1)]);
  await waiting;
  t.true(woke);
  await s.read(10, 1 << 20);
  const ctl = new AbortController();
  const aborted = s.waitForData(ctl.signal);
  ctl.abort();
  await aborted;
  t.pass();
  await s.close();
});
