/**
 * The data tasks inside the real agent service, end to end against the real broker: a main file with
 * `gather_up_beat` and a `kubeevent_task` section, child files for script, metricbeat, keyword and
 * snmptrap in the include directory, real inputs on loopback (a script, a prom-client endpoint, a log file,
 * a trap sender, a watch server); the records are decoded from `<prefix>.metrics` / `<prefix>.events` with
 * the reference's field names and codes.
 */
import test from 'ava';
import { appendFileSync, chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import snmp from 'net-snmp';
import { counter, createRegistry } from '../../../services/common/metrics.ts';
import { brokers, testBus, uniqueName, waitFor } from '../../helpers/kafka.ts';
import { agentTopics, readAgentTopics, startAgent } from '../service-kit.ts';
import { tempDir } from './helpers.ts';

test('script, metricbeat, keyword, snmptrap and kubeevent records decode from the broker', async (t) => {
  t.timeout(150_000);
  const dir = tempDir(t);
  const confd = join(dir, 'conf.d');
  mkdirSync(confd);
  // inputs
  const scriptPath = join(dir, 'metrics.sh');
  writeFileSync(scriptPath, '#!/bin/sh\necho \'disk_used{mount="/data"} 42\'\n');
  chmodSync(scriptPath, 0o755);
  const registry = createRegistry();
  counter(registry, { name: 'shop_orders_total', help: 'orders', labelNames: ['state'] }).inc({ state: 'paid' }, 9);
  const prom = http.createServer((_req, res) => void registry.metrics().then((b) => res.end(b)));
  await new Promise<void>((r) => prom.listen(0, '127.0.0.1', r));
  t.teardown(() => prom.close());
  const logFile = join(dir, 'app.log');
  writeFileSync(logFile, '');
  const udp = createSocket('udp4');
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
  const trapPort = (udp.address()).port;
  await new Promise<void>((r) => udp.close(() => r()));
  const future = new Date(Date.now() + 5_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const kube = http.createServer((req, res) => {
    if (!(req.url ?? '').includes('watch=true')) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ kind: 'EventList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: [] }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    const ev = { metadata: { uid: 'u1', resourceVersion: '2' }, involvedObject: { kind: 'Pod', namespace: 'ns', name: 'web-0', apiVersion: 'v1' }, reason: 'BackOff', message: 'Back-off restarting', source: { component: 'kubelet', host: 'n1' }, firstTimestamp: future, lastTimestamp: future, count: 2, type: 'Warning' };
    res.write(`${JSON.stringify({ type: 'ADDED', object: ev })}\n`);
  });
  await new Promise<void>((r) => kube.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    kube.closeAllConnections();
    kube.close();
  });
  // configuration
  const main = join(dir, 'bkmonitorbeat.conf');
  writeFileSync(
    main,
    `bkmonitorbeat:
  node_id: 0
  ip: 127.0.0.1
  bk_cloud_id: 0
  bk_biz_id: 2
  mode: daemon
  include: ${confd}
  host_id_path: ${join(dir, 'hostid')}
  heart_beat:
    global_dataid: 1100001
    period: 60s
  gather_up_beat:
    dataid: 1100017
  kubeevent_task:
    task_id: 90
    dataid: 1100020
    period: 60s
    interval: 1s
    api_server: http://127.0.0.1:${(kube.address() as AddressInfo).port}
    upmetrics_dataid: 1100021
`,
  );
  writeFileSync(join(confd, 'script.conf'), `type: script\nname: script_task\nversion: 1.0.0\ndataid: 1500010\nmax_timeout: 30s\nmin_period: 1s\ntasks:\n  - task_id: 11\n    bk_biz_id: 2\n    period: 2s\n    timeout: 10s\n    command: ${scriptPath}\n`);
  writeFileSync(
    join(confd, 'prometheus.conf'),
    `type: metricbeat\nname: prom_task\nversion: 1.0.0\ndataid: 1500011\nmax_timeout: 30s\nmin_period: 1s\ntasks:\n  - task_id: 12\n    bk_biz_id: 2\n    period: 2s\n    timeout: 5s\n    module:\n      module: prometheus\n      metricsets: ["collector"]\n      enabled: true\n      hosts: ["http://127.0.0.1:${(prom.address() as AddressInfo).port}/metrics"]\n      metrics_path: ''\n      namespace: shop\n`,
  );
  writeFileSync(join(confd, 'keyword.conf'), `type: keyword\nname: keyword_task\nversion: 1.0.0\ndataid: 1500012\ntasks:\n  - task_id: 13\n    bk_biz_id: 2\n    dataid: 1500012\n    paths: ["${join(dir, '*.log')}"]\n    report_period: 1s\n    scan_frequency: 200ms\n    keywords:\n      - name: error\n        pattern: 'ERROR (?P<code>\\d+)'\n`);
  writeFileSync(join(confd, 'snmptrap.conf'), `type: snmptrap\nname: snmptrap_task\nversion: 1.0.0\ndataid: 1500013\ntasks:\n  - task_id: 14\n    bk_biz_id: 2\n    listen_ip: 127.0.0.1\n    listen_port: ${trapPort}\n    community: public\n    oids:\n      "1.3.6.1.6.3.1.1.5.3": linkDown\n`);

  const prefix = uniqueName('agent-data-e2e');
  const bus = testBus();
  await agentTopics(t, bus, prefix);
  const read = await readAgentTopics(t, bus, prefix);
  await startAgent(t, { main, brokers: brokers(), prefix, stateDir: join(dir, 'state'), overrides: { listenRestartDelayMs: 300 } });

  const script = await waitFor('script series', () => read.metrics.find((m) => m.value.data_id === 1500010), 60_000);
  t.is(script.key, '2:1500010:0:127.0.0.1');
  t.deepEqual(script.value.records[0]!.metrics, { disk_used: 42 });
  t.deepEqual(script.value.records[0]!.dimensions, { mount: '/data', bk_biz_id: '2' });
  const scriptUp = await waitFor('script gather-up', () => read.metrics.find((m) => m.value.data_id === 1100017 && m.value.records[0]!.dimensions.bk_collect_type === 'script'), 60_000);
  t.like(scriptUp.value.records[0]!.dimensions, { task_id: '11', bkm_up_code: '0', bkm_up_code_name: 'Ok' });
  t.is(scriptUp.value.records[0]!.metrics.bkm_gather_up, 2);

  const mb = await waitFor('metricbeat series', () => read.metrics.find((m) => m.value.data_id === 1500011 && m.value.records.some((r) => 'shop_orders_total' in r.metrics)), 60_000);
  t.deepEqual(mb.value.records.find((r) => 'shop_orders_total' in r.metrics)!.dimensions, { state: 'paid' });
  t.true(mb.value.records.some((r) => r.dimensions.code === '0' && 'bkm_metricbeat_endpoint_up' in r.metrics));
  await waitFor('metricbeat gather-up', () => read.metrics.find((m) => m.value.data_id === 1100017 && m.value.records[0]!.dimensions.bk_collect_type === 'metricbeat'), 60_000);

  await new Promise((r) => setTimeout(r, 1_000));
  appendFileSync(logFile, 'INFO fine\nERROR 500 boom\nERROR 500 again\n');
  const kw = await waitFor('keyword event', () => read.events.find((e) => e.value.event_type === 'keyword'), 60_000);
  t.is(kw.value.data_id, 1500012);
  const kwData = kw.body.data as { event_name: string; event: { count: number; content: string }; dimension: Record<string, string> }[];
  t.like(kwData[0], { event_name: 'error', event: { count: 2, content: 'ERROR 500 again' }, dimension: { code: '500', file_path: logFile } });
  t.like(kw.body, { dataid: 1500012, type: 'keyword', node_id: '0:127.0.0.1' });

  const sendTrap = async (): Promise<void> => {
    const session = snmp.createSession('127.0.0.1', 'public', { port: 0, trapPort, version: snmp.Version2c });
    await new Promise<void>((resolve) => session.trap('1.3.6.1.6.3.1.1.5.3', [], () => (session.close(), resolve())));
  };
  const trap = await waitFor(
    'snmptrap event',
    async () => {
      const found = read.events.find((e) => e.value.event_type === 'snmptrap');
      if (!found) await sendTrap();
      return found;
    },
    60_000,
    500,
  );
  const trapRec = (trap.body.data as { event_name: string; dimension: Record<string, string> }[])[0]!;
  t.is(trapRec.event_name, 'TrapOID');
  t.like(trapRec.dimension, { display_name: 'linkDown', version: 'v2c', community: 'public' });

  const kev = await waitFor('kubeevent event', () => read.events.find((e) => e.value.event_type === 'kubeevent'), 60_000);
  t.is(kev.value.data_id, 1100020);
  const kevRec = (kev.body.data as { event_name: string; event: { count: number }; dimension: Record<string, string> }[])[0]!;
  t.like(kevRec, { event_name: 'BackOff', event: { count: 2 }, dimension: { kind: 'Pod', pod: 'web-0', namespace: 'ns' } });
  t.false('bk_cmdb_level' in kev.body, 'kubeevent opts out of the cmdb level');
});
