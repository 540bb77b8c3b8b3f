/**
 * metricbeat (reference §A5.8, errata 7 and 19) scraping real endpoints on loopback: a prom-client
 * registry (through services/common/metrics.ts) behind an HTTP server that checks auth, headers and query,
 * plus hand-written OpenMetrics bodies (exemplars, timestamps), gzip, TLS with a self-signed certificate
 * (insecure and with the CA), a refused port, a hanging endpoint, relabelling, metric/dimension replace,
 * delta and rate, batching caps and the bkm_metricbeat_* self series.
 */
import test from 'ava';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { counter, createRegistry, gauge, histogram } from '../../../services/common/metrics.ts';
import { alignDelaySeconds, endpointOf, metricbeatType, type MetricbeatConfig } from '../../../services/agent/tasks/metricbeat.ts';
import type { MetricsOutput } from '../../../services/agent/task.ts';
import { gatherUps, parseTask, problemsOf, recordingContext, tempDir } from './helpers.ts';

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(t: { teardown(fn: () => void): void }, handler: Handler): Promise<string> {
  const server = http.createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Runs the task until `n` gather-up records were emitted, then stops it. */
async function scrapes(config: MetricbeatConfig, n: number, raw: Record<string, unknown> = {}, keepOneDimension = false): Promise<ReturnType<typeof recordingContext>> {
  const rec = recordingContext({ raw, keepOneDimension });
  const task = metricbeatType.create(config);
  const running = task.run(rec.ctx);
  try {
    await rec.waitFor((o) => gatherUps(o).length >= n, 15_000);
  } finally {
    rec.controller.abort(new DOMException('task removed', 'AbortError'));
    await running;
    await task.stop?.();
  }
  return rec;
}

function records(outs: MetricsOutput[]): MetricsOutput['records'][number][] {
  return outs.flatMap((o) => o.records);
}

function find(outs: MetricsOutput[], metric: string): MetricsOutput['records'][number][] {
  return records(outs).filter((r) => metric in r.metrics);
}

test('a prom-client endpoint: auth, headers, query; samples, label groups with exported_ keys, self series, gather-up', async (t) => {
  // A clean endpoint: prom-client writes the event-loop lag's mean and deviation as `Nan` within 100 ms of its
  // last reset (every scrape resets it), lines the task rightly counts as bad; those two series are left out.
  const registry = createRegistry();
  registry.removeSingleMetric('bkstream_nodejs_eventloop_lag_mean_seconds');
  registry.removeSingleMetric('bkstream_nodejs_eventloop_lag_stddev_seconds');
  const requests = counter(registry, { name: 'app_requests_total', help: 'requests', labelNames: ['path', 'bk_target_ip'] });
  requests.inc({ path: '/a', bk_target_ip: 'from-app' }, 3);
  requests.inc({ path: '/b', bk_target_ip: 'from-app' }, 5);
  gauge(registry, { name: 'app_queue_depth', help: 'queue' }).set(7);
  histogram(registry, { name: 'app_latency_seconds', help: 'latency', buckets: [0.1, 1] }).observe(0.5);
  const seen: http.IncomingHttpHeaders[] = [];
  const urls: string[] = [];
  let served = '';
  const base = await serve(t, (req, res) => {
    seen.push(req.headers);
    urls.push(req.url ?? '');
    if (req.headers.authorization !== `Basic ${Buffer.from('u:p').toString('base64')}`) {
      res.writeHead(401).end();
      return;
    }
    void registry.metrics().then((body) => {
      served = body;
      res.writeHead(200, { 'content-type': registry.contentType }).end(body);
    });
  });
  const config = parseTask(
    t,
    metricbeatType,
    {
      custom_report: true,
      module: {
        module: 'prometheus',
        metricsets: ['collector'],
        enabled: true,
        hosts: [`${base.replace('http://', 'http://u:p@')}`],
        metrics_path: '/custom/metrics',
        namespace: 'app',
        headers: { 'X-Custom': 'yes' },
        query: { 'name[]': ['a', 'b'], debug: '1' },
      },
    },
    { labels: [{ bk_target_ip: '10.0.0.9', bk_collect_config_id: '5' }], periodMs: 60_000 },
  );
  const rec = await scrapes(config, 1);
  t.is(urls[0], '/custom/metrics?debug=1&name%5B%5D=a&name%5B%5D=b');
  t.is(seen[0]!.accept, 'application/openmetrics-text,*/*');
  t.is(seen[0]!['x-bk-agent'], 'bkmonitorbeat');
  t.is(seen[0]!['x-custom'], 'yes');
  const outs = rec.metrics('metricbeat');
  t.true(outs.every((o) => o.target === `${base}/custom/metrics?debug=1&name%5B%5D=a&name%5B%5D=b`), 'target is the URL without user info');
  const a = find(outs, 'app_requests_total').find((r) => r.dimensions.path === '/a')!;
  t.deepEqual(a.metrics, { app_requests_total: 3 });
  t.deepEqual(a.dimensions, { path: '/a', bk_target_ip: 'from-app', exported_bk_target_ip: '10.0.0.9', bk_collect_config_id: '5' });
  t.is(a.timestamp % 1000, 0, 'second resolution');
  t.true(Math.abs(a.timestamp - Date.now()) < 5_000);
  t.is(find(outs, 'app_queue_depth')[0]!.metrics.app_queue_depth, 7);
  t.deepEqual(find(outs, 'app_latency_seconds_bucket').map((r) => [r.dimensions.le, r.metrics.app_latency_seconds_bucket]), [['0.1', 0], ['1', 1], ['+Inf', 1]]);
  const sampleLines = served.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  t.is(find(outs, 'bkm_metricbeat_scrape_line')[0]!.metrics.bkm_metricbeat_scrape_line, sampleLines, 'scrape_line counts the endpoint records');
  t.true(find(outs, 'bkm_metricbeat_scrape_size_bytes')[0]!.metrics.bkm_metricbeat_scrape_size_bytes! > 500);
  t.true(find(outs, 'bkm_metricbeat_scrape_duration_seconds')[0]!.metrics.bkm_metricbeat_scrape_duration_seconds! >= 0);
  t.true(find(outs, 'bkm_metricbeat_handle_duration_seconds')[0]!.metrics.bkm_metricbeat_handle_duration_seconds! >= 0);
  const up = find(outs, 'bkm_metricbeat_endpoint_up')[0]!;
  t.is(up.dimensions.code, '0');
  t.is(up.dimensions.code_name, 'Ok');
  t.is(records(outs).length, sampleLines + 5);
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.name, g.value]), [['0', 'Ok', 2]]);
  t.is(gatherUps(rec.outputs)[0]!.dims.bk_collect_type, 'metricbeat');
});

test('OpenMetrics body: exemplars, own timestamps (s and ms), disable_custom_timestamp, gzip', async (t) => {
  const nowS = Math.floor(Date.now() / 1000);
  const body = [
    '# TYPE rpc counter',
    `rpc_total{m="get"} 10 ${nowS - 120}.250 # {trace_id="t1",span_id="s1"} 1 ${nowS - 121}`,
    `rpc_total{m="put"} 4 ${(nowS - 60) * 1000}`,
    'plain 1',
    '# EOF',
    '',
  ].join('\n');
  const base = await serve(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/openmetrics-text; version=1.0.0', 'content-encoding': 'gzip' }).end(gzipSync(body));
  });
  const module = { module: 'prometheus', hosts: [base], namespace: 'om' };
  let rec = await scrapes(parseTask(t, metricbeatType, { module }), 1);
  let outs = rec.metrics('metricbeat');
  const get = find(outs, 'rpc_total').find((r) => r.dimensions.m === 'get')!;
  t.is(get.timestamp, (nowS - 120) * 1000);
  t.is(get.dimensions.bk_trace_id, 't1');
  t.is(get.dimensions.bk_span_id, 's1');
  t.is(get.dimensions.bk_trace_timestamp, String(nowS - 121));
  t.is(find(outs, 'rpc_total').find((r) => r.dimensions.m === 'put')!.timestamp, (nowS - 60) * 1000, 'an integer ms timestamp is detected');
  t.is(find(outs, 'bkm_metricbeat_endpoint_up')[0]!.dimensions.code, '0');
  rec = await scrapes(parseTask(t, metricbeatType, { module: { ...module, disable_custom_timestamp: true } }), 1);
  outs = rec.metrics('metricbeat');
  t.true(Math.abs(find(outs, 'rpc_total')[0]!.timestamp - Date.now()) < 5_000, 'scrape time instead of the sample time');
});

test('relabel (keep/replace/labeldrop), normalize_metric_name, dimension_replace, metric_replace', async (t) => {
  const body = ['http_req{code="200",path="/x",secret="s"} 1', 'http_req{code="500",path="/y",secret="s"} 2', '{"other.metric-name"} 3', 'rule:metric 4', 'drop_me 5', ''].join('\n');
  const base = await serve(t, (_req, res) => res.end(body));
  const config = parseTask(t, metricbeatType, {
    module: {
      hosts: [base],
      namespace: 'r',
      normalize_metric_name: true,
      metric_relabel_configs: [
        { source_labels: ['__name__'], regex: 'drop_.*', action: 'drop' },
        { source_labels: ['code'], regex: '(\\d)\\d\\d', target_label: 'class', replacement: '${1}xx' },
        { regex: 'secret', action: 'labeldrop' },
      ],
      dimension_replace: { path: 'url_path' },
      metric_replace: { http_req: 'http_requests' },
    },
  });
  const outs = (await scrapes(config, 1)).metrics('metricbeat');
  const req = find(outs, 'http_req').map((r) => r.dimensions);
  t.deepEqual(req, [
    { code: '200', path: '/x', class: '2xx', url_path: '/x' },
    { code: '500', path: '/y', class: '5xx', url_path: '/y' },
  ]);
  t.deepEqual(find(outs, 'http_requests').map((r) => r.metrics.http_requests), [1, 2], 'metric_replace copies');
  t.is(find(outs, 'other_metric_name')[0]!.metrics.other_metric_name, 3, 'normalized name (UTF-8 quoted form)');
  t.is(find(outs, 'rule_metric')[0]!.metrics.rule_metric, 4, 'normalized name (colons)');
  t.deepEqual(find(outs, 'drop_me'), []);
  t.is(find(outs, 'bkm_metricbeat_scrape_line')[0]!.metrics.bkm_metricbeat_scrape_line, 6, 'records produced: 2 + 2 copies + 2');
});

test('diff_metrics (delta: first sample dropped) and the rate action across scrapes', async (t) => {
  let n = 0;
  const t0 = Math.floor(Date.now() / 1000) - 100;
  const base = await serve(t, (_req, res) => {
    n++;
    const ts = t0 + n * 10;
    res.end(`bytes_total{if="eth0"} ${n * 100} ${ts}\npackets_total ${n * 7} ${ts}\n`);
  });
  const delta = parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'd', diff_metrics: ['bytes_total'] } }, { periodMs: 1_000 });
  let outs = (await scrapes(delta, 2)).metrics('metricbeat');
  t.deepEqual(find(outs, 'bytes_total').map((r) => r.metrics.bytes_total), [100], 'first dropped, then current − previous');
  t.is(find(outs, 'packets_total').length, 2, 'other metrics untouched');
  n = 0;
  const rate = parseTask(t, metricbeatType, {
    module: { hosts: [base], namespace: 'r', metric_relabel_configs: [{ source_labels: ['__name__'], regex: 'bytes_total', replacement: 'bytes_rate', action: 'rate' }] },
  }, { periodMs: 1_000 });
  outs = (await scrapes(rate, 2)).metrics('metricbeat');
  t.deepEqual(find(outs, 'bytes_total').map((r) => r.metrics.bytes_total), [200], 'the first sample of a rate series is dropped; then the original is kept');
  t.deepEqual(find(outs, 'bytes_rate').map((r) => r.metrics.bytes_rate), [10], '100 per 10 s');
});

test('batching: metrics_batch_size records per MetricBatch, max_metric_batches caps a scrape; gather-up value = batches + 1', async (t) => {
  const body = Array.from({ length: 2500 }, (_, i) => `series{i="${i}"} ${i}`).join('\n');
  const base = await serve(t, (_req, res) => res.end(body));
  const config = parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'b' } });
  let rec = await scrapes(config, 1, { metrics_batch_size: 1000 });
  let outs = rec.metrics('metricbeat');
  t.deepEqual(outs.map((o) => o.records.length), [1000, 1000, 505]);
  t.deepEqual(gatherUps(rec.outputs).map((g) => g.value), [4]);
  rec = await scrapes(config, 1, { metrics_batch_size: 1000, max_metric_batches: 2 });
  outs = rec.metrics('metricbeat');
  t.deepEqual(outs.map((o) => o.records.length), [1000, 1000], 'the rest (and the self series) dropped');
  t.deepEqual(gatherUps(rec.outputs).map((g) => g.value), [3]);
  rec = await scrapes(config, 1, {});
  t.deepEqual(rec.metrics('metricbeat').map((o) => o.records.length), [1024, 1024, 457], 'default 1 024');
});

test('refused connection → only endpoint_up{code="2501"}; gather-up stays 0 (errata 7)', async (t) => {
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const rec = await scrapes(parseTask(t, metricbeatType, { module: { hosts: [`127.0.0.1:${port}`], namespace: 'x' } }), 1);
  const outs = rec.metrics('metricbeat');
  t.deepEqual(records(outs).map((r) => [Object.keys(r.metrics)[0], r.dimensions.code, r.dimensions.code_name]), [['bkm_metricbeat_endpoint_up', '2501', 'ConnRefused']]);
  t.is(outs[0]!.target, `http://127.0.0.1:${port}/metrics`, 'default scheme and path');
  t.deepEqual(gatherUps(rec.outputs).map((g) => [g.code, g.value]), [['0', 2]]);
});

test('invalid lines → endpoint_up{code="2502"} and the valid lines still sent; a hanging endpoint times out as 2501', async (t) => {
  const base = await serve(t, (req, res) => {
    if (req.url === '/hang') return;
    res.end('ok_metric 1\n<html>not metrics</html>\nnan_metric NaN\n');
  });
  let rec = await scrapes(parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'x' } }), 1);
  let outs = rec.metrics('metricbeat');
  t.is(find(outs, 'ok_metric').length, 1);
  t.deepEqual(find(outs, 'bkm_metricbeat_endpoint_up').map((r) => [r.dimensions.code, r.dimensions.code_name]), [['2502', 'InvalidPromFormat']]);
  t.is(find(outs, 'bkm_metricbeat_scrape_line')[0]!.metrics.bkm_metricbeat_scrape_line, 1);
  const started = Date.now();
  rec = await scrapes(parseTask(t, metricbeatType, { module: { hosts: [`${base}/hang`], namespace: 'x', timeout: '400ms' } }), 1);
  t.true(Date.now() - started < 3_000);
  outs = rec.metrics('metricbeat');
  t.deepEqual(find(outs, 'bkm_metricbeat_endpoint_up').map((r) => r.dimensions.code), ['2501']);
});

test('bearer_token and bearer_file', async (t) => {
  const dir = tempDir(t);
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, 'from-file');
  const auths: string[] = [];
  const base = await serve(t, (req, res) => {
    auths.push(req.headers.authorization ?? '');
    res.end('m 1\n');
  });
  await scrapes(parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'x', bearer_token: 'tok' } }), 1);
  await scrapes(parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'x', bearer_file: tokenFile } }), 1);
  t.deepEqual(auths, ['Bearer tok', 'Bearer from-file']);
});

test('TLS: a self-signed endpoint is refused by default, accepted with verification_mode none or with its CA', async (t) => {
  // a self-signed certificate for 127.0.0.1 (made once with openssl, valid until 2126)
  const key = join(import.meta.dirname, 'fixtures', 'tls-key.pem');
  const cert = join(import.meta.dirname, 'fixtures', 'tls-cert.pem');
  const server = https.createServer({ key: readFileSync(key), cert: readFileSync(cert) }, (_req, res) => res.end('tls_metric 1\n'));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
  const upOf = async (ssl: Record<string, unknown> | undefined): Promise<string | undefined> => {
    const rec = await scrapes(parseTask(t, metricbeatType, { module: { hosts: [url], namespace: 'tls', ...(ssl ? { ssl } : {}) } }), 1);
    return find(rec.metrics('metricbeat'), 'bkm_metricbeat_endpoint_up')[0]?.dimensions.code;
  };
  t.is(await upOf(undefined), '2501');
  t.is(await upOf({ verification_mode: 'none' }), '0');
  t.is(await upOf({ certificate_authorities: [cert] }), '0');
});

test('keep_one_dimension keeps the first sample per metric and label names', async (t) => {
  const base = await serve(t, (_req, res) => res.end('m{a="1"} 1\nm{a="2"} 2\nm{b="1"} 3\n'));
  const outs = (await scrapes(parseTask(t, metricbeatType, { module: { hosts: [base], namespace: 'k' } }), 1, {}, true)).metrics('metricbeat');
  t.deepEqual(find(outs, 'm').map((r) => r.metrics.m), [1, 3]);
});

test('config: endpoints as the beats host parser builds them; bad configs name their keys', (t) => {
  t.is(endpointOf('127.0.0.1:9100', '', {}).url, 'http://127.0.0.1:9100/metrics');
  t.is(endpointOf('http://h:1/x?y=1', '/ignored', {}).url, 'http://h:1/x?y=1');
  t.is(endpointOf('https://u:p%40@h', '/m', {}).sanitized, 'https://h/m');
  t.is(endpointOf('https://u:p%40@h', '/m', {}).password, 'p@');
  t.deepEqual(problemsOf(metricbeatType, {}).map((p) => p.key), ['module']);
  t.deepEqual(
    problemsOf(metricbeatType, { module: { module: 'mysql', hosts: [], metric_relabel_configs: [{ action: 'hashmod', target_label: 'x' }, { action: 'bogus' }] } }).map((p) => p.key).sort(),
    ['module.hosts', 'module.metric_relabel_configs[0]', 'module.metric_relabel_configs[1]', 'module.module', 'module.namespace'],
  );
  t.is(alignDelaySeconds(60, 45), 15);
  t.is(alignDelaySeconds(60, 0), 0);
  t.is(alignDelaySeconds(300, 10), 0, 'more than a minute away: no alignment');
  t.is(alignDelaySeconds(30, 20), 10);
});
