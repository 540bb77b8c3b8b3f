/**
 * The child task files the process sync tasks write (reference procconf / procsync): the CMDB hostid file
 * becomes one processbeat file, and the legacy `processbeat/*.yaml` files become `proccustom` files. The
 * YAML mirrors what the reference's yaml.v3 writes (field order, 4-space indent, Go durations such as
 * `1m0s`); a file is only rewritten when its bytes change, which is what triggers a reload.
 */
import { parse as parseYaml, stringify } from 'yaml';
import { formatDuration, parseGoDuration } from '../../duration.ts';
import { formatPorts, type ProcessConfig, processConfigId } from './processbeat.ts';
import { xxhash64 } from './xxhash64.ts';

const yamlOut = (doc: unknown): string => stringify(doc, { indent: 4, indentSeq: true, lineWidth: 0, nullStr: 'null' });

/** CMDB protocol codes → protocol names (other values pass through). */
export function convertProtocol(code: string): string {
  return ({ '1': 'tcp', '2': 'udp', '3': 'tcp6', '4': 'udp6' } as Record<string, string>)[code] ?? code;
}

/** CMDB bind-ip codes: 1 loopback, 2 all, 3 first inner IP, 4 first outer IP; real addresses pass through. */
export function convertBindIp(code: string, innerIps: string, outerIps: string): string {
  switch (code) {
    case '1':
      return '127.0.0.1';
    case '2':
      return '0.0.0.0';
    case '3':
      return innerIps.split(',')[0] as string;
    case '4':
      return outerIps.split(',')[0] as string;
    default:
      return code;
  }
}

/** `80,8080-8082` → sorted, de-duplicated ports (malformed items are skipped; ports wrap to 16 bits as Go's uint16). */
export function convertPorts(s: string): number[] {
  const ports = new Set<number>();
  const int = (t: string): number | undefined => (/^[-+]?\d+$/.test(t) ? Number(t) : undefined);
  for (const p of s.split(',')) {
    if (!p.includes('-')) {
      const n = int(p);
      if (n !== undefined) ports.add(n & 0xffff);
      continue;
    }
    const range = p.split('-');
    if (range.length !== 2) continue;
    const l = int(range[0] as string);
    const r = int(range[1] as string);
    if (l === undefined || r === undefined) continue;
    for (let i = l; i <= r; i++) ports.add(i & 0xffff);
  }
  return [...ports].sort((a, b) => a - b);
}

const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The process configurations of a CMDB hostid file (JSON); throws when it is not JSON. */
export function hostIdProcesses(json: string): ProcessConfig[] {
  const doc: unknown = JSON.parse(json);
  if (!isObj(doc)) throw new Error('hostid file is not a JSON object');
  const inner = str(doc['bk_host_innerip']);
  const outer = str(doc['bk_host_outerip']);
  const out: ProcessConfig[] = [];
  const seen = new Set<string>();
  for (const p of Array.isArray(doc['process']) ? doc['process'] : []) {
    if (!isObj(p) || str(p['bk_func_name']) === '') continue;
    const cfg: ProcessConfig = {
      name: str(p['bk_func_name']),
      displayname: str(p['bk_process_name']),
      protocol: '',
      ports: [],
      paramregex: str(p['bk_start_param_regex']),
      bindip: '',
      bind_info: [],
    };
    const binds = Array.isArray(p['bind_info']) ? p['bind_info'] : [];
    if (binds.length > 0) {
      for (const b of binds) {
        if (!isObj(b) || b['enable'] === false) continue;
        cfg.bind_info.push({ ip: convertBindIp(str(b['ip']), inner, outer), ports: convertPorts(str(b['port'])), protocol: convertProtocol(str(b['protocol'])) });
      }
    } else {
      cfg.bindip = convertBindIp(str(p['bind_ip']), inner, outer);
      cfg.protocol = convertProtocol(str(p['protocol']));
      const ports = str(p['port']) !== '' ? convertPorts(str(p['port'])) : [];
      cfg.ports = p['bk_enable_port'] === false ? [] : ports;
    }
    const id = processConfigId(cfg);
    if (seen.has(id)) continue;
    seen.add(id);
    out.push(cfg);
  }
  return out;
}

export interface ProcConfSettings {
  readonly periodMs: number;
  readonly perfDataId: number;
  readonly topDataId: number;
  readonly portDataId: number;
  readonly convergePid: boolean;
}

/** The processbeat child file procconf writes (`bkmonitorbeat_processbeat.conf`). */
export function processbeatFile(processes: readonly ProcessConfig[], s: ProcConfSettings): string {
  return yamlOut({
    type: 'processbeat',
    name: 'processbeat_task',
    task_id: 0,
    version: '1.0.0',
    portdataid: s.portDataId,
    topdataid: s.topDataId,
    perfdataid: s.perfDataId,
    period: formatDuration(s.periodMs),
    hostfilepath: '',
    processes: processes.map((p) => ({
      name: p.name,
      displayname: p.displayname,
      protocol: p.protocol,
      ports: formatPorts(p.ports),
      paramregex: p.paramregex,
      bindip: p.bindip,
      bind_info: p.bind_info.map((b) => ({ ip: b.ip, ports: b.ports, protocol: b.protocol })),
    })),
    cmdb_level_max_length: 0,
    ignore_cmdb_level: false,
    must_host_id_exist: false,
    monitor_collector_path: '',
    converge_pid: s.convergePid,
    maxnolistenports: 0,
    disable: false,
  });
}

/** The task id of a legacy file: XXH64 of its bytes mod 2^31−1, lifted above 2^29 (so it never collides with real ids). */
export function procsyncTaskId(content: Uint8Array): number {
  let id = Number(xxhash64(content) % 2147483647n);
  if (id <= 1 << 29) id += 1 << 29;
  return id;
}

/** A legacy `processbeat/*.yaml` file as the proccustom child file procsync writes, or an error text. */
export function proccustomFile(content: Buffer): string | { error: string } {
  let raw: unknown;
  try {
    raw = parseYaml(content.toString('utf8'));
  } catch (err) {
    return { error: `not YAML: ${(err as Error).message}` };
  }
  const doc = isObj(raw) ? raw : {};
  const conf = isObj(doc['config']) ? doc['config'] : {};
  let periodMs: number;
  try {
    periodMs = parseGoDuration(str(doc['period']));
  } catch (err) {
    return { error: `period: ${(err as Error).message}` };
  }
  const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(str) : []);
  const labels = Array.isArray(doc['labels'])
    ? doc['labels'].filter(isObj).map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, str(v)])))
    : [];
  const tags = isObj(doc['tags']) ? Object.fromEntries(Object.entries(doc['tags']).map(([k, v]) => [k, str(v)])) : {};
  const out: Record<string, unknown> = {
    name: 'proccustom_task',
    version: '1.0.0',
    type: 'proccustom',
    period: formatDuration(periodMs),
    dataid: Number(doc['dataid']) || 0,
    task_id: procsyncTaskId(content),
    port_dataid: Number(doc['port_dataid']) || 0,
    match_pattern: str(conf['match_pattern']),
    process_name: str(conf['process_name']),
    extract_pattern: str(conf['extract_pattern']),
    exclude_pattern: str(conf['exclude_pattern']),
    pid_path: str(conf['pid_path']),
    proc_metric: strings(conf['proc_metric']),
    port_detect: conf['port_detect'] === true,
    ports: strings(conf['ports']),
    listen_port_only: conf['listen_port_only'] === true,
    report_unexpected_port: conf['report_unexpected_port'] === true,
    disable_mapping: conf['disable_mapping'] === true,
    labels,
  };
  if (Object.keys(tags).length > 0) out['tags'] = tags;
  return yamlOut(out);
}

/** A file to write: name and bytes. */
export interface ConfFile {
  readonly name: string;
  readonly content: string;
}

/** Whether two (name-sorted) file lists differ in names or bytes. */
export function filesDiffer(a: readonly ConfFile[], b: readonly ConfFile[]): boolean {
  if (a.length !== b.length) return true;
  return a.some((f, i) => f.name !== b[i]?.name || f.content !== b[i]?.content);
}
