/**
 * `snmptrap` (reference §A5.12, tasks/trap; child type `snmptrap`, main-file section `trap_task`, listen
 * scheduler): an SNMP trap receiver (net-snmp) on `listen_ip:listen_port` (162) for v1, v2c (and
 * informs, which net-snmp answers) and v3 USM users from `usm_info`.
 *
 * Per trap (reference gather.go): a content map `"<name>(<oid>)": value` per varbind, the name translated
 * by the longest matching prefix of the `oids` dictionary (`name.rest` for a partial match); OID-typed
 * varbinds are not content (errata 16) but set `snmptrapoid` / `display_name` (the last one wins; v1
 * generic traps map to coldStart…egpNeighborLoss, enterprise-specific ones to `<enterprise>.0.<specific>`);
 * OctetStrings are decoded with `encode` (`gbk`, `gb18030`, `gb2312`; none = UTF-8), `raw_byte_oids` keep
 * Go's `[104 105]` byte-list form; other values as Go prints them. Dimensions: `community`, `version`
 * (v1/v2c/v3), `enterprise`, `generic_trap`, `specific_trap`, `snmptrapoid`, `display_name`,
 * `agent_address` (the UDP source), `agent_port` (unless `hide_agent_port`), `server_ip`, `server_port`, plus
 * `report_oid_dimensions` (OID prefixes; `.index` puts `<index>::::<value>` under the parent OID; names are
 * the OID with `.`→`_`, or its translation with `use_display_name_oid`); all of them are also in the
 * content, with `timestamp` (`15:04:05 2006/01/02`, local time).
 *
 * Output: the reference's document `{dataid, data: [{event_name: "TrapOID", event: {content: <JSON of the
 * content map, keys sorted>, count}, dimension, target, timestamp: ms}]}` as an AgentEvent, one per distinct
 * trap. Without `aggregate` every trap is sent at once; with it, identical traps are counted and flushed
 * every `period`. "Identical" here means the same content except sysUpTime's value, `agent_port` and
 * `timestamp` — the reference's code compares only the content's keys and the dimension values (so traps
 * that differ only in a varbind value are merged); bkstream keeps them apart (README). A community not in
 * `community` (comma list; an empty item admits an empty community) is only logged, as in the reference.
 * Each record is expanded by CMDB level: once per topology link its target labels resolve to through the
 * hostid file (tasks/cmdb-level.ts), as the reference's CmdbEventSender. UDP receive-buffer drops
 * (/proc/net/snmp `Udp: RcvbufErrors`) are logged when they grow.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { readFile } from 'node:fs/promises';
import { isIPv6 } from 'node:net';
import { join } from 'node:path';
import iconv from 'iconv-lite';
import snmp from 'net-snmp';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields, isMap } from '../config-fields.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { cmdbExpander, type RecordExpander } from './cmdb-level.ts';

export interface UsmUser {
  readonly name: string;
  readonly level: number;
  readonly authProtocol: number;
  readonly authKey: string;
  readonly privProtocol: number;
  readonly privKey: string;
}

export interface TrapConfig extends BaseTaskConfig {
  readonly listenIp: string;
  readonly listenPort: number;
  readonly version: 'v1' | 'v2c' | 'v3';
  readonly community: string;
  readonly aggregate: boolean;
  /** OID (no leading dot) → name. */
  readonly oids: Readonly<Record<string, string>>;
  readonly reportOidDimensions: readonly string[];
  readonly rawByteOids: ReadonlySet<string>;
  readonly encode: string;
  readonly useDisplayNameOid: boolean;
  readonly hideAgentPort: boolean;
  readonly target: string;
  readonly users: readonly UsmUser[];
}

const V1_GENERIC: Record<number, [string, string]> = {
  0: ['.1.3.6.1.6.3.1.1.5.1', 'coldStart'],
  1: ['.1.3.6.1.6.3.1.1.5.2', 'warmStart'],
  2: ['.1.3.6.1.6.3.1.1.5.3', 'linkDown'],
  3: ['.1.3.6.1.6.3.1.1.5.4', 'linkUp'],
  4: ['.1.3.6.1.6.3.1.1.5.5', 'authenticationFailure'],
  5: ['.1.3.6.1.6.3.1.1.5.6', 'egpNeighborLoss'],
};
const SYS_UPTIME = '.1.3.6.1.2.1.1.3.0';
const T_OCTET_STRING = Number(snmp.ObjectType.OctetString);
const T_COUNTER64 = Number(snmp.ObjectType.Counter64);
const T_OID = Number(snmp.ObjectType.OID);
const PDU_TRAP_V1 = Number(snmp.PduType.Trap);

/** Longest-prefix translation (reference matchOid). Returns the OID as given when nothing matches. */
export function matchOid(oid: string, oids: Readonly<Record<string, string>>): string {
  const parts = oid.replace(/^\.+|\.+$/g, '').split('.');
  for (let i = parts.length; i > 0; i--) {
    const name = oids[parts.slice(0, i).join('.')];
    if (name === undefined) continue;
    return i === parts.length ? name : `${name}.${parts.slice(i).join('.')}`;
  }
  return oid;
}

/** JSON as Go's encoding/json writes a map[string]string: keys sorted, <, >, & and U+2028/9 escaped. */
export function goJson(map: Readonly<Record<string, string>>): string {
  const sorted: Record<string, string> = {};
  for (const k of Object.keys(map).sort()) sorted[k] = map[k] as string;
  return JSON.stringify(sorted).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** `15:04:05 2006/01/02` in local time. */
export function trapTime(ms: number): string {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())} ${d.getFullYear()}/${pad(d.getMonth() + 1)}/${pad(d.getDate())}`;
}

interface Varbind {
  oid: string;
  type: number;
  value: unknown;
}

/** A varbind value as the reference prints it (Go `%v` of gosnmp's value). */
export function formatValue(vb: Varbind, encode: string, raw: boolean): string {
  const v = vb.value;
  const bytes = (b: Buffer): string => `[${[...b].join(' ')}]`;
  if (vb.type === T_OCTET_STRING && Buffer.isBuffer(v)) {
    if (raw) return bytes(v);
    if (encode === '' || encode === 'utf-8') return v.toString('utf8');
    return iconv.decode(v, encode);
  }
  if (vb.type === T_COUNTER64 && Buffer.isBuffer(v)) {
    let n = 0n;
    for (const x of v) n = (n << 8n) | BigInt(x);
    return n.toString();
  }
  if (Buffer.isBuffer(v)) return bytes(v);
  if (v === null || v === undefined) return '<nil>';
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

export interface TrapEvent {
  content: Record<string, string>;
  dimension: Record<string, string>;
  timestampMs: number;
  key: string;
}

export interface TrapPdu {
  type: number;
  varbinds: Varbind[];
  community?: string;
  user?: string;
  enterprise?: string;
  generic?: number;
  specific?: number;
}

/** The content and dimensions of one trap (reference getEvent). */
export function trapEvent(c: TrapConfig, pdu: TrapPdu, rinfo: Pick<RemoteInfo, 'address' | 'port'>, nowMs: number): TrapEvent {
  const content: Record<string, string> = {};
  const dimension: Record<string, string> = {};
  const v1 = pdu.type === PDU_TRAP_V1;
  const version = pdu.user !== undefined ? 'v3' : v1 ? 'v1' : 'v2c';
  const enterprise = v1 && pdu.enterprise ? `.${pdu.enterprise.replace(/^\./, '')}` : '';
  let trapOid = '';
  let displayName = '';
  if (v1) {
    const g = V1_GENERIC[pdu.generic ?? -1];
    if (g) [trapOid, displayName] = g;
    else if (pdu.generic === 6) {
      trapOid = `${enterprise}.0.${pdu.specific ?? 0}`;
      displayName = matchOid(trapOid, c.oids);
    }
  }
  for (const vb of pdu.varbinds) {
    const name = `.${vb.oid.replace(/^\./, '')}`;
    if (vb.type === T_OID) {
      trapOid = `.${String(vb.value).replace(/^\./, '')}`;
      displayName = matchOid(trapOid, c.oids);
      continue;
    }
    const value = formatValue(vb, c.encode, c.rawByteOids.has(name) || c.rawByteOids.has(name.slice(1)));
    content[`${matchOid(name, c.oids)}(${name})`] = value;
    reportDimensions(c, name, value, dimension);
  }
  const internal: Record<string, string> = {
    community: pdu.community ?? '',
    version,
    enterprise,
    generic_trap: String(v1 ? (pdu.generic ?? 0) : 0),
    specific_trap: String(v1 ? (pdu.specific ?? 0) : 0),
    snmptrapoid: trapOid,
    display_name: displayName,
    agent_address: rinfo.address,
    ...(c.hideAgentPort ? {} : { agent_port: String(rinfo.port) }),
    server_ip: c.listenIp,
    server_port: String(c.listenPort),
  };
  Object.assign(content, internal);
  Object.assign(dimension, internal);
  content.timestamp = trapTime(nowMs);
  const keyParts = Object.keys(content)
    .filter((k) => k !== 'agent_port' && k !== 'timestamp')
    .sort()
    .map((k) => `${k}\x00${k.endsWith(`(${SYS_UPTIME})`) ? '' : (content[k] as string)}`);
  return { content, dimension, timestampMs: nowMs, key: keyParts.join('\x01') };
}

function reportDimensions(c: TrapConfig, name: string, value: string, dimension: Record<string, string>): void {
  const bare = name.slice(1);
  for (const report of c.reportOidDimensions) {
    const isIndex = report.endsWith('.index');
    const oid = (isIndex ? report.slice(0, -'.index'.length) : report).replace(/^\.+|\.+$/g, '');
    if (bare !== oid && !bare.startsWith(`${oid}.`)) continue;
    const dimName = (o: string): string => (c.useDisplayNameOid ? matchOid(o, c.oids) : o).replace(/^\./, '').replaceAll('.', '_');
    if (isIndex) {
      const dot = bare.lastIndexOf('.');
      if (bare.slice(0, dot) === oid) {
        dimension[dimName(oid)] = `${bare.slice(dot + 1)}::::${value}`;
        continue;
      }
    }
    dimension[dimName(bare)] = value;
  }
}

/** The reference's document for one (counted) trap, its record expanded by CMDB level. */
export function trapDocument(c: TrapConfig, ev: TrapEvent, count: number, expand: RecordExpander): Record<string, unknown> {
  const record = { event_name: 'TrapOID', event: { content: goJson(ev.content), count }, dimension: ev.dimension, target: c.target, timestamp: Math.floor(ev.timestampMs / 1000) * 1000 };
  return { dataid: c.dataId, data: expand(record) };
}

/** What this task uses of net-snmp's receiver (its typings declare it loosely). */
interface SnmpReceiver {
  getAuthorizer(): { addUser(user: UsmUser): void };
  close(): void;
  listener?: { sockets?: Record<string, Socket> };
}

class TrapTask implements Task<TrapConfig> {
  readonly config: TrapConfig;
  #rcvbufErrors: number | undefined;

  constructor(config: TrapConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const log = ctx.logger.child({ task_type: 'snmptrap', task_id: c.taskId, port: c.listenPort });
    const communities = new Set(c.community.split(','));
    const expand = cmdbExpander(c.labels, () => ctx.topology?.());
    const cache = new Map<string, { ev: TrapEvent; count: number }>();
    const queue: Record<string, unknown>[] = [];
    let wake: (() => void) | undefined;
    const state: { failure?: Error } = {};
    const failed = (): Error | undefined => state.failure;
    const onTrap = (error: Error | null, notification: { pdu: TrapPdu; rinfo: RemoteInfo } | null): void => {
      if (error) {
        const e = error as NodeJS.ErrnoException & { rinfo?: RemoteInfo };
        if (e.syscall === 'bind' || e.code === 'EADDRINUSE' || e.code === 'EACCES') {
          state.failure = error;
          wake?.();
        } else log.debug('trap not processed', { err: error.message, from: e.rinfo?.address });
        return;
      }
      if (!notification) return;
      const { pdu, rinfo } = notification;
      if (pdu.user === undefined && c.community !== '' && !communities.has(pdu.community ?? '')) {
        log.warn('trap community does not match the task (only logged, as the reference does)', { community: pdu.community, from: rinfo.address });
      }
      const ev = trapEvent(c, pdu, rinfo, ctx.now());
      const hit = cache.get(ev.key);
      if (hit) hit.count++;
      else cache.set(ev.key, { ev, count: 1 });
      if (!c.aggregate) {
        flush();
        wake?.();
      }
    };
    const flush = (): void => {
      for (const { ev, count } of cache.values()) queue.push(trapDocument(c, ev, count, expand));
      cache.clear();
    };
    const createReceiver = snmp.createReceiver as unknown as (options: object, callback: typeof onTrap) => SnmpReceiver;
    const receiver = createReceiver(
      {
        port: c.listenPort,
        address: c.listenIp === '' ? null : c.listenIp,
        transport: isIPv6(c.listenIp) ? 'udp6' : 'udp4',
        disableAuthorization: true,
        includeAuthentication: true,
      },
      onTrap,
    );
    for (const u of c.users) receiver.getAuthorizer().addUser(u);
    const sockets = Object.values(receiver.listener?.sockets ?? {});
    try {
      await Promise.race([
        Promise.all(sockets.map((s) => new Promise<void>((r) => s.once('listening', () => r())))),
        new Promise<void>((r) => (wake = r)),
      ]);
      if (state.failure) throw state.failure;
      log.info('snmp trap listener started', { address: c.listenIp, port: c.listenPort, aggregate: c.aggregate });
      let nextFlush = ctx.now() + c.periodMs;
      let nextUdpCheck = ctx.now() + 60_000;
      while (!ctx.signal.aborted && !state.failure) {
        const until = Math.min(c.aggregate ? nextFlush : Infinity, nextUdpCheck) - ctx.now();
        await new Promise<void>((resolve) => {
          wake = resolve;
          ctx.sleep(Math.max(0, until)).then(resolve, resolve);
        });
        wake = undefined;
        if (c.aggregate && ctx.now() >= nextFlush) {
          flush();
          nextFlush += c.periodMs;
          if (nextFlush < ctx.now()) nextFlush = ctx.now() + c.periodMs;
        }
        if (ctx.now() >= nextUdpCheck) {
          await this.#checkUdpLoss(ctx, log);
          nextUdpCheck = ctx.now() + 60_000;
        }
        await this.#send(ctx, queue);
      }
      const late = failed();
      if (late) throw late;
    } finally {
      receiver.close();
      flush();
      await this.#send(ctx, queue).catch((err: unknown) => log.warn('final trap flush failed', { err: (err as Error).message }));
    }
  }

  async #send(ctx: TaskContext, queue: Record<string, unknown>[]): Promise<void> {
    const c = this.config;
    while (queue.length > 0) {
      const body = queue.shift() as Record<string, unknown>;
      await ctx.emit({ kind: 'event', eventType: 'snmptrap', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, timestampMs: ctx.now(), body });
    }
  }

  async #checkUdpLoss(ctx: TaskContext, log: TaskContext['logger']): Promise<void> {
    try {
      const lines = (await readFile(join(ctx.global.paths.proc, 'net/snmp'), 'utf8')).split('\n').filter((l) => l.startsWith('Udp:'));
      const names = (lines[0] ?? '').trim().split(/\s+/);
      const values = (lines[1] ?? '').trim().split(/\s+/);
      const i = names.indexOf('RcvbufErrors');
      if (i < 0) return;
      const n = Number(values[i]);
      if (this.#rcvbufErrors !== undefined && n !== this.#rcvbufErrors) log.error('UDP receive buffer errors increased: traps may have been lost', { last: this.#rcvbufErrors, current: n });
      this.#rcvbufErrors = n;
    } catch {
      // not Linux, or /proc not readable: nothing to watch
    }
  }
}

const AUTH: Record<string, number> = { md5: snmp.AuthProtocols.md5, sha: snmp.AuthProtocols.sha, sha224: snmp.AuthProtocols.sha224, sha256: snmp.AuthProtocols.sha256, sha384: snmp.AuthProtocols.sha384, sha512: snmp.AuthProtocols.sha512 };
const PRIV: Record<string, number> = { des: snmp.PrivProtocols.des, aes: snmp.PrivProtocols.aes, aes256: snmp.PrivProtocols.aes256b, aes256c: snmp.PrivProtocols.aes256r };
const ENCODES = ['', 'utf-8', 'gbk', 'gb18030', 'gb2312'];

function parseTrap(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): TrapConfig {
  const f = fields(raw, problems, '');
  const versionText = f.str('snmp_version', { default: '2c' }).toLowerCase();
  const version = ({ v1: 'v1', '1': 'v1', v2: 'v2c', v2c: 'v2c', '2': 'v2c', '2c': 'v2c', v3: 'v3', '3': 'v3' } as Record<string, TrapConfig['version']>)[versionText === '' ? '2c' : versionText];
  if (!version) f.problem('snmp_version', `must be 1, 2c or 3, got ${JSON.stringify(versionText)}`);
  const oids: Record<string, string> = {};
  for (const [k, v] of Object.entries(f.stringMap('oids'))) oids[k.replace(/^\.+|\.+$/g, '')] = v;
  const encode = f.str('encode').toLowerCase();
  if (!ENCODES.includes(encode)) f.problem('encode', `must be one of gbk, gb18030, gb2312 (or empty), got ${JSON.stringify(encode)}`);
  const users: UsmUser[] = [];
  const usm = raw.usm_info;
  if (usm !== undefined && usm !== null && !Array.isArray(usm)) f.problem('usm_info', 'must be a list');
  for (const [i, u] of (Array.isArray(usm) ? usm : []).entries()) {
    if (!isMap(u)) {
      f.problem(`usm_info[${i}]`, 'must be a mapping');
      continue;
    }
    const cfg = fields(u, problems, `usm_info[${i}]`).sub('usm_config');
    const name = cfg.str('username');
    if (name === '') cfg.problem('username', 'is required');
    const authText = cfg.str('authentication_protocol').toLowerCase();
    const privText = cfg.str('privacy_protocol').toLowerCase();
    const auth = authText === '' ? snmp.AuthProtocols.none : AUTH[authText];
    const priv = privText === '' ? snmp.PrivProtocols.none : PRIV[privText];
    if (auth === undefined) cfg.problem('authentication_protocol', `unsupported ${JSON.stringify(authText)} (md5, sha, sha224, sha256, sha384, sha512)`);
    if (priv === undefined) cfg.problem('privacy_protocol', `unsupported ${JSON.stringify(privText)} (des, aes, aes256, aes256c; net-snmp has no aes192)`);
    const none = (p: number | undefined, n: number): boolean => p === undefined || p === n;
    const level = none(auth, Number(snmp.AuthProtocols.none)) ? snmp.SecurityLevel.noAuthNoPriv : none(priv, Number(snmp.PrivProtocols.none)) ? snmp.SecurityLevel.authNoPriv : snmp.SecurityLevel.authPriv;
    users.push({ name, level, authProtocol: auth ?? snmp.AuthProtocols.none, authKey: cfg.str('authentication_passphrase'), privProtocol: priv ?? snmp.PrivProtocols.none, privKey: cfg.str('privacy_passphrase') });
  }
  return {
    ...base,
    listenIp: f.str('listen_ip'),
    listenPort: f.int('listen_port', { default: 162, min: 0, max: 65535 }) || 162,
    version: version ?? 'v2c',
    community: f.str('community'),
    aggregate: f.bool('aggregate', false),
    oids,
    reportOidDimensions: f.strings('report_oid_dimensions'),
    rawByteOids: new Set(f.strings('raw_byte_oids').map((o) => (o.startsWith('.') ? o : `.${o}`))),
    encode,
    useDisplayNameOid: f.bool('use_display_name_oid', false),
    hideAgentPort: f.bool('hide_agent_port', false),
    target: f.str('target'),
    users,
  };
}

export const trapType: TaskType<TrapConfig> = {
  type: 'snmptrap',
  scheduler: 'listen',
  shape: 'list',
  section: 'trap_task',
  parse: (raw, base, problems) => parseTrap(raw, base, problems),
  create: (config) => new TrapTask(config),
};
