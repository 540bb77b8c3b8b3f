/**
 * Request and response payloads as the reference's configuration writes them: `request_format` `raw`
 * (the text's bytes) or `hex` (Go `hex.DecodeString`), and, for http, `base64://<b64>` values of
 * `request`, `response` and header values (reference http/gather.go validateConfig: standard alphabet,
 * padding optional; a value that does not decode loses its prefix and is used as the rest of the text).
 */
import { decodeHex } from './match.ts';

const BASE64_PREFIX = 'base64://';

/** Decodes a `base64://` value to bytes (see the module doc); any other value is its UTF-8 bytes. */
export function base64Value(value: string): Buffer {
  if (!value.startsWith(BASE64_PREFIX)) return Buffer.from(value, 'utf8');
  const rest = value.slice(BASE64_PREFIX.length);
  const body = rest.replace(/=+$/, '');
  if (/^[A-Za-z0-9+/]*$/.test(body) && body.length % 4 !== 1) return Buffer.from(body, 'base64');
  return Buffer.from(rest, 'utf8');
}

/** A header value after `base64://` decoding (as text: the reference turns the bytes into a Go string). */
export function base64Text(value: string): string {
  return value.startsWith(BASE64_PREFIX) ? base64Value(value).toString('latin1') : value;
}

/** The bytes of a request in `format` (`raw` | `hex`), or undefined when a hex request is not hex. */
export function requestBytes(data: Buffer | string, format: 'raw' | 'hex'): Buffer | undefined {
  const text = typeof data === 'string' ? data : data.toString('latin1');
  if (format === 'hex') return decodeHex(text);
  return typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
}
