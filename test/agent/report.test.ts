/**
 * `bkstream report` (§A8) and `bkstream agent check`: the reference's message preparation and schema
 * rules, its flag spellings, sending to Kafka (records decode from the topics) and to a /v2/push/ proxy,
 * and check mode over the example configuration.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { codecFor } from '../../services/common/avro/index.ts';
import { prepareReport, reportRecords, validateReport } from '../../services/agent/report.ts';
import { command as reportCommand, normaliseReportArgs } from '../../services/cli/commands/report.ts';
import { brokers, testBus, uniqueName, waitFor } from '../helpers/kafka.ts';
import { testHost } from './kit.ts';
import { agentTopics, EXAMPLES, readAgentTopics } from './service-kit.ts';

const NOW = 1_700_000_000_123;

test('event reports: the template filled from the flags, data id and token set, timestamp defaulted to now', (t) => {
  const doc = prepareReport({ kind: 'event', dataId: 1500512, eventName: 'login_failed', eventContent: 'user x', eventTarget: '127.0.0.1', token: 'tok', now: NOW });
  t.deepEqual(doc, { data_id: 1500512, access_token: 'tok', data: [{ event_name: 'login_failed', metrics: {}, event: { content: 'user x' }, target: '127.0.0.1', dimension: {}, timestamp: NOW }] });
  t.deepEqual(validateReport('event', doc), []);
  const withBody = prepareReport({ kind: 'event', dataId: 0, body: '{"data_id": 7, "access_token": "a", "data": [{"event_name": "n", "event": {"content": "c"}, "target": "t", "dimension": {}, "timestamp": 5}]}', eventTimestamp: 9, now: NOW });
  t.is((withBody.data as { timestamp: number }[])[0]?.timestamp, 9, 'the timestamp flag wins');
  t.is(withBody.data_id, 7, 'data id 0 leaves the body\'s');
});

test('validation follows the reference schema: every problem listed; only data[0] is checked', (t) => {
  t.deepEqual(validateReport('event', { data_id: 0, data: [{ event_name: '', event: {}, target: '', dimension: [], timestamp: 1.5 }] }).sort(), [
    'access_token is required',
    'data.0.dimension: must be an object',
    'data.0.event.content is required',
    'data.0.event_name: must be a non-empty string',
    'data.0.target: must be a non-empty string',
    'data.0.timestamp: must be an integer',
    'data_id: must be an integer >= 1',
  ]);
  t.deepEqual(validateReport('timeseries', { data_id: 1, access_token: 't', data: [{ metrics: 3 }] }).sort(), [
    'data.0.dimension is required',
    'data.0.metrics: must be an object',
    'data.0.target is required',
    'data.0.timestamp is required',
  ]);
  t.deepEqual(validateReport('timeseries', { data_id: 1, access_token: 't', data: [{ metrics: {}, target: 'a', dimension: {}, timestamp: 1 }, { bogus: true }] }), [], 'the second item is not checked (draft-04 tuple items)');
  t.deepEqual(validateReport('timeseries', { data_id: 1, access_token: 't', data: [] }), []);
  t.deepEqual(validateReport('event', { data_id: 1, access_token: 't', data: 'x' }), ['data: must be an array']);
  t.throws(() => prepareReport({ kind: 'timeseries', dataId: 1, body: '[1]', now: NOW }), { message: /JSON object/ });
  t.throws(() => prepareReport({ kind: 'timeseries', dataId: 1, body: '{oops', now: NOW }), { message: /not JSON/ });
});

test('records: an event report is one AgentEvent with the agent-sender document; a time-series report one MetricBatch per target', (t) => {
  const topics = { events: 'p.events', metrics: 'p.metrics' };
  const event = prepareReport({ kind: 'event', dataId: 1500512, eventName: 'n', eventContent: 'c', eventTarget: 't', token: 'k', now: NOW });
  const [rec] = reportRecords('event', event, testHost, topics, NOW);
  t.is(rec?.topic, 'p.events');
  t.is(rec?.key, '2:1500512');
  const decoded = codecFor('AgentEvent').decode(rec?.value as Buffer);
  t.like(decoded, { event_type: 'custom_event', data_id: 1500512, bk_biz_id: 2, timestamp: NOW });
  t.like(JSON.parse(decoded.body), { agent: { type: 'bkmonitorbeat.report', version: '0.0.1' }, dataid: 1500512, cloudid: 0, bizid: 2, ip: '10.0.0.1', bk_agent_id: 'agent-7', bk_host_id: 7, version: '', bk_info: {}, time: Math.floor(NOW / 1000) });

  const series = { data_id: 1500600, access_token: 'k', data: [
    { metrics: { cpu: 0.5 }, target: 'a', dimension: { m: 'x', n: 3 }, timestamp: 1_000 },
    { metrics: { cpu: 0.7 }, target: 'b', dimension: {}, timestamp: 0 },
    { metrics: { mem: 10 }, target: 'a', dimension: {}, timestamp: 2_000 },
  ] };
  const recs = reportRecords('timeseries', series, testHost, topics, NOW);
  t.deepEqual(recs.map((r) => r.key), ['2:1500600:a', '2:1500600:b']);
  const a = codecFor('MetricBatch').decode(recs[0]?.value as Buffer);
  t.deepEqual(JSON.parse(JSON.stringify(a.records)), [{ timestamp: 1_000, metrics: { cpu: 0.5 }, dimensions: { m: 'x', n: '3' } }, { timestamp: 2_000, metrics: { mem: 10 }, dimensions: {} }]);
  t.is(codecFor('MetricBatch').decode(recs[1]?.value as Buffer).records[0]?.timestamp, NOW, 'timestamp 0 means now');
  t.throws(() => reportRecords('timeseries', { data_id: 1, access_token: '', data: [{ metrics: { x: 'high' }, target: 'a', dimension: {}, timestamp: 1 }] }, testHost, topics, NOW), { message: /metrics\.x: must be a number/ });
});

test('the reference flag spellings are accepted', (t) => {
  t.deepEqual(normaliseReportArgs(['-report', '-report.bk_data_id', '1500512', '--report.message.kind=event', '-report.http.server', 'h:1', '-report.event.name', 'n', '--kind', 'x']), ['--data-id', '1500512', '--kind=event', '--http', 'h:1', '--event-name', 'n', '--kind', 'x']);
});

test('bkstream report publishes to Kafka (decoded from the topic), posts to a /v2/push/ proxy, and fails with exit code 1 on invalid input or a non-200 answer', async (t) => {
  const prefix = uniqueName('report');
  const bus = testBus();
  await agentTopics(t, bus, prefix, 1);
  const read = await readAgentTopics(t, bus, prefix);
  const env = { KAFKA_BROKERS: brokers().join(','), TOPIC_PREFIX: prefix, AGENT_CONFIG: join(EXAMPLES, 'bkmonitorbeat.yaml') };
  t.is(await reportCommand.run(['-report.bk_data_id', '1500512', '-report.message.kind', 'event', '-report.event.name', 'login_failed', '-report.event.content', 'user x', '-report.event.target', '127.0.0.1', '-report.http.token', 'tok'], env), 0);
  t.is(await reportCommand.run(['--kind', 'timeseries', '--data-id', '1500600', '--body', JSON.stringify({ access_token: 'tok', data: [{ metrics: { load: 1.5 }, target: '127.0.0.1', dimension: { app: 'x' }, timestamp: NOW }] })], env), 0);
  const ev = await waitFor('the custom event', () => read.events.find((e) => e.value.event_type === 'custom_event'), 30_000);
  t.is(ev.value.data_id, 1500512);
  t.like((ev.body.data as Record<string, unknown>[])[0], { event_name: 'login_failed', target: '127.0.0.1', event: { content: 'user x' } });
  const ts = await waitFor('the time series', () => read.metrics.find((m) => m.value.data_id === 1500600), 30_000);
  t.is(ts.value.target, '127.0.0.1');
  t.is(ts.value.records[0]?.metrics.load, 1.5);

  t.is(await reportCommand.run(['--kind', 'event', '--data-id', '1'], env), 1, 'no event name, content or target: invalid');

  const bodies: string[] = [];
  let status = 200;
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      bodies.push(`${req.method} ${req.url} ${body}`);
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{"code":"200","result":"true"}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const http = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.is(await reportCommand.run(['--http', http, '--kind', 'event', '--data-id', '7', '--event-name', 'n', '--event-content', 'c', '--event-target', 't', '--token', 'k'], env), 0);
  t.regex(bodies[0] ?? '', /^POST \/v2\/push\/ \{"data_id":7,"access_token":"k","data":\[\{"event_name":"n"/);
  status = 500;
  t.is(await reportCommand.run(['--http', http, '--kind', 'event', '--data-id', '7', '--event-name', 'n', '--event-content', 'c', '--event-target', 't'], env), 1);
});

test('bkstream agent check runs every task of the example configuration once and reports each', async (t) => {
  t.timeout(120_000);
  const cli = join(import.meta.dirname, '../../services/cli/bkstream.ts');
  const run = (args: string[]) => new Promise<{ code: number | null; out: string; err: string }>((done) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, LOG_LEVEL: 'error' }, timeout: 100_000 }, (error, out, err) => done({ code: error ? (error.code as number | null) : 0, out, err }));
  });
  const { code, out, err } = await run(['agent', 'check', join(EXAMPLES, 'bkmonitorbeat.yaml')]);
  t.is(code, 0, `${out}\n${err}`);
  t.regex(out, /task {4}static #100 .*: ok in/);
  t.regex(out, /task {4}selfstats #88 .*: ok in .*, 1 output/);
  t.regex(out, /task {4}processbeat #103 .*: ok in/);
  t.regex(out, /"eventType":"static"/);
  t.regex(out, /tasks? run, 0 failed\n$/);
  const usage = await run(['agent', 'check']);
  t.is(usage.code, 2);
  t.regex(usage.err, /^bkstream agent check: missing <main file>\nsee bkstream agent check --help\n$/);
});
