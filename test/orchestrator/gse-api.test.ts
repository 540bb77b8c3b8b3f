/**
 * The GSE routing API of the orchestrator, on PGlite and PostgreSQL, through both path families bk-monitor
 * calls (legacy ESB `config_*_{streamto,route}/` and the API gateway's `data/*_{streamto,route}`), with the
 * request bodies bk-monitor sends (metadata/utils/gse.py, metadata/models/data_source.py): every call's
 * answer, the ESB envelope, passwords sealed in the table and never answered, and bad input refused with
 * a message naming the field and nothing stored.
 */
import type { ExecutionContext } from 'ava';
import { SASL_PASSWD_CONTEXT } from '../../services/common/gse/records.ts';
import { MASK } from '../../services/common/secrets.ts';
import type { Store } from '../../services/common/store/index.ts';
import { storageAddressOf } from '../../services/orchestrator/gse/registry.ts';
import { brokers } from '../helpers/kafka.ts';
import { storeContract } from '../helpers/store.ts';
import { addRouteBody, addStreamToBody, FAMILIES, gseSetup, testBox, type GseReply, type GseUnderTest } from './gse-kit.ts';

const op = { operator_name: 'admin' };

function ok(t: ExecutionContext, reply: GseReply, what: string): unknown {
  t.is(reply.status, 200, what);
  t.like(reply.body, { result: true, code: 0, message: 'success' }, `${what}: ${reply.body.message}`);
  t.regex(reply.body.request_id, /^[0-9a-f]{32}$/, `${what}: request_id`);
  return reply.body.data;
}

function refused(t: ExecutionContext, reply: GseReply, code: number, message: RegExp, what: string): void {
  t.is(reply.status, 200, what);
  t.is(reply.body.result, false, what);
  t.is(reply.body.code, code, `${what}: code (${reply.body.message})`);
  t.regex(reply.body.message, message, what);
  t.is(reply.body.data, null, what);
  t.regex(reply.body.request_id, /^[0-9a-f]{32}$/, `${what}: request_id`);
}

async function counts(store: Store): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of ['gse_stream_to', 'gse_route', 'gse_route_target']) {
    const { rows } = await store.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${table}`);
    out[table] = Number(rows[0]?.n);
  }
  return out;
}

storeContract('stream_to: add, query, update and delete through both path families; the password sealed at rest, masked in answers', async (t, store) => {
  const gse: GseUnderTest = await gseSetup(t, store);
  for (const family of FAMILIES) {
    const other = family === 'esb' ? 'apigw' : 'esb';
    const added = ok(t, await gse.call(family, 'add_streamto', addStreamToBody(`kafka-${family}`, { port: 9093, username: 'writer', password: 'pa ss:1' })), `${family} add_streamto`) as { stream_to_id: number };
    t.true(Number.isInteger(added.stream_to_id) && added.stream_to_id > 0);
    const id = added.stream_to_id;

    // sealed in the table, for its column; never plain
    const { rows } = await store.query<{ sasl_passwd: string; kafka: Record<string, unknown> }>('SELECT sasl_passwd, kafka FROM gse_stream_to WHERE stream_to_id = $1', [id]);
    const sealed = rows[0]?.sasl_passwd ?? '';
    t.regex(sealed, /^enc:v1:/);
    t.false(sealed.includes('pa ss:1'));
    t.is(testBox().open(sealed, SASL_PASSWD_CONTEXT), 'pa ss:1');
    t.false(JSON.stringify(rows[0]?.kafka).includes('pa ss:1'), 'the kafka column holds no password');

    // query (by id, from the other family): nested and flat forms, the password masked
    const q = ok(t, await gse.call(other, 'query_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op }), 'query_streamto') as Record<string, unknown>[];
    const kafka = { storage_address: [{ ip: '127.0.0.1', port: 9093 }], sasl_username: 'writer', sasl_passwd: MASK, sasl_mechanisms: 'SCRAM-SHA-512', security_protocol: 'SASL_PLAINTEXT' };
    t.deepEqual(q, [{
      metadata: { plat_name: 'bkmonitor', stream_to_id: id },
      stream_to: { name: `kafka-${family}`, report_mode: 'kafka', kafka },
      stream_to_id: id,
      name: `kafka-${family}`,
      report_mode: 'kafka',
      kafka,
    }]);

    // update as KafkaGseSyncer.update_stream_to_info_to_gse sends it, without the password: kept
    const spec = { name: `kafka-${family}`, report_mode: 'kafka', kafka: { storage_address: [{ ip: 'kafka.example', port: 9094 }], sasl_username: 'writer', sasl_mechanisms: 'SCRAM-SHA-256', security_protocol: 'SASL_SSL' } };
    ok(t, await gse.call(family, 'update_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: spec } }), 'update_streamto');
    const kept = (await store.query<{ sasl_passwd: string }>('SELECT sasl_passwd FROM gse_stream_to WHERE stream_to_id = $1', [id])).rows[0]?.sasl_passwd ?? '';
    t.is(testBox().open(kept, SASL_PASSWD_CONTEXT), 'pa ss:1', 'no sasl_passwd: kept');
    // the masked answer sent back unchanged keeps it too; a new one replaces it; "" removes it
    ok(t, await gse.call(other, 'update_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: { ...spec, kafka: { ...spec.kafka, sasl_passwd: MASK } } } }), 'update with the mask');
    t.is(testBox().open((await store.query<{ sasl_passwd: string }>('SELECT sasl_passwd FROM gse_stream_to WHERE stream_to_id = $1', [id])).rows[0]?.sasl_passwd ?? '', SASL_PASSWD_CONTEXT), 'pa ss:1');
    ok(t, await gse.call(family, 'update_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: { ...spec, kafka: { ...spec.kafka, sasl_passwd: 'n3w' } } } }), 'update with a new password');
    t.is(testBox().open((await store.query<{ sasl_passwd: string }>('SELECT sasl_passwd FROM gse_stream_to WHERE stream_to_id = $1', [id])).rows[0]?.sasl_passwd ?? '', SASL_PASSWD_CONTEXT), 'n3w');
    const afterNew = ok(t, await gse.call(other, 'query_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op }), 'query') as { kafka: Record<string, unknown> }[];
    t.like(afterNew[0]?.kafka, { storage_address: [{ ip: 'kafka.example', port: 9094 }], sasl_passwd: MASK, sasl_mechanisms: 'SCRAM-SHA-256', security_protocol: 'SASL_SSL' });
    t.false(JSON.stringify(afterNew).includes('n3w'), 'no answer holds the password');
    ok(t, await gse.call(family, 'update_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: { ...spec, kafka: { ...spec.kafka, sasl_passwd: '' } } } }), 'update with ""');
    t.is((await store.query<{ sasl_passwd: string | null }>('SELECT sasl_passwd FROM gse_stream_to WHERE stream_to_id = $1', [id])).rows[0]?.sasl_passwd, null);
    const cleared = ok(t, await gse.call(other, 'query_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op }), 'query') as { kafka: Record<string, unknown> }[];
    t.false('sasl_passwd' in (cleared[0]?.kafka ?? {}), 'no password: no sasl_passwd in the answer');

    // delete, then it is gone
    t.deepEqual(ok(t, await gse.call(other, 'delete_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op }), 'delete_streamto'), { stream_to_id: id });
    refused(t, await gse.call(family, 'query_streamto', { condition: { stream_to_id: id, plat_name: 'bkmonitor' }, operation: op }), 1_300_404, /not found/, 'query of a deleted stream_to');
  }
  // the default install's stream_to is there, the bus's brokers; query by platform lists it
  const all = ok(t, await gse.call('apigw', 'query_streamto', { condition: { plat_name: 'bkmonitor' }, operation: op }), 'query all') as { name: string; kafka: { storage_address: unknown } }[];
  t.deepEqual(all.map((s) => s.name), ['bkstream']);
  t.deepEqual(all[0]?.kafka.storage_address, brokers().map(storageAddressOf));
  t.deepEqual(ok(t, await gse.call('esb', 'query_streamto', { condition: { plat_name: 'another' }, operation: op }), 'query of another platform'), []);
});

storeContract('route: add (given and allocated channel ids), query, update by name, delete by name and whole, through both path families', async (t, store) => {
  const gse = await gseSetup(t, store);
  const s1 = (ok(t, await gse.call('esb', 'add_streamto', addStreamToBody('k1')), 'add k1') as { stream_to_id: number }).stream_to_id;
  const s2 = (ok(t, await gse.call('apigw', 'add_streamto', addStreamToBody('k2', { port: 9095 })), 'add k2') as { stream_to_id: number }).stream_to_id;
  for (const [i, family] of FAMILIES.entries()) {
    const other = family === 'esb' ? 'apigw' : 'esb';
    const channel = 1_500_100 + i;
    // DataSource.register_to_gse: a given channel id and one route
    t.deepEqual(ok(t, await gse.call(family, 'add_route', addRouteBody(channel, s1, '0bkmonitor_15001000')), 'add_route'), { channel_id: channel });
    const q = ok(t, await gse.call(other, 'query_route', { condition: { plat_name: 'bkmonitor', channel_id: channel }, operation: op }), 'query_route') as Record<string, unknown>[];
    t.deepEqual(q, [{
      metadata: { plat_name: 'bkmonitor', channel_id: channel },
      route: [{ name: 'stream_to_bkmonitor_kafka_0bkmonitor_15001000', stream_to: { stream_to_id: s1, kafka: { topic_name: '0bkmonitor_15001000' } } }],
      stream_filters: [],
    }]);
    // refresh_gse_config_to_gse: update_route with the route of the same name (replaced), plus a second one (appended)
    ok(t, await gse.call(family, 'update_route', {
      condition: { channel_id: channel, plat_name: 'bkmonitor' },
      operation: op,
      specification: { route: [
        { name: 'stream_to_bkmonitor_kafka_0bkmonitor_15001000', stream_to: { stream_to_id: s1, kafka: { topic_name: 'moved', partition: 2 } } },
        { name: 'second', stream_to: { stream_to_id: s2, kafka: { topic_name: 'copy', data_set: 'ds', biz_id: 2 } }, filter_name_and: ['f1'] },
      ], stream_filters: [{ name: 'f1', field_index: 0, field_data_type: 'string', field_data_value: 'x' }] },
    }), 'update_route');
    const q2 = ok(t, await gse.call(other, 'query_route', { condition: { channel_id: channel }, operation: op }), 'query_route without plat_name') as { route: { name: string; stream_to: Record<string, unknown> }[]; stream_filters: unknown[] }[];
    t.deepEqual(q2[0]?.route.map((r) => [r.name, r.stream_to]), [
      ['stream_to_bkmonitor_kafka_0bkmonitor_15001000', { stream_to_id: s1, kafka: { topic_name: 'moved', partition: 2 } }],
      ['second', { stream_to_id: s2, kafka: { topic_name: 'copy', data_set: 'ds', biz_id: 2 } }],
    ]);
    t.deepEqual(q2[0]?.stream_filters, [{ name: 'f1', field_index: 0, field_data_type: 'string', field_data_value: 'x', field_in: 'protocol' }]);
    // delete by name (delete_spec_gse_router), then the whole route (delete_gse_router)
    ok(t, await gse.call(family, 'delete_route', { condition: { channel_id: channel, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin', method: 'specification' }, specification: { route: ['second'], stream_filters: ['f1'] } }), 'delete_route specification');
    const q3 = ok(t, await gse.call(other, 'query_route', { condition: { channel_id: channel, plat_name: 'bkmonitor' }, operation: op }), 'query') as { route: { name: string }[]; stream_filters: unknown[] }[];
    t.deepEqual(q3[0]?.route.map((r) => r.name), ['stream_to_bkmonitor_kafka_0bkmonitor_15001000']);
    t.deepEqual(q3[0]?.stream_filters, []);
    t.deepEqual(ok(t, await gse.call(other, 'delete_route', { condition: { channel_id: channel, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin', method: 'all' } }), 'delete_route all'), { channel_id: channel });
    refused(t, await gse.call(family, 'query_route', { condition: { channel_id: channel, plat_name: 'bkmonitor' }, operation: op }), 1_300_404, /^channel_id \d+ of plat_name "bkmonitor" not found$/, 'query of a deleted route');
  }
  // DataSource.apply_for_data_id_from_gse: no channel id, no route → a new channel id; then another
  const a = (ok(t, await gse.call('esb', 'add_route', { metadata: { plat_name: 'bkmonitor' }, operation: op }), 'allocate') as { channel_id: number }).channel_id;
  const b = (ok(t, await gse.call('apigw', 'add_route', { metadata: { plat_name: 'bkmonitor' }, operation: op }), 'allocate') as { channel_id: number }).channel_id;
  t.true(a >= 1_500_000 && b > a, `${a} then ${b}`);
  t.deepEqual(ok(t, await gse.call('esb', 'query_route', { condition: { channel_id: b, plat_name: 'bkmonitor' }, operation: op }), 'query allocated'), [{ metadata: { plat_name: 'bkmonitor', channel_id: b }, route: [], stream_filters: [] }]);
  // also under the reference's default gateway base
  const res = await fetch(`http://127.0.0.1:${gse.orch.httpPort()}/api/bk-gse/prod/api/v2/data/query_route`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer bkadm_test-admin-token-0123456789abcdefghijklmnop' }, body: JSON.stringify({ condition: { channel_id: a }, operation: op }) });
  t.like(await res.json(), { result: true, data: [{ metadata: { channel_id: a } }] });
});

storeContract('bad input is refused as the reference would refuse it, naming the field; nothing invalid is stored', async (t, store) => {
  const gse = await gseSetup(t, store);
  const s1 = (ok(t, await gse.call('esb', 'add_streamto', addStreamToBody('k1')), 'add k1') as { stream_to_id: number }).stream_to_id;
  ok(t, await gse.call('esb', 'add_route', addRouteBody(1_500_200, s1, 'topic-a')), 'add route');
  const before = await counts(store);
  const good = addStreamToBody('k9') as { stream_to: { kafka: Record<string, unknown> } };
  const cases: { api: Parameters<GseUnderTest['call']>[1]; body: unknown; code: number; message: RegExp; what: string }[] = [
    { api: 'add_streamto', body: undefined, code: 1_300_400, message: /^body: This field is required\.$/, what: 'no body' },
    { api: 'add_streamto', body: [1], code: 1_300_400, message: /^body: Invalid data/, what: 'a list for a body' },
    { api: 'add_streamto', body: { operation: op, stream_to: good.stream_to }, code: 1_300_400, message: /^metadata: This field is required\.$/, what: 'missing metadata' },
    { api: 'add_streamto', body: { metadata: { plat_name: '' }, stream_to: good.stream_to }, code: 1_300_400, message: /metadata\.plat_name: This field may not be blank\..*operation: This field is required\./, what: 'blank plat_name and no operation: both reported' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { storage_address: [{ ip: '127.0.0.1', port: 'abc' }] } } }, code: 1_300_400, message: /^stream_to\.kafka\.storage_address\.0\.port: A valid integer is required\.$/, what: 'a port that is not an integer' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { storage_address: [{ ip: '127.0.0.1', port: 70_000 }] } } }, code: 1_300_400, message: /storage_address\.0\.port: Ensure this value is less than or equal to 65535\./, what: 'a port out of range' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { storage_address: [] } } }, code: 1_300_400, message: /storage_address: This list may not be empty\./, what: 'no address' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { storage_address: 'a:1' } } }, code: 1_300_400, message: /storage_address: Expected a list of items but got type "str"\./, what: 'addresses as text' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, name: { a: 1 } } }, code: 1_300_400, message: /^stream_to\.name: Not a valid string\.$/, what: 'a name that is an object' },
    { api: 'add_streamto', body: { ...good, stream_to: { name: 'r', report_mode: 'redis', redis: { storage_address: [{ ip: 'r', port: 6379 }] } } }, code: 1_300_400, message: /stream_to\.report_mode: "redis" is not supported by bkstream/, what: 'a redis receiver' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, report_mode: 'smoke' } }, code: 1_300_400, message: /stream_to\.report_mode: "smoke" is not a valid choice\./, what: 'an unknown report_mode' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { ...good.stream_to.kafka, sasl_mechanisms: 'GSSAPI' } } }, code: 1_300_400, message: /sasl_mechanisms: "GSSAPI" is not supported/, what: 'an unsupported SASL mechanism' },
    { api: 'add_streamto', body: { ...good, stream_to: { ...good.stream_to, kafka: { ...good.stream_to.kafka, sasl_passwd: MASK } } }, code: 1_300_400, message: /sasl_passwd: "\*{6}" is the mask/, what: 'the mask as a password' },
    { api: 'add_streamto', body: addStreamToBody('k1'), code: 1_300_400, message: /^stream_to\.name: a stream_to named "k1" already exists in plat_name "bkmonitor"\.$/, what: 'a duplicate name' },
    { api: 'update_streamto', body: { condition: { stream_to_id: s1, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: { ...good.stream_to, name: 'bkstream' } } }, code: 1_300_400, message: /specification\.stream_to\.name: a stream_to named "bkstream" already exists/, what: 'renamed onto a taken name' },
    { api: 'update_streamto', body: { condition: { stream_to_id: 'x', plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: good.stream_to } }, code: 1_300_400, message: /^condition\.stream_to_id: A valid integer is required\.$/, what: 'an id that is not an integer' },
    { api: 'update_streamto', body: { condition: { stream_to_id: 999_999, plat_name: 'bkmonitor' }, operation: op, specification: { stream_to: good.stream_to } }, code: 1_300_404, message: /stream_to_id 999999 of plat_name "bkmonitor" not found/, what: 'update of a missing stream_to' },
    { api: 'update_streamto', body: { condition: { stream_to_id: s1, plat_name: 'other' }, operation: op, specification: { stream_to: good.stream_to } }, code: 1_300_404, message: /not found/, what: 'update under another platform' },
    { api: 'update_streamto', body: { condition: { stream_to_id: s1, plat_name: 'bkmonitor' }, operation: op }, code: 1_300_400, message: /^specification: This field is required\.$/, what: 'update without specification' },
    { api: 'delete_streamto', body: { condition: { stream_to_id: 999_999, plat_name: 'bkmonitor' }, operation: op }, code: 1_300_404, message: /not found/, what: 'delete of a missing stream_to' },
    { api: 'delete_streamto', body: { condition: { stream_to_id: s1, plat_name: 'bkmonitor' }, operation: op }, code: 1_300_409, message: new RegExp(`stream_to_id ${s1} is used by the routes of channel_id 1500200`), what: 'delete of a stream_to a route uses' },
    { api: 'query_streamto', body: { condition: {}, operation: op }, code: 1_300_400, message: /^condition\.plat_name: This field is required\.$/, what: 'query without plat_name' },
    { api: 'add_route', body: addRouteBody(1_500_201, 424_242, 't'), code: 1_300_400, message: /^route\.0\.stream_to\.stream_to_id: stream_to_id 424242 does not exist/, what: 'a route to an unknown stream_to' },
    { api: 'add_route', body: addRouteBody(1_500_200, s1, 't'), code: 1_300_409, message: /channel_id 1500200 already exists/, what: 'a duplicate channel id' },
    { api: 'add_route', body: { ...addRouteBody(1_500_202, s1, 't'), route: [{ name: 'a', stream_to: { stream_to_id: s1, kafka: { topic_name: 't' } } }, { name: 'a', stream_to: { stream_to_id: s1, kafka: { topic_name: 'u' } } }] }, code: 1_300_400, message: /route\.1\.name: Duplicate route name "a"/, what: 'two routes of one name' },
    { api: 'add_route', body: { ...addRouteBody(1_500_203, s1, 't'), route: [{ name: 'a', stream_to: { stream_to_id: s1 } }] }, code: 1_300_400, message: /^route\.0\.stream_to\.kafka: This field is required\.$/, what: 'a route target without kafka' },
    { api: 'add_route', body: { ...addRouteBody(1_500_204, s1, 't'), route: [{ name: 'a', stream_to: { stream_to_id: s1, kafka: { topic_name: 'bad topic!' } } }] }, code: 1_300_400, message: /topic_name: "bad topic!" is not a Kafka topic name/, what: 'a topic name Kafka refuses' },
    { api: 'add_route', body: { ...addRouteBody(1_500_205, s1, 't'), route: [{ name: 'a', stream_to: { stream_to_id: s1, kafka: { topic_name: 't', partition: -1 } } }] }, code: 1_300_400, message: /partition: Ensure this value is greater than or equal to 0\./, what: 'a negative partition' },
    { api: 'add_route', body: { ...addRouteBody(1_500_206, s1, 't'), route: 'x' }, code: 1_300_400, message: /^route: Expected a list of items but got type "str"\.$/, what: 'route as text' },
    { api: 'add_route', body: { ...addRouteBody(1_500_207, s1, 't'), stream_filters: [{ name: 'f', field_index: 0, field_data_type: 'float', field_data_value: '1' }] }, code: 1_300_400, message: /stream_filters\.0\.field_data_type: "float" is not a valid choice\./, what: 'a bad stream filter' },
    { api: 'update_route', body: { condition: { channel_id: 1_500_999, plat_name: 'bkmonitor' }, operation: op, specification: { route: [] } }, code: 1_300_404, message: /channel_id 1500999 of plat_name "bkmonitor" not found/, what: 'update of a missing route' },
    { api: 'update_route', body: { condition: { channel_id: 1_500_200, plat_name: 'bkmonitor' }, operation: op, specification: { route: [{ name: 'x', stream_to: { stream_to_id: 424_242, kafka: { topic_name: 't' } } }] } }, code: 1_300_400, message: /specification\.route\.0\.stream_to\.stream_to_id: stream_to_id 424242 does not exist/, what: 'an update to an unknown stream_to' },
    { api: 'delete_route', body: { condition: { channel_id: 1_500_999, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin', method: 'all' } }, code: 1_300_404, message: /not found/, what: 'delete of a missing route' },
    { api: 'delete_route', body: { condition: { channel_id: 1_500_200, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin' } }, code: 1_300_400, message: /^operation\.method: This field is required\.$/, what: 'delete without method' },
    { api: 'delete_route', body: { condition: { channel_id: 1_500_200, plat_name: 'bkmonitor' }, operation: { operator_name: 'admin', method: 'specification' }, specification: { route: ['nope'] } }, code: 1_300_400, message: /no route named "nope" in channel_id 1500200/, what: 'delete of a missing route name' },
    { api: 'query_route', body: { condition: { plat_name: 'bkmonitor' }, operation: op }, code: 1_300_400, message: /^condition\.channel_id: This field is required\.$/, what: 'query without channel_id' },
    { api: 'query_route', body: { condition: { channel_id: 1_500_200, plat_name: 'other' }, operation: op }, code: 1_300_404, message: /not found/, what: 'query under another platform' },
  ];
  for (const family of FAMILIES) {
    for (const c of cases) refused(t, await gse.call(family, c.api, c.body), c.code, c.message, `${family} ${c.api}: ${c.what}`);
  }
  t.deepEqual(await counts(store), before, 'nothing stored by a refused call');
  // the route and its stream_to are as they were
  const q = ok(t, await gse.call('esb', 'query_route', { condition: { channel_id: 1_500_200, plat_name: 'bkmonitor' }, operation: op }), 'query') as { route: { stream_to: { kafka: { topic_name: string } } }[] }[];
  t.is(q[0]?.route[0]?.stream_to.kafka.topic_name, 'topic-a');
  // a call without a token, or with a non-JSON body, is refused by the server before the API sees it
  const base = `http://127.0.0.1:${gse.orch.httpPort()}/api/v2/data/query_route`;
  t.is((await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).status, 401);
  t.is((await fetch(base, { method: 'POST', headers: { authorization: 'Bearer bkadm_test-admin-token-0123456789abcdefghijklmnop', 'content-type': 'text/plain' }, body: '{}' })).status, 415);
});

storeContract('instances starting together make one default stream_to, and follow the brokers when they change', async (t, store) => {
  const { GseStore } = await import('../../services/orchestrator/gse/store.ts');
  const { GseRegistry } = await import('../../services/orchestrator/gse/registry.ts');
  const { silentLogger } = await import('../../services/common/log.ts');
  const registries = [1, 2, 3].map(() => new GseRegistry({ store: new GseStore(store), box: testBox(), publisher: { publishNow: async () => true }, logger: silentLogger }));
  const ids = await Promise.all(registries.map((r) => r.ensureDefault(['10.0.0.1:9092'], 'admin')));
  t.is(new Set(ids).size, 1, `one id: ${ids.join(', ')}`);
  t.deepEqual((await counts(store)).gse_stream_to, 1);
  t.is(await registries[0]?.ensureDefault(['10.0.0.2:9093', '[::1]:9094'], 'admin'), ids[0]);
  const { rows } = await store.query<{ kafka: { storage_address: unknown } }>("SELECT kafka FROM gse_stream_to WHERE name = 'bkstream'");
  t.deepEqual(rows[0]?.kafka.storage_address, [{ ip: '10.0.0.2', port: 9093 }, { ip: '::1', port: 9094 }]);
  const pending = await store.query<{ key: string }>('SELECT key FROM gse_routes_pending');
  t.deepEqual(pending.rows.map((r) => r.key), [`stream_to:${ids[0]}`], 'the change waits to be published');
});
