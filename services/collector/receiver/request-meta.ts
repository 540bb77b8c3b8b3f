/**
 * What a request says about itself besides its token (bk-collector's receivers, `utils.ParseRequestIP`
 * and `tokenparser.From*UserMetadata`; the collector README, "Interfaces"):
 *
 * - **Client IP.** OTLP/HTTP: the first address of the first `X-Forwarded-For` header when it is an IP
 *   address, else the connection's peer. OTLP/gRPC: the peer (the reference reads no metadata for it
 *   either). It fills the span record's `client_ip` (the reference's `client_ip` field). It is never
 *   trusted for anything else: a client controls all of its spans anyway.
 * - **`X-BK-METADATA`** (HTTP header, gRPC metadata `x-bk-metadata`; the first one): `k=v` pairs
 *   separated by commas, each key and value trimmed; a pair that does not split into exactly two parts
 *   on `=`, or has an empty key or value, is skipped; a later key replaces an earlier one. The pairs are
 *   added to every resource group whose resource lacks the key (the reference's `resource_filter`
 *   `from_metadata: keys ["*"]`, which only inserts), after `bk.instance.id` is assembled; `bk.data.token`
 *   is never added (it would publish a credential).
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import type { Metadata } from '../../common/grpc.ts';
import type { Attributes } from '../../common/records.ts';

export const METADATA_HEADER = 'x-bk-metadata';

/** Longest `X-BK-METADATA` value read (longer ones are ignored whole). */
export const MAX_METADATA_LENGTH = 8 * 1024;

/** Keys the metadata may not add. */
const NEVER_ADDED = new Set(['bk.data.token', '__proto__']);

/** The client address of an OTLP/HTTP request: `X-Forwarded-For`'s first address, else the peer. */
export function clientIpFromHttp(req: Pick<IncomingMessage, 'headersDistinct' | 'socket'>): string {
  const forwarded = req.headersDistinct['x-forwarded-for']?.[0];
  if (forwarded) {
    const comma = forwarded.indexOf(',');
    const first = (comma < 0 ? forwarded : forwarded.slice(0, comma)).trim();
    if (isIP(first) !== 0) return first;
  }
  return req.socket.remoteAddress ?? '';
}

/** `k1=v1,k2=v2` → pairs; undefined when there are none. */
export function parseMetadata(value: string | undefined): Record<string, string> | undefined {
  if (!value || value.length > MAX_METADATA_LENGTH) return undefined;
  let out: Record<string, string> | undefined;
  for (const pair of value.split(',')) {
    const parts = pair.split('=');
    if (parts.length !== 2) continue;
    const key = (parts[0] as string).trim();
    const val = (parts[1] as string).trim();
    if (key === '' || val === '' || NEVER_ADDED.has(key)) continue;
    out ??= {};
    out[key] = val;
  }
  return out;
}

export function metadataFromHttp(req: Pick<IncomingMessage, 'headersDistinct'>): Record<string, string> | undefined {
  return parseMetadata(req.headersDistinct[METADATA_HEADER]?.[0]);
}

export function metadataFromGrpc(metadata: Metadata): Record<string, string> | undefined {
  const v = metadata.get(METADATA_HEADER)[0];
  return typeof v === 'string' ? parseMetadata(v) : undefined;
}

/** Adds the pairs a resource lacks (existing keys, even empty ones, win). */
export function addMetadata(resource: Attributes, metadata: Record<string, string>): void {
  for (const key in metadata) {
    if (!Object.hasOwn(resource, key)) resource[key] = metadata[key] as string;
  }
}
