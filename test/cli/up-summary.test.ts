/**
 * What `bkstream up` prints once started (issue 18, item 1): every service's listeners from the configs it
 * runs with — the console first, at http://127.0.0.1:8080 by default — the broker and the store, and how to
 * send traces (OTLP endpoints, how to get a token). Pure: nothing is started.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { checkUpConfig, describeUp, localUrl, otlpEndpoints, withBoundPorts } from '../../services/cli/commands/up.ts';

const ROOT = resolve(import.meta.dirname, '../..');
const CONTEXT = { brokers: '127.0.0.1:9092', brokerLog: '/x/.bkstream/kafka/run-9092/logs/server.log', store: 'pglite (./data/pglite)' };

test('the defaults: the console URL first, then the collector\'s OTLP endpoints and admin port, every other service, broker and store', async (t) => {
  const lines = describeUp(await checkUpConfig({}), CONTEXT);
  const text = lines.join('\n');
  t.is(lines[0], 'what runs where:');
  t.regex(lines[1] ?? '', /^ {2}console +http:\/\/127\.0\.0\.1:8080 +web console/);
  t.regex(lines[2] ?? '', /^ {2}collector +http:\/\/127\.0\.0\.1:4317 +OTLP\/gRPC trace receiver$/);
  t.regex(lines[3] ?? '', /^ +http:\/\/127\.0\.0\.1:4318\/v1\/traces +OTLP\/HTTP trace receiver$/);
  t.regex(lines[4] ?? '', /^ +http:\/\/127\.0\.0\.1:4310 +admin: application registry/);
  for (const [service, url] of [
    ['discovery', 'http://127.0.0.1:8081'],
    ['storage', 'http://127.0.0.1:8083'],
    ['orchestrator', 'http://127.0.0.1:8082'],
    ['bkdata-sim', 'http://127.0.0.1:8090'],
    ['sampler', 'http://127.0.0.1:8084'],
    ['agent', 'http://127.0.0.1:4320'],
  ] as const) t.regex(text, new RegExp(`\\n {2}${service} +${url.replaceAll('.', '\\.')} `), service);
  t.regex(text, /grpc:\/\/127\.0\.0\.1:50051 +flow commands over gRPC/);
  t.regex(text, /\n {2}kafka +127\.0\.0\.1:9092 +local broker \(log: .*server\.log\)/);
  t.regex(text, /\n {2}store +pglite \(\.\/data\/pglite\) +embedded PGlite/);
  t.regex(text, /send traces: .*\n {2}http:\/\/127\.0\.0\.1:4317 \(OTLP\/gRPC\) or http:\/\/127\.0\.0\.1:4318\/v1\/traces \(OTLP\/HTTP\)\n.*x-bk-token/);
  t.regex(text, /npx bkstream apps create --biz 2 --app <name>/);
});

test('ports and hosts as configured: a wildcard interface is reached on loopback, IPv6 in brackets, a switched-off listener left out', async (t) => {
  const planned = await checkUpConfig({
    CONSOLE_PORT: '9080',
    COLLECTOR_OTLP_HOST: '0.0.0.0',
    COLLECTOR_OTLP_GRPC_ENABLED: 'false',
    COLLECTOR_OTLP_HTTP_PORT: '5318',
    ORCH_HOST: '::1',
    BKDATA_API_URL: 'https://bkdata.example/',
  });
  const text = describeUp(planned, { brokers: 'kafka-1:9092', store: 'pg' }).join('\n');
  t.regex(text, /console +http:\/\/127\.0\.0\.1:9080 /);
  t.notRegex(text, /OTLP\/gRPC trace receiver/);
  t.regex(text, /http:\/\/127\.0\.0\.1:5318\/v1\/traces +OTLP\/HTTP/);
  t.regex(text, /orchestrator +http:\/\/\[::1\]:8082 /);
  t.notRegex(text, /bkdata-sim/, 'a real BKData: no stand-in');
  t.regex(text, /kafka +kafka-1:9092 +KAFKA_BROKERS/);
  t.regex(text, /\n {2}http:\/\/127\.0\.0\.1:5318\/v1\/traces \(OTLP\/HTTP\)\n/);
});

test('ports configured as 0: the summary names the ports the running services bound, where they tell them', async (t) => {
  const planned = await checkUpConfig({ CONSOLE_PORT: '0', COLLECTOR_OTLP_GRPC_PORT: '0', COLLECTOR_OTLP_HTTP_PORT: '0', ORCH_HTTP_PORT: '0', DISCOVERY_HTTP_PORT: '0' });
  const running = new Map<string, unknown>([
    ['console', { port: () => 40080 }],
    ['collector', { ports: () => ({ grpc: 40317, http: 40318, admin: 4310 }) }],
    ['orchestrator', { httpPort: () => 40082, grpcPort: () => 50051 }],
    ['discovery', { name: 'discovery' }],
  ]);
  const text = describeUp(withBoundPorts(planned, running), CONTEXT).join('\n');
  t.regex(text, /console +http:\/\/127\.0\.0\.1:40080 /);
  t.regex(text, /collector +http:\/\/127\.0\.0\.1:40317 /);
  t.regex(text, /http:\/\/127\.0\.0\.1:40318\/v1\/traces +OTLP\/HTTP/);
  t.regex(text, /orchestrator +http:\/\/127\.0\.0\.1:40082 /);
  t.regex(text, /discovery +http:\/\/127\.0\.0\.1:\(a free port\) /, 'a service that does not tell its port');
  t.is((planned.find((p) => p.module.name === 'console')?.config as { port: number }).port, 0, 'the planned configs are left as they were');
});

test('OTLP endpoints: the bound ports win over configured 0; localUrl normalises hosts', (t) => {
  const config = { otlpHost: '127.0.0.1', grpcEnabled: true, grpcPort: 0, httpEnabled: true, httpPort: 0 };
  t.deepEqual(otlpEndpoints(config, { grpc: 40001, http: 40002 }), { grpcUrl: 'http://127.0.0.1:40001', httpUrl: 'http://127.0.0.1:40002/v1/traces' });
  t.deepEqual(otlpEndpoints({ ...config, grpcEnabled: false }, { grpc: undefined, http: 40002 }), { grpcUrl: undefined, httpUrl: 'http://127.0.0.1:40002/v1/traces' });
  t.is(localUrl('::', 1), 'http://127.0.0.1:1');
  t.is(localUrl('fe80::1', 2, 'grpc'), 'grpc://[fe80::1]:2');
});

test('bkstream up: an unknown argument is a usage error (exit 2) before anything starts', (t) => {
  const r = spawnSync(process.execPath, [join(ROOT, 'services/cli/bkstream.ts'), 'up', '--dmeo'], { cwd: ROOT, encoding: 'utf8', env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:1' }, timeout: 60_000 });
  t.is(r.status, 2, r.stderr);
  t.regex(r.stderr, /--dmeo/);
  t.notRegex(r.stdout, /started|what runs where/);
});
