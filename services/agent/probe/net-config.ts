/**
 * The fields network tasks share (reference configs/nettaskconfig.go `NetTaskParam` / `NetTaskMetaParam`
 * and simpletaskconfig.go `SimpleMatchParam`, §A3.3): `buffer_size` (default 102400, capped by the meta
 * `max_buffer_size`, default 102400), `target_ip_type` (0, 4, 6), `dns_check_mode` (`single` default,
 * `all`), `custom_report`, and the request/response parameters.
 *
 * Stricter than the reference (README "Probes"): a `target_ip_type` other than 0/4/6 and a
 * `dns_check_mode` other than single/all are config problems (the reference probes nothing, or every IP).
 */
import type { FieldReader, RawMap } from '../config-fields.ts';
import { compileMatcher, responseTextProblem, type ResponseMatcher } from './match.ts';
import { requestBytes } from './payload.ts';
import type { DnsCheckMode, IpType } from './targets.ts';

/** Reference DefaultBufferSize. */
export const DEFAULT_BUFFER_SIZE = 102_400;

export interface NetParams {
  /** Read cap in bytes (and http's response header cap). */
  readonly bufferSize: number;
  readonly ipType: IpType;
  readonly dnsCheckMode: DnsCheckMode;
  readonly customReport: boolean;
}

/**
 * The meta `max_buffer_size` (default 102400; 0 means the default). A bad value is reported under the
 * entry's `max_buffer_size` key, saying it is the section's.
 */
export function metaMaxBufferSize(f: FieldReader, meta: RawMap): number {
  const v = meta.max_buffer_size;
  if (v === undefined || v === null || v === '' || v === 0) return DEFAULT_BUFFER_SIZE;
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v.trim()) : NaN;
  if (!Number.isInteger(n) || n < 1) {
    f.problem('max_buffer_size', `the section's max_buffer_size must be a positive integer, got ${JSON.stringify(v)}`);
    return DEFAULT_BUFFER_SIZE;
  }
  return n;
}

/** Reads the net fields of a task entry; `meta` is the enclosing section / child file. */
export function readNetParams(f: FieldReader, meta: RawMap): NetParams {
  const maxBufferSize = metaMaxBufferSize(f, meta);
  let bufferSize = f.int('buffer_size', { default: DEFAULT_BUFFER_SIZE, min: 1 });
  if (maxBufferSize < bufferSize) bufferSize = maxBufferSize;
  const ipType = f.int('target_ip_type', { default: 0 });
  if (ipType !== 0 && ipType !== 4 && ipType !== 6) f.problem('target_ip_type', `must be 0, 4 or 6, got ${ipType}`);
  const mode = f.str('dns_check_mode', { default: 'single' }) || 'single';
  if (mode !== 'single' && mode !== 'all') f.problem('dns_check_mode', `must be single or all, got ${JSON.stringify(mode)}`);
  return {
    bufferSize,
    ipType: ipType === 4 || ipType === 6 ? ipType : 0,
    dnsCheckMode: mode === 'all' ? 'all' : 'single',
    customReport: f.bool('custom_report', false),
  };
}

/** The request/response parameters (`SimpleMatchParam`) after cleaning. */
export interface MatchParams {
  /** The request's bytes (`request` in `request_format`). */
  readonly request: Buffer;
  readonly requestFormat: 'raw' | 'hex';
  /** The expected response and how to compare it. */
  readonly matcher: ResponseMatcher;
}

/**
 * Reads `request`, `request_format` (`raw` default, `hex` must decode), `response`, `response_format`
 * (a `hex…` format needs a hex response; regexes must compile). `decode` turns a configured text into
 * bytes (http: `base64://` values; tcp/udp: the UTF-8 text).
 */
export function readMatchParams(f: FieldReader, decode: (text: string) => Buffer = (t) => Buffer.from(t, 'utf8'), defaultRequest?: (format: 'raw' | 'hex') => string): MatchParams {
  const requestFormat = (f.str('request_format', { values: ['', 'raw', 'hex'] }) || 'raw') as 'raw' | 'hex';
  let requestText = f.str('request');
  if (requestText === '' && defaultRequest) requestText = defaultRequest(requestFormat);
  let request: Buffer = Buffer.alloc(0);
  if (requestText !== '') {
    const decoded = requestFormat === 'hex' ? requestBytes(requestText, 'hex') : decode(requestText);
    if (decoded === undefined) f.problem('request', `must be hex for request_format hex, got ${JSON.stringify(requestText)}`);
    else request = decoded;
  }
  const format = f.str('response_format');
  const responseText = f.str('response');
  const textProblem = responseTextProblem(format, responseText);
  if (textProblem) f.problem('response', textProblem);
  const matcher = compileMatcher(format, decode(responseText), (message) => f.problem('response', message));
  return { request, requestFormat, matcher };
}
