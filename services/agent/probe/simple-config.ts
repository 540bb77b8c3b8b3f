/**
 * The target fields of tcp and udp (reference `SimpleTaskParam`): `target_host` or `target_host_list`
 * (the list wins), `target_port` (required, 1–65535).
 */
import type { FieldReader } from '../config-fields.ts';

export interface SimpleTargets {
  /** Hosts as configured (names, IPs, `host:port` forms are split by the expansion). */
  readonly hosts: readonly string[];
  readonly port: number;
}

export function readSimpleTargets(f: FieldReader): SimpleTargets {
  const list = f.strings('target_host_list');
  if (!f.has('target_port')) f.problem('target_port', 'is required');
  const port = f.int('target_port', { default: 0, min: 1, max: 65_535 });
  return { hosts: list.length > 0 ? list : [f.str('target_host')], port };
}
