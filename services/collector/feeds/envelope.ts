/**
 * The messages bk-collector's exporter sends to GSE for a data id (bkmonitor-datalink
 * `pkg/collector/exporter/queue/queue.go`; the collector README, "Feeds"):
 *
 * - traces (`NewEventsMapStr`): `{datetime, utctime, time, dataid, items}` — `datetime` the local time as
 *   `YYYY-MM-DD HH:mm:ss` (here China Standard Time, UTC+8: what the tail-sampling clean's `timezone 8`
 *   reads it as), `utctime` the same in UTC, `time` Unix seconds, every item with its `iterationindex`
 *   (its position in the message);
 * - metrics (`NewMetricsMapStr`): `{dataid, version: "1.0.0", data}`.
 *
 * A message holds at most the exporter's default batch (200 spans, 2000 metric points) and at most
 * `maxMessageBytes` of JSON (the broker's message size); an item that alone is larger is dropped, as the
 * reference's send hook drops messages over its `max_message_bytes`.
 */

/** The exporter's default batch sizes (`defaultTracesBatchSize`, `defaultMetricsBatchSize`). */
export const TRACES_BATCH_ITEMS = 200;
export const METRICS_BATCH_ITEMS = 2000;
/** Largest message by default: under the broker's default `message.max.bytes` (1 MiB) with room for the record's overhead. */
export const DEFAULT_MAX_MESSAGE_BYTES = 1_000_000;

const CST_OFFSET_MS = 8 * 3_600_000;

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `YYYY-MM-DD HH:mm:ss` of `ms` shifted by `offsetMs`. */
export function formatDateTime(ms: number, offsetMs = 0): string {
  const d = new Date(ms + offsetMs);
  return `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`;
}

/** Messages of a batch, and how many items were too large for any message. */
export interface Packed {
  messages: Buffer[];
  dropped: number;
}

/**
 * Packs item texts (JSON objects) into messages `head + items.join(',') + tail`; `index` gives an item's
 * text for its position in the message.
 */
function pack(count: number, itemText: (i: number, index: number) => string, head: string, tail: string, maxItems: number, maxBytes: number): Packed {
  const messages: Buffer[] = [];
  let dropped = 0;
  let parts: string[] = [];
  let bytes = 0;
  const overhead = Buffer.byteLength(head) + Buffer.byteLength(tail);
  const flush = (): void => {
    if (parts.length > 0) messages.push(Buffer.from(head + parts.join(',') + tail));
    parts = [];
    bytes = 0;
  };
  for (let i = 0; i < count; i++) {
    let text = itemText(i, parts.length);
    let size = Buffer.byteLength(text) + 1;
    if (parts.length > 0 && (parts.length >= maxItems || overhead + bytes + size > maxBytes)) {
      flush();
      text = itemText(i, 0);
      size = Buffer.byteLength(text) + 1;
    }
    if (overhead + size > maxBytes) {
      dropped++;
      continue;
    }
    parts.push(text);
    bytes += size;
  }
  flush();
  return { messages, dropped };
}

/** The traces messages of `items` (span documents without `iterationindex`). */
export function tracesMessages(dataId: number, items: readonly Record<string, unknown>[], nowMs: number, options: { maxItems?: number; maxBytes?: number } = {}): Packed {
  const texts = items.map((item) => JSON.stringify(item).slice(0, -1));
  const head = `{"datetime":"${formatDateTime(nowMs, CST_OFFSET_MS)}","utctime":"${formatDateTime(nowMs)}","time":${Math.floor(nowMs / 1000)},"dataid":${dataId},"items":[`;
  return pack(texts.length, (i, index) => `${texts[i] as string}${(texts[i] as string).length > 1 ? ',' : ''}"iterationindex":${index}}`, head, ']}', options.maxItems ?? TRACES_BATCH_ITEMS, options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
}

/** The metrics messages of `items` (derived metric points). */
export function metricsMessages(dataId: number, items: readonly object[], options: { maxItems?: number; maxBytes?: number } = {}): Packed {
  const texts = items.map((item) => JSON.stringify(item));
  return pack(texts.length, (i) => texts[i] as string, `{"dataid":${dataId},"version":"1.0.0","data":[`, ']}', options.maxItems ?? METRICS_BATCH_ITEMS, options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES);
}
