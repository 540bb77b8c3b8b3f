/**
 * Target expansion (reference tasks/default_ip.go GetHostsInfo, §A5.1): each configured host (tcp/udp)
 * or URL (http) becomes the list of IPs to probe, or a failure with the reference's code.
 *
 * - http: the URL is parsed (WHATWG URL); one that does not parse, or has no host, is `InvalidURL` (1213).
 * - `host:port` and `[v6]:port` are split; a literal IP is probed as it is, whatever `target_ip_type`
 *   (the reference does the same; the connection then fails if the family is not usable).
 * - A name is resolved (the system resolver: /etc/hosts, then DNS), restricted to `target_ip_type`
 *   (0 any, 4, 6). A failed lookup is `DNSResolveFailed` (1004); a lookup that only finds addresses of
 *   the other family is `IPNotFound` (1211) — the reference asks its resolver for the family and gets an
 *   error (1004) there, so 1211 is what its code means to say and what this module says (README "Probes").
 * - `dns_check_mode: single` keeps the first address, `all` keeps every one, in the resolver's order.
 *
 * The resolver is injectable ({@link setResolver}) so tests can use names of their own.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Codes, type NamedCode } from '../tasks/gather-up.ts';

/** `target_ip_type`: 0 any family, 4 IPv4 only, 6 IPv6 only. */
export type IpType = 0 | 4 | 6;
/** `dns_check_mode`. */
export type DnsCheckMode = 'single' | 'all';

/** Resolves a name to its addresses (any family; the caller filters). Rejects when the name does not resolve. */
export type Resolver = (name: string, signal?: AbortSignal) => Promise<string[]>;

const systemResolver: Resolver = async (name) => {
  const found = await lookup(name, { all: true, order: 'verbatim' });
  return found.map((a) => a.address);
};

let resolver: Resolver = systemResolver;

/** Replaces the resolver (tests); returns the previous one. `undefined` restores the system resolver. */
export function setResolver(next: Resolver | undefined): Resolver {
  const prev = resolver;
  resolver = next ?? systemResolver;
  return prev;
}

/** The current resolver. */
export function currentResolver(): Resolver {
  return resolver;
}

/** One configured host or URL after expansion. */
export interface HostTarget {
  /** As configured (the URL for http, the host for tcp/udp). */
  readonly host: string;
  /** The IPs to probe (empty on failure). */
  readonly ips: readonly string[];
  /** `Codes.OK`, or why there is nothing to probe. */
  readonly code: NamedCode;
  /** The lookup error's text, when there was one. */
  readonly error?: string;
}

export interface ExpandOptions {
  readonly ipType: IpType;
  readonly dnsCheckMode: DnsCheckMode;
  /** http: the entries are URLs. */
  readonly urls: boolean;
  readonly signal?: AbortSignal;
}

/** The family of an IP literal (4, 6) or 0 when it is not one. */
export function ipFamily(ip: string): 0 | 4 | 6 {
  return isIP(ip) as 0 | 4 | 6;
}

/** The host part of a configured host or URL (brackets and port removed), or undefined for a URL that does not parse. */
export function hostPart(entry: string, urls: boolean): string | undefined {
  let host = entry;
  if (urls) {
    let u: URL;
    try {
      u = new URL(entry);
    } catch {
      return undefined;
    }
    if (u.hostname === '') return undefined;
    host = u.hostname;
  }
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end > 0) return host.slice(1, end);
  }
  if (isIP(host) === 0) {
    const colon = host.lastIndexOf(':');
    if (colon > 0 && host.indexOf(':') === colon) return host.slice(0, colon);
  }
  return host;
}

/** Expands every entry (empty entries are skipped, as the reference does), in order. */
export async function expandTargets(entries: readonly string[], options: ExpandOptions): Promise<HostTarget[]> {
  const out: HostTarget[] = [];
  for (const entry of entries) {
    if (entry === '') continue;
    out.push(await expandOne(entry, options));
  }
  return out;
}

async function expandOne(entry: string, options: ExpandOptions): Promise<HostTarget> {
  const host = hostPart(entry, options.urls);
  if (host === undefined) return { host: entry, ips: [], code: Codes.InvalidURL, error: 'invalid URL' };
  if (isIP(host) !== 0) return { host: entry, ips: [host], code: Codes.OK };
  let found: string[];
  try {
    found = await resolver(host, options.signal);
  } catch (err) {
    return { host: entry, ips: [], code: Codes.DNSResolveFailed, error: (err as Error).message };
  }
  if (found.length === 0) return { host: entry, ips: [], code: Codes.DNSResolveFailed, error: `no address found for ${host}` };
  const ips = options.ipType === 0 ? found : found.filter((ip) => isIP(ip) === options.ipType);
  if (ips.length === 0) return { host: entry, ips: [], code: Codes.IPNotFound, error: `no IPv${options.ipType} address found for ${host}` };
  return { host: entry, ips: options.dnsCheckMode === 'single' ? ips.slice(0, 1) : dedupe(ips), code: Codes.OK };
}

function dedupe(ips: readonly string[]): string[] {
  return [...new Set(ips)];
}
