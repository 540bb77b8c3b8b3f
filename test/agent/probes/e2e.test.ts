/**
 * The probe types end to end: the agent service, started against the real broker with the example main
 * file and one child file per probe type (the reference's template layout), publishes http, tcp, udp and
 * ping records that decode from the topics with the reference's field names, codes and the envelope.
 */
import test from 'ava';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brokers, testBus, uniqueName, waitFor } from '../../helpers/kafka.ts';
import { tempDir } from '../kit.ts';
import { agentTopics, exampleConfig, readAgentTopics, startAgent } from '../service-kit.ts';
import { closedPort, httpServer, tcpServer, udpServer } from './kit.ts';

test('http, tcp, udp and ping child files publish the reference documents to Kafka', async (t) => {
  t.timeout(150_000);
  const prefix = uniqueName('agent-probes');
  const bus = testBus();
  await agentTopics(t, bus, prefix);
  const { dir } = exampleConfig(t, { periodSeconds: 10 });
  const httpPort = await httpServer(t);
  const tcpPort = await tcpServer(t, 'echo');
  const udp = await udpServer(t, 'echo');
  const deadTcp = await closedPort();
  const child = (name: string, text: string): void => writeFileSync(join(dir, 'conf.d', name), text);
  child('http_probe.conf', `type: http
name: http_task
version: 1.1.1
dataid: 1011
max_buffer_size: 10240
max_timeout: 30s
min_period: 1s
tasks:
  - task_id: 9001
    bk_biz_id: 2
    period: 2s
    timeout: 2s
    target_ip_type: 0
    dns_check_mode: single
    insecure_skip_verify: false
    disable_keep_alives: false
    labels:
      - { probe: web }
    steps:
      - url: http://127.0.0.1:${httpPort}/ok
        method: GET
        headers: {}
        available_duration: 2s
        request: ''
        request_format: raw
        response: hello
        response_format: startswith
        response_code: '200'
`);
  child('tcp_probe.conf', `type: tcp
name: tcp_task
version: 1.1.1
dataid: 1009
max_buffer_size: 10240
max_timeout: 30s
min_period: 1s
tasks:
  - task_id: 9002
    bk_biz_id: 2
    period: 2s
    timeout: 2s
    target_host_list: [127.0.0.1]
    target_port: ${tcpPort}
    request: ping
    request_format: raw
    response: ping
    response_format: eq
  - task_id: 9003
    bk_biz_id: 2
    period: 2s
    timeout: 2s
    target_host: 127.0.0.1
    target_port: ${deadTcp}
`);
  child('udp_probe.conf', `type: udp
name: udp_task
version: 1.1.1
dataid: 1010
max_buffer_size: 10240
max_timeout: 30s
min_period: 1s
max_times: 10
tasks:
  - task_id: 9004
    bk_biz_id: 2
    period: 2s
    timeout: 2s
    target_host: 127.0.0.1
    target_port: ${udp.port}
    times: 3
    request: hi
    response: hi
    response_format: eq
`);
  child('icmp_probe.conf', `type: ping
name: ping_task
version: 1.1.1
dataid: 1100003
max_timeout: 100s
min_period: 1s
tasks:
  - task_id: 9005
    bk_biz_id: 2
    period: 2s
    timeout: 5s
    max_rtt: 1s
    total_num: 2
    ping_size: 56
    targets:
      - { target: 127.0.0.1, target_type: ip, labels: { room: r1 } }
      - { target: localhost, target_type: domain }
`);
  const read = await readAgentTopics(t, bus, prefix);
  const agent = await startAgent(t, { main: join(dir, 'bkmonitorbeat.yaml'), brokers: brokers(), prefix, stateDir: tempDir(t), env: { AGENT_HOST_IP: '10.9.8.7' } });
  t.deepEqual(agent.service.agent.loaded.children.filter((c) => /probe\.conf$/.test(c.path)).map((c) => c.status), ['loaded', 'loaded', 'loaded', 'loaded']);

  const http = await waitFor('an http event', () => read.events.find((e) => e.value.event_type === 'http'), 60_000);
  t.is(http.value.data_id, 1011);
  t.is(http.key, '2:1011');
  t.is(http.value.status, 0);
  t.like(http.body, { dataid: 1011, task_id: 9001, task_type: 'http', status: 0, error_code: 0, available: 1, url: `http://127.0.0.1:${httpPort}/ok`, steps: 1, method: 'GET', response_code: 200, message: '200 OK', media_type: 'text/plain', charset: 'utf-8', resolved_ip: '127.0.0.1', type: 'http', node_id: '0:10.9.8.7', ip: '10.9.8.7', bk_biz_id: 2 });
  t.deepEqual(http.body.group_info, [{ probe: 'web' }]);

  const tcpOk = await waitFor('a tcp success', () => read.events.find((e) => e.value.event_type === 'tcp' && e.body.task_id === 9002), 60_000);
  t.like(tcpOk.body, { dataid: 1009, task_type: 'tcp', status: 0, error_code: 0, available: 1, target_host: '127.0.0.1', target_port: tcpPort, resolved_ip: '127.0.0.1', type: 'tcp' });
  const tcpBad = await waitFor('a tcp failure', () => read.events.find((e) => e.value.event_type === 'tcp' && e.body.task_id === 9003), 60_000);
  t.like(tcpBad.body, { status: 1, error_code: 1000, available: 0, target_port: deadTcp });
  t.is(tcpBad.value.status, 1);

  const udpEvent = await waitFor('a udp event', () => read.events.find((e) => e.value.event_type === 'udp'), 60_000);
  t.like(udpEvent.body, { dataid: 1010, task_type: 'udp', status: 0, error_code: 0, times: 0, max_times: 0, target_port: udp.port, resolved_ip: '127.0.0.1' });

  const pings = await waitFor('two ping events of one run', () => {
    const p = read.events.filter((e) => e.value.event_type === 'ping');
    return p.length >= 2 ? p : undefined;
  }, 60_000);
  const byTarget = new Map(pings.map((p) => [(p.body.dimensions as Record<string, string>).target, p]));
  const v4 = byTarget.get('127.0.0.1');
  const name = byTarget.get('localhost');
  t.truthy(v4);
  t.truthy(name);
  t.is(v4!.value.data_id, 1100003);
  t.like(v4!.body.dimensions, { target: '127.0.0.1', target_type: 'ip', error_code: '0', bk_biz_id: '2', resolved_ip: '', room: 'r1', task_id: '9005' });
  t.like(name!.body.dimensions, { target: 'localhost', target_type: 'domain', resolved_ip: '127.0.0.1' });
  t.like(v4!.body.metrics, { available: 1, loss_percent: 0 });
  t.false('status' in v4!.body, 'not_uptimecheck: the beater layer removes status');
  t.like(v4!.body, { dataid: 1100003, bk_biz_id: 2, type: 'ping' });
});
