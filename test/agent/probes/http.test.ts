/** The http uptime check against local HTTP/HTTPS servers: every status and body case, codes and event shape. */
import test from 'ava';
import { httpType } from '../../../services/agent/tasks/http.ts';
import { setResolver } from '../../../services/agent/probe/targets.ts';
import { bodyOf, closedPort, configure, httpServer, httpsServer, mustConfigure, proxyServer, runOnce, testHost } from './kit.ts';

const run = async (t: Parameters<typeof mustConfigure>[0], entry: Record<string, unknown>, meta: Record<string, unknown> = {}, limits = {}) =>
  runOnce(httpType, mustConfigure(t, httpType, entry, { max_timeout: '30s', min_period: '1s', ...meta }), limits);

test('a 200 answer whose body matches: every field of the reference event, with its type', async (t) => {
  const port = await httpServer(t);
  const url = `http://127.0.0.1:${port}/ok`;
  const r = await run(t, { task_id: 7, bk_biz_id: 2, period: '60s', timeout: '3s', labels: [{ env: 'prod' }], steps: [{ url, response: 'hello', response_format: 'startswith' }] });
  t.is(r.events.length, 1);
  const e = r.events[0]!;
  t.is(e.eventType, 'http');
  t.is(e.dataId, 1011);
  t.is(e.status, 0);
  t.is(e.cmdbLevel, undefined, 'uptime checks keep bk_cmdb_level (the publisher default)');
  const b = bodyOf(e);
  t.deepEqual(Object.keys(b).sort(), ['available', 'bk_biz_id', 'charset', 'content_length', 'dataid', 'error_code', 'group_info', 'media_type', 'message', 'method', 'resolved_ip', 'response_code', 'status', 'steps', 'task_duration', 'task_id', 'task_type', 'timestamp', 'url'].sort());
  t.like(b, { dataid: 1011, bk_biz_id: 2, task_id: 7, task_type: 'http', status: 0, error_code: 0, available: 1, url, steps: 1, method: 'GET', response_code: 200, message: '200 OK', charset: 'utf-8', content_length: 11, media_type: 'text/plain', resolved_ip: '127.0.0.1' });
  t.deepEqual(b.group_info, [{ env: 'prod' }]);
  t.true(Number.isInteger(b.timestamp) && Math.abs((b.timestamp as number) - Date.now() / 1000) < 10, 'timestamp is unix seconds');
  t.true(Number.isInteger(b.task_duration) && (b.task_duration as number) >= 0 && (b.task_duration as number) < 3000);
  t.is(r.status, 'ok');
});

test('status codes: not in response_code → 1202 with the step index as status; a listed code passes; non-numbers dropped', async (t) => {
  const port = await httpServer(t);
  const r = await run(t, { steps: [{ url: `http://127.0.0.1:${port}/status/500` }, { url: `http://127.0.0.1:${port}/status/404`, response_code: '200,x,404' }, { url: `127.0.0.1:${port}/status/201`, response_code: ' 201' }] });
  t.is(r.events.length, 3);
  const [a, b, c] = r.events.map(bodyOf);
  t.like(a, { status: 1, error_code: 1202, available: 0, response_code: 500, message: '500 Internal Server Error' });
  t.like(b, { status: 0, error_code: 0, response_code: 404 });
  t.like(c, { status: 0, error_code: 0, response_code: 201, url: `http://127.0.0.1:${port}/status/201` }, "' 201' is not an integer (Go Atoi): no code left, so any status passes; the scheme is added");
});

test('body matching: mismatch → 1202; eq/in/reg/wildcard/hex against the real body', async (t) => {
  const port = await httpServer(t);
  const url = `http://127.0.0.1:${port}/ok`;
  const cases: [string, string, number][] = [
    ['eq', 'hello world', 0],
    ['eq', 'hello', 1202],
    ['nq', 'hello', 0],
    ['in', 'lo wo', 0],
    ['nin', 'lo wo', 1202],
    ['endswith', 'world', 0],
    ['nstartswith', 'hello', 1202],
    ['reg', 'w.r', 0],
    ['reg', 'x*', 1202],
    ['wildcard', 'h*o w?rld', 0],
    ['hex', Buffer.from('hello world').toString('hex'), 0],
    ['raw|in', 'world', 0],
    ['unknownfn', 'hello', 1202],
  ];
  const r = await run(t, { steps: cases.map(([fmt, response]) => ({ url, response, response_format: fmt })) });
  t.is(r.events.length, cases.length);
  for (const [i, [fmt, , code]] of cases.entries()) {
    const b = bodyOf(r.events.find((e) => bodyOf(e).status === (code === 0 ? 0 : i + 1) && (code === 0 ? true : bodyOf(e).error_code === code)));
    t.is(b.error_code, code, fmt);
  }
  t.deepEqual(r.events.map((e) => bodyOf(e).error_code).sort(), cases.map((c) => c[2]).sort());
});

test('timeouts: headers later than timeout → 1101; a body still coming at the timeout is not judged (errata 4)', async (t) => {
  const port = await httpServer(t);
  const slow = await run(t, { timeout: '500ms', steps: [{ url: `http://127.0.0.1:${port}/slow?ms=3000` }] });
  t.like(bodyOf(slow.events[0]), { status: 1, error_code: 1101, available: 0, response_code: 0 });
  t.true((bodyOf(slow.events[0]).task_duration as number) >= 400);
  t.true(slow.ms < 2000, 'the run ends at its deadline');
  const body = await run(t, { timeout: '500ms', steps: [{ url: `http://127.0.0.1:${port}/slowbody?ms=3000`, response: 'first part second' }] });
  const b = bodyOf(body.events[0]);
  t.like(b, { status: -1, error_code: 1, available: 0, response_code: 200 });
  t.regex(b.message as string, /timeout/);
});

test('redirects are followed (10 at most), cookies set on the way are sent back, 307 keeps method and body', async (t) => {
  const port = await httpServer(t);
  const r = await run(t, {
    steps: [
      { url: `http://127.0.0.1:${port}/redirect/3`, response: 'hello world', response_format: 'eq' },
      { url: `http://127.0.0.1:${port}/loop` },
      { url: `http://127.0.0.1:${port}/setcookie`, response: 'cookie ok' },
      { url: `http://127.0.0.1:${port}/redirect307`, method: 'POST', request: 'payload', response: '"body":"payload"', response_format: 'in' },
    ],
  });
  const byStep = (n: number) => bodyOf(r.events.find((e) => bodyOf(e).url === [`http://127.0.0.1:${port}/redirect/3`, `http://127.0.0.1:${port}/loop`, `http://127.0.0.1:${port}/setcookie`, `http://127.0.0.1:${port}/redirect307`][n]));
  t.like(byStep(0), { status: 0, error_code: 0, response_code: 200 });
  t.like(byStep(1), { status: 2, error_code: 1200 });
  t.regex(byStep(1).message as string, /stopped after 10 redirects/);
  t.like(byStep(2), { status: 0, response_code: 200 });
  t.like(byStep(3), { status: 0, response_code: 200 });
});

test('gzip bodies are decoded; Content-Length is dropped when the client asked for gzip itself; a bad gzip stream → 1200', async (t) => {
  const port = await httpServer(t);
  const r = await run(t, {
    steps: [
      { url: `http://127.0.0.1:${port}/gzip`, response: 'compressed hello', response_format: 'eq' },
      { url: `http://127.0.0.1:${port}/gzip`, headers: { 'Accept-Encoding': 'gzip' }, response: 'compressed hello', response_format: 'eq' },
      { url: `http://127.0.0.1:${port}/badgzip`, response: 'x' },
    ],
  });
  const bodies = r.events.map(bodyOf).sort((a, b) => (a.status as number) - (b.status as number));
  const auto = bodies.find((b) => b.status === 0 && b.content_length === 0);
  const asked = bodies.find((b) => b.status === 0 && (b.content_length as number) > 0);
  t.truthy(auto, 'transparent gzip: content_length 0');
  t.truthy(asked, 'explicit Accept-Encoding: the header is kept');
  t.like(bodies.find((b) => b.status === 3), { error_code: 1200 });
});

test('buffer_size caps the body read and the response headers (capped by the meta max_buffer_size)', async (t) => {
  const port = await httpServer(t);
  const small = await run(t, { buffer_size: 1000, steps: [{ url: `http://127.0.0.1:${port}/big`, response: 'END', response_format: 'endswith' }] });
  t.like(bodyOf(small.events[0]), { error_code: 1202 });
  const large = await run(t, { buffer_size: 300_000, steps: [{ url: `http://127.0.0.1:${port}/big`, response: 'END', response_format: 'endswith' }] }, { max_buffer_size: 300_000 });
  t.like(bodyOf(large.events[0]), { error_code: 0 });
  const capped = await run(t, { buffer_size: 300_000, steps: [{ url: `http://127.0.0.1:${port}/big`, response: 'END', response_format: 'endswith' }] });
  t.like(bodyOf(capped.events[0]), { error_code: 1202 }, 'max_buffer_size defaults to 102400');
  const headers = await run(t, { buffer_size: 1000, steps: [{ url: `http://127.0.0.1:${port}/bigheaders` }] });
  t.like(bodyOf(headers.events[0]), { error_code: 1200, status: 1 });
});

test.serial('connection refused → 1200 with the error text; invalid URL → 1213, unresolvable → 1004, wrong family → 1211 (0-based step status)', async (t) => {
  const dead = await closedPort();
  const prev = setResolver(async (name) => {
    if (name === 'v4only.probe.test') return ['127.0.0.1'];
    throw new Error(`getaddrinfo ENOTFOUND ${name}`);
  });
  t.teardown(() => setResolver(prev));
  const r = await run(t, { steps: [{ url: `http://127.0.0.1:${dead}/` }, { url_list: ['http://exa mple/', 'http://nowhere.probe.test/'] }] });
  const refused = bodyOf(r.events.find((e) => bodyOf(e).error_code === 1200));
  t.like(refused, { status: 1, available: 0, response_code: 0, resolved_ip: '127.0.0.1' });
  t.regex(refused.message as string, /ECONNREFUSED/);
  t.like(bodyOf(r.events.find((e) => bodyOf(e).error_code === 1213)), { status: 1, url: 'http://exa mple/', resolved_ip: '' });
  t.like(bodyOf(r.events.find((e) => bodyOf(e).error_code === 1004)), { status: 1, url: 'http://nowhere.probe.test/', resolved_ip: '' });
  const v6 = await run(t, { target_ip_type: 6, steps: [{ url: 'http://v4only.probe.test/' }] });
  t.like(bodyOf(v6.events[0]), { status: 0, error_code: 1211, available: 0 }, 'first step: status 0 with a non-zero code (quirk kept)');
});

test.serial('dns_check_mode all probes every resolved IP, each really connected (pinned); single probes the first', async (t) => {
  const port = await httpServer(t, '::');
  const prev = setResolver(async () => ['127.0.0.1', '::1']);
  t.teardown(() => setResolver(prev));
  const url = `http://dual.probe.test:${port}/echo`;
  const all = await run(t, { dns_check_mode: 'all', steps: [{ url, response: '"host":"dual.probe.test:' + port + '"', response_format: 'in' }] });
  t.is(all.events.length, 2);
  for (const e of all.events) t.like(bodyOf(e), { status: 0, error_code: 0 }, 'the Host header keeps the URL name');
  t.deepEqual(all.events.map((e) => bodyOf(e).resolved_ip).sort(), ['127.0.0.1', '::1']);
  const v4 = await run(t, { dns_check_mode: 'all', steps: [{ url, response: '"local":"::ffff:127.0.0.1"', response_format: 'in' }] });
  const v6 = await run(t, { dns_check_mode: 'all', steps: [{ url, response: '"local":"::1"', response_format: 'in' }] });
  t.deepEqual(v4.events.filter((e) => bodyOf(e).status === 0).map((e) => bodyOf(e).resolved_ip), ['127.0.0.1'], 'the 127.0.0.1 event came over IPv4');
  t.deepEqual(v6.events.filter((e) => bodyOf(e).status === 0).map((e) => bodyOf(e).resolved_ip), ['::1'], 'the ::1 event came over IPv6');
  const single = await run(t, { steps: [{ url }] });
  t.deepEqual(single.events.map((e) => bodyOf(e).resolved_ip), ['127.0.0.1']);
  const only6 = await run(t, { target_ip_type: 6, dns_check_mode: 'all', steps: [{ url }] });
  t.deepEqual(only6.events.map((e) => bodyOf(e).resolved_ip), ['::1']);
});

test('request: method, headers (base64:// values, Host ignored), Accept-Charset and User-Agent, raw/hex/base64 bodies', async (t) => {
  const port = await httpServer(t);
  const url = `http://127.0.0.1:${port}/echo`;
  const r = await run(t, {
    steps: [
      { url, method: 'PUT', headers: { 'X-Plain': 'v1', 'X-B64': 'base64://aGVsbG8', Host: 'evil.example' }, request: 'base64://Ym9keQ==', response: '"body":"body"', response_format: 'in' },
      { url, method: 'POST', request: '68657821', request_format: 'hex', response: '"body":"hex!"', response_format: 'in' },
      { url, response: '"accept-charset":"utf-8"', response_format: 'in' },
      { url, response: '"user-agent":"Go-http-client/1.1"', response_format: 'in' },
      { url, headers: { 'X-B64': 'base64://aGVsbG8' }, response: '"x-b64":"hello"', response_format: 'in' },
      { url, response: `"host":"127.0.0.1:${port}"`, response_format: 'in', headers: { Host: 'other' } },
      { url, method: 'BAD METHOD' },
    ],
  });
  const codes = r.events.map((e) => [bodyOf(e).status, bodyOf(e).error_code]).sort((a, b) => (a[0] as number) - (b[0] as number));
  t.deepEqual(codes, [[0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [0, 0], [7, 1103]]);
});

test('HTTPS with a self-signed certificate: verification on → 1200 (the reference reports TLS errors as ResponseFailed); insecure_skip_verify → success', async (t) => {
  const port = await httpsServer(t);
  const strict = await run(t, { steps: [{ url: `https://localhost:${port}/ok` }] });
  const b = bodyOf(strict.events[0]);
  t.like(b, { status: 1, error_code: 1200, available: 0 });
  t.regex(b.message as string, /self[- ]signed|certificate/i);
  const insecure = await run(t, { insecure_skip_verify: true, steps: [{ url: `https://localhost:${port}/ok`, response: 'hello world', response_format: 'eq' }, { url: `https://127.0.0.1:${port}/redirect/2`, response: 'hello' }] });
  t.deepEqual(insecure.events.map((e) => [bodyOf(e).error_code, bodyOf(e).response_code]), [[0, 200], [0, 200]]);
});

test('proxy: http URLs in absolute form, https through CONNECT', async (t) => {
  const port = await httpServer(t);
  const sport = await httpsServer(t);
  const proxy = await proxyServer(t);
  const r = await run(t, { proxy: `http://127.0.0.1:${proxy.port}`, insecure_skip_verify: true, steps: [{ url: `http://127.0.0.1:${port}/ok`, response: 'hello' }, { url: `https://127.0.0.1:${sport}/ok`, response: 'hello' }] });
  t.deepEqual(r.events.map((e) => bodyOf(e).error_code), [0, 0]);
  t.deepEqual(proxy.forwarded, [`http://127.0.0.1:${port}/ok`]);
  t.deepEqual(proxy.tunnels, [`127.0.0.1:${sport}`]);
});

test('steps are independent; available_duration overrun → code 3 with status 1', async (t) => {
  const port = await httpServer(t);
  const dead = await closedPort();
  const r = await run(t, { timeout: '3s', available_duration: '400ms', steps: [{ url: `http://127.0.0.1:${dead}/` }, { url: `http://127.0.0.1:${port}/slow?ms=900` }, { url: `http://127.0.0.1:${port}/ok` }] });
  t.is(r.events.length, 3);
  t.deepEqual(r.events.map((e) => [bodyOf(e).status, bodyOf(e).error_code]), [[1, 1200], [1, 3], [0, 0]]);
});

test('custom_report: the time-series shape with the reference dimensions, one record per label group', async (t) => {
  const port = await httpServer(t);
  const url = `http://127.0.0.1:${port}/ok`;
  const r = await run(t, { task_id: 9, bk_biz_id: 3, custom_report: true, labels: [{ a: '1' }, { a: '2', b: 'x' }], steps: [{ url }] });
  t.is(r.events.length, 0);
  t.is(r.metrics.length, 1);
  const m = r.metrics[0]!;
  t.is(m.target, url);
  t.is(m.eventType, 'http');
  t.is(m.records.length, 2);
  const rec = m.records[0]!;
  t.deepEqual(Object.keys(rec.metrics).sort(), ['available', 'task_duration']);
  t.is(rec.metrics.available, 1);
  t.is(rec.timestamp % 1000, 0);
  t.like(rec.dimensions, { bk_biz_id: '3', url, method: 'GET', response_code: '200', message: '200 OK', error_code: '0', media_type: 'text/plain', resolved_ip: '127.0.0.1', status: '0', task_id: '9', task_type: 'http', node_id: testHost.nodeId, ip: testHost.ip, bk_cloud_id: '0', bk_agent_id: testHost.bkAgentId, a: '1' });
  t.like(m.records[1]!.dimensions, { a: '2', b: 'x' });
});

test('concurrency limits: len(ips) per URL; per_task 0 blocks until the deadline and publishes nothing (errata 3); 1 serialises', async (t) => {
  const port = await httpServer(t);
  const steps = [{ url_list: [`http://127.0.0.1:${port}/slow?ms=300`, `http://127.0.0.1:${port}/slow?ms=301`] }];
  const blocked = await run(t, { timeout: '800ms', steps }, {}, { http: { perInstance: 1000, perTask: 0 } });
  t.is(blocked.events.length, 0);
  t.is(blocked.status, 'timeout');
  const serial = await run(t, { timeout: '3s', steps }, {}, { http: { perInstance: 1000, perTask: 1 } });
  t.deepEqual(serial.events.map((e) => bodyOf(e).error_code), [0, 0]);
  t.true(serial.ms >= 590, `one at a time: ${serial.ms} ms`);
  const free = await run(t, { timeout: '3s', steps });
  t.true(free.ms < 590, `concurrent without a limit: ${free.ms} ms`);
});

test('config problems are reported with their keys', (t) => {
  const bad = (entry: Record<string, unknown>, meta: Record<string, unknown> = {}) => configure(httpType, entry, meta).problems.map((p) => `${p.key}: ${p.message}`).join('\n');
  t.regex(bad({ steps: [{ url: 'x', request_format: 'bin' }] }), /steps\[0\]\.request_format/);
  t.regex(bad({ steps: [{ url: 'x', request_format: 'hex', request: 'zz' }] }), /steps\[0\]\.request: must be hex/);
  t.regex(bad({ steps: [{ url: 'x', response_format: 'hex|eq', response: 'base64://aGk=' }] }), /steps\[0\]\.response: must be hex/);
  t.regex(bad({ steps: [{ url: 'x', response_format: 'reg', response: '(' }] }), /steps\[0\]\.response: is not a valid regular expression/);
  t.regex(bad({ steps: [{}] }), /steps\[0\]\.url: url or url_list is required/);
  t.regex(bad({ target_ip_type: 5, steps: [] }), /target_ip_type: must be 0, 4 or 6/);
  t.regex(bad({ dns_check_mode: 'some', steps: [] }), /dns_check_mode: must be single or all/);
  t.regex(bad({ proxy: 'socks5://127.0.0.1:1', steps: [] }), /proxy: only http:\/\/ proxies/);
  t.regex(bad({ steps: [] }, { max_buffer_size: -1 }), /max_buffer_size/);
  t.is(bad({ steps: [{ url: 'x', response_format: 'hex|eq', response: '6869' }] }), '');
});
