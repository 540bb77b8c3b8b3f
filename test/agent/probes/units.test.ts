/** The probe building blocks without a network: matching, payloads, target expansion, the socket budget. */
import test from 'ava';
import { SocketBudget } from '../../../services/agent/probe/budget.ts';
import { compileMatcher, matchFunction, responseTextProblem, wildcardToRegex } from '../../../services/agent/probe/match.ts';
import { base64Text, base64Value, requestBytes } from '../../../services/agent/probe/payload.ts';
import { expandTargets, hostPart, setResolver } from '../../../services/agent/probe/targets.ts';

const body = Buffer.from('HTTP/1.1 200 OK\r\nhello');

test('every response_format function, empty expectations, unknown functions', (t) => {
  const m = (format: string, expected: string, content: Buffer = body) => compileMatcher(format, Buffer.from(expected)).match(content);
  t.true(m('', 'HTTP/1.1'), 'empty format = startswith');
  t.true(m('startswith', 'HTTP'));
  t.false(m('nstartswith', 'HTTP'));
  t.true(m('endswith', 'hello'));
  t.false(m('nendswith', 'hello'));
  t.true(m('in', '200 OK'));
  t.true(m('nin', '404'));
  t.true(m('eq', 'HTTP/1.1 200 OK\r\nhello'));
  t.false(m('eq', 'HTTP/1.1'));
  t.true(m('nq', 'HTTP/1.1'));
  t.true(m('reg', '\\d{3} OK'));
  t.false(m('reg', 'z*'), 'a regex whose leftmost match is empty does not match (Go FindString)');
  t.true(m('reg', '(?i)HELLO$'), 'RE2 flag groups are translated');
  t.true(m('wildcard', 'HTTP/?.? 200*'));
  t.false(m('wildcard', 'HTTP/2*'));
  t.true(m('hex', Buffer.from('hello').toString('hex'), Buffer.from('hello')));
  t.false(m('hex', 'zz', Buffer.from('hello')));
  t.true(m('raw|in', 'hello'));
  t.false(m('hex|in', '6865'), 'hex|<fn> compares the text itself (quirk kept): the body does not contain "6865"');
  t.true(m('hex|in', '6865', Buffer.from('xx6865xx')));
  t.true(m('eq', '', Buffer.from('anything')), 'an empty expected response always matches');
  t.false(m('contains', 'hello'), 'an unknown function never matches');
  t.is(matchFunction('hex|nin'), 'nin');
  t.is(wildcardToRegex('a*b?.c'), 'a.*b.{1}\\.c');
  t.regex(responseTextProblem('hex', 'xyz') ?? '', /must be hex/);
  t.is(responseTextProblem('raw|eq', 'xyz'), undefined);
  const problems: string[] = [];
  compileMatcher('reg', Buffer.from('('), (p) => problems.push(p));
  t.is(problems.length, 1);
});

test('base64:// values, request formats', (t) => {
  t.is(base64Value('base64://aGVsbG8=').toString(), 'hello');
  t.is(base64Value('base64://aGVsbG8').toString(), 'hello', 'padding optional');
  t.is(base64Value('base64://not base64!').toString(), 'not base64!', 'a value that does not decode loses its prefix');
  t.is(base64Value('plain').toString(), 'plain');
  t.is(base64Text('base64://eC10b2tlbg=='), 'x-token');
  t.deepEqual(requestBytes('6869', 'hex'), Buffer.from('hi'));
  t.is(requestBytes('zz', 'hex'), undefined);
  t.deepEqual(requestBytes('hi', 'raw'), Buffer.from('hi'));
});

test('target expansion: URL and host:port forms, families, single/all, failures', async (t) => {
  t.is(hostPart('http://[::1]:8080/x', true), '::1');
  t.is(hostPart('http://example.test:81/', true), 'example.test');
  t.is(hostPart('http://exa mple/', true), undefined);
  t.is(hostPart('db.test:5432', false), 'db.test');
  t.is(hostPart('::1', false), '::1');
  t.is(hostPart('[fe80::1]:53', false), 'fe80::1');
  const prev = setResolver(async (name) => {
    if (name === 'two.test') return ['127.0.0.2', '::1', '127.0.0.3'];
    if (name === 'empty.test') return [];
    throw new Error(`getaddrinfo ENOTFOUND ${name}`);
  });
  t.teardown(() => setResolver(prev));
  const codes = async (hosts: string[], o: Partial<Parameters<typeof expandTargets>[1]> = {}) =>
    (await expandTargets(hosts, { ipType: 0, dnsCheckMode: 'all', urls: false, ...o })).map((h) => [h.host, h.code.code, h.ips.join(',')]);
  t.deepEqual(await codes(['two.test', '', '10.0.0.1', 'bad.test', 'empty.test']), [['two.test', 0, '127.0.0.2,::1,127.0.0.3'], ['10.0.0.1', 0, '10.0.0.1'], ['bad.test', 1004, ''], ['empty.test', 1004, '']]);
  t.deepEqual(await codes(['two.test'], { dnsCheckMode: 'single' }), [['two.test', 0, '127.0.0.2']]);
  t.deepEqual(await codes(['two.test'], { ipType: 6 }), [['two.test', 0, '::1']]);
  t.deepEqual(await codes(['http://two.test:8080/'], { ipType: 4, urls: true }), [['http://two.test:8080/', 0, '127.0.0.2,127.0.0.3']]);
  t.deepEqual(await codes(['http://[::1]/', 'http:///x y'], { ipType: 4, urls: true }), [['http://[::1]/', 0, '::1'], ['http:///x y', 1213, '']], 'a literal IP is probed as it is');
  setResolver(async () => ['127.0.0.1']);
  t.deepEqual(await codes(['v4.test'], { ipType: 6 }), [['v4.test', 1211, '']]);
});

test('socket budget: bounded, FIFO, abortable', async (t) => {
  const b = new SocketBudget(2);
  const r1 = await b.acquire();
  const r2 = await b.acquire();
  const order: number[] = [];
  const w3 = b.acquire().then((r) => (order.push(3), r));
  const ctl = new AbortController();
  const w4 = b.acquire(ctl.signal);
  const w5 = b.acquire().then((r) => (order.push(5), r));
  t.is(b.used, 2);
  t.is(b.waiting, 3);
  ctl.abort(new Error('run ended'));
  await t.throwsAsync(w4, { message: 'run ended' });
  r1();
  r1();
  r2();
  const [r3, r5] = await Promise.all([w3, w5]);
  t.deepEqual(order, [3, 5]);
  t.is(b.used, 2);
  t.is(b.peak, 2);
  r3();
  r5();
  t.is(b.used, 0);
});
