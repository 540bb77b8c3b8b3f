/**
 * `grpc-status-details-bin` for throttled Exports: a `google.rpc.Status` carrying a `google.rpc.RetryInfo`
 * (OTLP spec, "Failures": RESOURCE_EXHAUSTED is retryable only when the server sends RetryInfo, and the
 * client waits `retry_delay`). Encoded by hand: four tiny messages, no schema needed.
 */
export const RETRY_INFO_TYPE_URL = 'type.googleapis.com/google.rpc.RetryInfo';

function varint(n: number): number[] {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A length-delimited field. */
function bytesField(field: number, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...varint(value.length)]), value]);
}

/** `google.rpc.Status {code, message, details: [Any(RetryInfo{retry_delay: seconds})]}`, serialised. */
export function statusWithRetryInfo(code: number, message: string, retryAfterS: number): Buffer {
  const seconds = Math.max(0, Math.floor(retryAfterS));
  const duration = seconds > 0 ? Buffer.from([0x08, ...varint(seconds)]) : Buffer.alloc(0);
  const retryInfo = bytesField(1, duration);
  const any = Buffer.concat([bytesField(1, Buffer.from(RETRY_INFO_TYPE_URL)), bytesField(2, retryInfo)]);
  const head = code > 0 ? Buffer.from([0x08, ...varint(code)]) : Buffer.alloc(0);
  return Buffer.concat([head, bytesField(2, Buffer.from(message, 'utf8')), bytesField(3, any)]);
}
