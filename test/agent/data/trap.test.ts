/**
 * snmptrap (reference §A5.12, errata 16) receiving real traps sent over loopback UDP by net-snmp's own
 * sender (v1 generic and enterprise-specific, v2c, v3 USM authPriv): OID translation by longest prefix,
 * report-OID dimensions (plain and `.index`), raw byte OIDs, GBK octet strings, hide_agent_port, the
 * aggregation window, community mismatches only logged, and the reference's event document.
 */
import test from 'ava';
import { createSocket } from 'node:dgram';
import iconv from 'iconv-lite';
import snmp from 'net-snmp';
import { goJson, matchOid, trapType, type TrapConfig } from '../../../services/agent/tasks/trap.ts';
import type { EventOutput, HostTopology } from '../../../services/agent/task.ts';
import { parseTask, problemsOf, recordingContext } from './helpers.ts';

async function freePort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = (s.address()).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

interface Listening {
  rec: ReturnType<typeof recordingContext>;
  stop(): Promise<void>;
}

async function listen(config: TrapConfig, topology?: () => HostTopology | undefined): Promise<Listening> {
  const rec = recordingContext(topology ? { topology } : {});
  const running = trapType.create(config).run(rec.ctx);
  await new Promise((r) => setTimeout(r, 150));
  return {
    rec,
    async stop() {
      rec.controller.abort(new DOMException('task removed', 'AbortError'));
      await running;
    },
  };
}

type Doc = { dataid: number; data: { event_name: string; event: { content: string; count: number }; dimension: Record<string, string>; target: string; timestamp: number }[] };

function docs(events: EventOutput[]): Doc[] {
  return events.map((e) => e.body as Doc);
}

function send(version: number, port: number, community: string, typeOrOid: string | number, varbinds: { oid: string; type: number; value: unknown }[]): Promise<void> {
  const session = snmp.createSession('127.0.0.1', community, { port: 0, trapPort: port, version } as snmp.SessionOptions);
  return new Promise<void>((resolve, reject) => {
    session.trap(typeOrOid, varbinds as never, (err: Error | null) => {
      session.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

const OIDS = { '1.3.6.1.2.1.1.3.0': 'sysUpTime', '1.3.6.1.2.1.2.2.1': 'ifEntry', '1.3.6.1.2.1.2.2.1.2': 'ifDescr', '1.3.6.1.6.3.1.1.5.3': 'linkDown', '1.3.6.1.4.1.2000': 'acme' };

test('v2c trap: content with translated names, errata 16 (OID values only set snmptrapoid), dimensions, document shape', async (t) => {
  const port = await freePort();
  const config = parseTask(t, trapType, {
    listen_ip: '127.0.0.1',
    listen_port: port,
    community: 'public',
    oids: OIDS,
    report_oid_dimensions: ['1.3.6.1.2.1.2.2.1.1.index', '.1.3.6.1.4.1.2000.7'],
    raw_byte_oids: ['1.3.6.1.4.1.2000.9'],
    target: 'switch-1',
  });
  const l = await listen(config);
  t.teardown(() => l.stop());
  await send(snmp.Version2c, port, 'public', '1.3.6.1.6.3.1.1.5.3', [
    { oid: '1.3.6.1.2.1.2.2.1.1.3', type: snmp.ObjectType.Integer, value: 3 },
    { oid: '1.3.6.1.2.1.2.2.1.2.3', type: snmp.ObjectType.OctetString, value: 'eth0' },
    { oid: '1.3.6.1.4.1.2000.7', type: snmp.ObjectType.Gauge32, value: 42 },
    { oid: '1.3.6.1.4.1.2000.9', type: snmp.ObjectType.OctetString, value: Buffer.from('hi') },
    { oid: '1.3.6.1.4.1.2000.10', type: snmp.ObjectType.IpAddress, value: '10.1.2.3' },
  ]);
  await l.rec.waitFor((o) => o.length >= 1);
  const [doc] = docs(l.rec.events('snmptrap'));
  t.is(doc!.dataid, 1500001);
  const r = doc!.data[0]!;
  t.is(r.event_name, 'TrapOID');
  t.is(r.event.count, 1);
  t.is(r.target, 'switch-1');
  t.is(r.timestamp % 1000, 0);
  const content = JSON.parse(r.event.content) as Record<string, string>;
  t.is(content['ifEntry.1.3(.1.3.6.1.2.1.2.2.1.1.3)'], '3');
  t.is(content['ifDescr.3(.1.3.6.1.2.1.2.2.1.2.3)'], 'eth0');
  t.is(content['acme.7(.1.3.6.1.4.1.2000.7)'], '42');
  t.is(content['acme.9(.1.3.6.1.4.1.2000.9)'], '[104 105]', 'raw_byte_oids keep the byte list');
  t.is(content['acme.10(.1.3.6.1.4.1.2000.10)'], '10.1.2.3');
  t.true('sysUpTime(.1.3.6.1.2.1.1.3.0)' in content);
  t.false(Object.keys(content).some((k) => k.includes('1.3.6.1.6.3.1.1.4.1.0')), 'the snmpTrapOID varbind is not content (errata 16)');
  t.regex(content.timestamp!, /^\d\d:\d\d:\d\d \d{4}\/\d\d\/\d\d$/);
  t.is(r.event.content, goJson(content), 'keys sorted as Go marshals a map');
  const d = r.dimension;
  t.is(d.version, 'v2c');
  t.is(d.community, 'public');
  t.is(d.snmptrapoid, '.1.3.6.1.6.3.1.1.5.3');
  t.is(d.display_name, 'linkDown');
  t.is(d.agent_address, '127.0.0.1');
  t.regex(d.agent_port!, /^\d+$/);
  t.is(d.server_ip, '127.0.0.1');
  t.is(d.server_port, String(port));
  t.is(d.enterprise, '');
  t.is(d.generic_trap, '0');
  t.is(d['1_3_6_1_2_1_2_2_1_1'], '3::::3', '.index dimension: <index>::::<value> under the parent OID');
  t.is(d['1_3_6_1_4_1_2000_7'], '42');
});

test('labels: each record is expanded by CMDB level through the hostid topology, re-resolved when the topology changes', async (t) => {
  const port = await freePort();
  const config = parseTask(t, trapType, { listen_ip: '127.0.0.1', listen_port: port, oids: OIDS }, {
    labels: [
      { bk_target_topo_level: 'set', bk_target_topo_id: '5', bk_collect_config_id: '12' },
      { bk_target_topo_level: 'set', bk_target_topo_id: '5', bk_collect_config_id: '12' },
      { bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3' },
    ],
  });
  let topology: HostTopology | undefined = { innerIp: '10.0.0.5', cloudId: '3', links: [{ bk_biz_id: 9, bk_set_id: 5, bk_module_id: 8, zone: 4 }, { bk_biz_id: 9, bk_set_id: 6, bk_module_id: 1 }] };
  const l = await listen(config, () => topology);
  t.teardown(() => l.stop());
  await send(snmp.Version2c, port, 'public', '1.3.6.1.6.3.1.1.5.3', []);
  await l.rec.waitFor((o) => o.length >= 1);
  const dims = docs(l.rec.events('snmptrap'))[0]!.data.map((r) => r.dimension);
  t.is(dims.length, 3, 'the set-5 label once (repeated labels count once) + the static-IP label on both links');
  t.like(dims[0], { bk_collect_config_id: '12', bk_target_topo_level: 'set', bk_target_topo_id: '5', bk_target_ip: '10.0.0.5', bk_target_cloud_id: '3', bk_biz_id: '9', bk_set_id: '5', bk_module_id: '8', bk_zone_id: '4', display_name: 'linkDown', bk_target_service_instance_id: '' });
  t.like(dims[1], { bk_target_ip: '10.0.0.5', bk_target_topo_level: '', bk_set_id: '5', bk_zone_id: '4' });
  t.like(dims[2], { bk_target_ip: '10.0.0.5', bk_set_id: '6', bk_module_id: '1' });
  topology = undefined;
  await send(snmp.Version2c, port, 'public', '1.3.6.1.6.3.1.1.5.3', []);
  await l.rec.waitFor((o) => o.length >= 2);
  const plain = docs(l.rec.events('snmptrap'))[1]!.data;
  t.is(plain.length, 1, 'no topology in use: the record is sent once, as it is');
  t.false('bk_target_ip' in plain[0]!.dimension);
});

test('v1 traps: generic (linkUp) and enterprise-specific; GBK octet strings; hide_agent_port; use_display_name_oid', async (t) => {
  const port = await freePort();
  const config = parseTask(t, trapType, {
    listen_ip: '127.0.0.1',
    listen_port: port,
    snmp_version: '1',
    oids: OIDS,
    encode: 'gbk',
    hide_agent_port: true,
    use_display_name_oid: true,
    report_oid_dimensions: ['1.3.6.1.2.1.2.2.1.2'],
  });
  const l = await listen(config);
  t.teardown(() => l.stop());
  await send(snmp.Version1, port, 'public', snmp.TrapType.LinkUp, [{ oid: '1.3.6.1.2.1.2.2.1.2.1', type: snmp.ObjectType.OctetString, value: iconv.encode('端口一', 'gbk') }]);
  await send(snmp.Version1, port, 'public', '1.3.6.1.4.1.2000.5', []);
  await l.rec.waitFor((o) => o.length >= 2);
  const [up, ent] = docs(l.rec.events('snmptrap')).map((d) => d.data[0]!);
  t.is(up!.dimension.version, 'v1');
  t.is(up!.dimension.snmptrapoid, '.1.3.6.1.6.3.1.1.5.4');
  t.is(up!.dimension.display_name, 'linkUp');
  t.is(up!.dimension.generic_trap, '3');
  t.is(up!.dimension.enterprise, '.1.3.6.1.4.1');
  t.false('agent_port' in up!.dimension);
  t.is(up!.dimension.ifDescr_1, '端口一', 'display-name dimension, GBK decoded');
  t.is((JSON.parse(up!.event.content) as Record<string, string>)['ifDescr.1(.1.3.6.1.2.1.2.2.1.2.1)'], '端口一');
  t.is(ent!.dimension.generic_trap, '6');
  t.is(ent!.dimension.specific_trap, '5');
  t.is(ent!.dimension.enterprise, '.1.3.6.1.4.1.2000');
  t.is(ent!.dimension.snmptrapoid, '.1.3.6.1.4.1.2000.0.5');
  t.is(ent!.dimension.display_name, 'acme.0.5');
});

test('aggregation: identical traps counted and flushed once per period; different values stay apart; community mismatch only logged', async (t) => {
  const port = await freePort();
  const l = await listen(parseTask(t, trapType, { listen_ip: '127.0.0.1', listen_port: port, community: 'secret', aggregate: true, oids: OIDS }, { periodMs: 700 }));
  t.teardown(() => l.stop());
  for (let i = 0; i < 5; i++) await send(snmp.Version2c, port, 'public', '1.3.6.1.6.3.1.1.5.3', [{ oid: '1.3.6.1.2.1.2.2.1.1.1', type: snmp.ObjectType.Integer, value: 1 }]);
  await send(snmp.Version2c, port, 'public', '1.3.6.1.6.3.1.1.5.3', [{ oid: '1.3.6.1.2.1.2.2.1.1.1', type: snmp.ObjectType.Integer, value: 2 }]);
  t.is(l.rec.outputs.length, 0, 'nothing before the window closes');
  await l.rec.waitFor((o) => o.length >= 2, 5_000);
  const counts = docs(l.rec.events('snmptrap')).map((d) => d.data[0]!.event.count).sort();
  t.deepEqual(counts, [1, 5]);
});

test('v3 USM (authPriv, SHA + AES) traps are decoded; dimensions say v3', async (t) => {
  const port = await freePort();
  const l = await listen(
    parseTask(t, trapType, {
      listen_ip: '127.0.0.1',
      listen_port: port,
      snmp_version: '3',
      usm_info: [{ msg_flags: 'authpriv', usm_config: { username: 'trapuser', authentication_protocol: 'sha', authentication_passphrase: 'authpass123', privacy_protocol: 'aes', privacy_passphrase: 'privpass123' } }],
    }),
  );
  t.teardown(() => l.stop());
  const session = snmp.createV3Session('127.0.0.1', { name: 'trapuser', level: snmp.SecurityLevel.authPriv, authProtocol: snmp.AuthProtocols.sha, authKey: 'authpass123', privProtocol: snmp.PrivProtocols.aes, privKey: 'privpass123' }, { port: 0, trapPort: port, version: snmp.Version3 });
  await new Promise<void>((resolve, reject) => session.trap(snmp.TrapType.ColdStart, [], (err: Error | null) => (session.close(), err ? reject(err) : resolve())));
  await l.rec.waitFor((o) => o.length >= 1, 5_000);
  const r = docs(l.rec.events('snmptrap'))[0]!.data[0]!;
  t.is(r.dimension.version, 'v3');
  t.is(r.dimension.snmptrapoid, '.1.3.6.1.6.3.1.1.5.1');
});

test('a port already in use ends the run (the listen scheduler restarts it later)', async (t) => {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  t.teardown(() => s.close());
  const port = (s.address()).port;
  const rec = recordingContext();
  await t.throwsAsync(trapType.create(parseTask(t, trapType, { listen_ip: '127.0.0.1', listen_port: port })).run(rec.ctx), { message: /EADDRINUSE/ });
});

test('matchOid (longest prefix) and config problems', (t) => {
  const oids = { '1.3.6.1.2.1': 'mib-2', '1.3.6.1.2.1.2.2.1.2': 'ifDescr' };
  t.is(matchOid('.1.3.6.1.2.1.2.2.1.2.7', oids), 'ifDescr.7');
  t.is(matchOid('.1.3.6.1.2.1.2.2.1.2', oids), 'ifDescr');
  t.is(matchOid('.1.3.6.1.2.1.1.5.0', oids), 'mib-2.1.5.0');
  t.is(matchOid('.1.3.6.1.4.1.9', oids), '.1.3.6.1.4.1.9');
  t.deepEqual(problemsOf(trapType, { snmp_version: '4', encode: 'latin9', usm_info: [{ usm_config: { authentication_protocol: 'md4', privacy_protocol: 'aes192' } }] }).map((p) => p.key).sort(), [
    'encode',
    'snmp_version',
    'usm_info[0].usm_config.authentication_protocol',
    'usm_info[0].usm_config.privacy_protocol',
    'usm_info[0].usm_config.username',
  ]);
});
