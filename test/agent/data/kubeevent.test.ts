/**
 * kubeevent (reference §A5.15) against a local HTTP server speaking the API server's wire format: an
 * EventList for the list, and chunked JSON lines `{"type":"ADDED","object":{...Event...}}` for the watch,
 * including an `ERROR` with code 410 mid-stream (→ a new list, then a watch from its version). Also the
 * recorder's window rules, the reference's record shape, the bkm_kubeevent_* series, and `tail_files`.
 */
import test from 'ava';
import { appendFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { kubeeventType, Recorder, toKubeEvent } from '../../../services/agent/tasks/kubeevent.ts';
import type { EventOutput } from '../../../services/agent/task.ts';
import { parseTask, recordingContext, tempDir } from './helpers.ts';

const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

function event(uid: string, reason: string, count: number, firstMs: number, lastMs: number, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: `${uid}.1`, namespace: 'default', uid, resourceVersion: String(1000 + count) },
    involvedObject: { kind: 'Pod', namespace: 'default', name: `pod-${uid}`, apiVersion: 'v1', uid: `obj-${uid}` },
    reason,
    message: `${reason} message ${count}`,
    source: { component: 'kubelet', host: 'node-1' },
    firstTimestamp: iso(firstMs),
    lastTimestamp: iso(lastMs),
    count,
    type: reason === 'BackOff' ? 'Warning' : 'Normal',
    ...extra,
  };
}

type Rec = { event_name: string; target: string; event: { content: string; count: number }; dimension: Record<string, string>; timestamp: number };

function records(events: EventOutput[]): Rec[] {
  return events.flatMap((e) => (e.body as { data: Rec[] }).data);
}

test('API watch: list, watch lines, a 410 mid-stream → relist and watch again; windowed counts in the reference shape; self series', async (t) => {
  const started = Date.now();
  const future = started + 5_000;
  const calls: string[] = [];
  let watches = 0;
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '', 'http://x');
    t.is(req.headers.authorization, 'Bearer tok');
    if (url.searchParams.get('watch') !== 'true') {
      calls.push(`list`);
      const second = calls.filter((c) => c === 'list').length > 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'EventList',
          apiVersion: 'v1',
          metadata: { resourceVersion: second ? '2000' : '1000' },
          items: second
            ? [event('a', 'Started', 3, future, future + 1000), event('old', 'Pulled', 4, started - 3_600_000, started - 3_600_000)]
            : [event('old', 'Pulled', 4, started - 3_600_000, started - 3_600_000), event('seen', 'BackOff', 7, started - 3_600_000, future)],
        }),
      );
      return;
    }
    watches++;
    calls.push(`watch@${url.searchParams.get('resourceVersion')}`);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    if (watches === 1) {
      res.write(`${JSON.stringify({ type: 'ADDED', object: event('a', 'Started', 1, future, future) })}\n`);
      res.write(`${JSON.stringify({ type: 'MODIFIED', object: event('a', 'Started', 2, future, future + 500) })}\n`);
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Event', apiVersion: 'v1', metadata: { resourceVersion: '1500' } } })}\n`);
      setTimeout(() => {
        res.write(`${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version: 1000 (1500)', reason: 'Expired', code: 410 } })}\n`);
        res.end();
      }, 100);
      return;
    }
    res.write(`${JSON.stringify({ type: 'ADDED', object: event('b', 'Killing', 2, future, future + 2000) })}\n`);
    // keep the watch open like the API server does
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    server.closeAllConnections();
    server.close();
  });
  const port = (server.address() as AddressInfo).port;
  const config = parseTask(t, kubeeventType, {
    api_server: `http://127.0.0.1:${port}`,
    bearer_token: 'tok',
    interval: '400ms',
    flush_interval: '100ms',
    upmetrics_period: '300ms',
    upmetrics_dataid: 1100099,
    retry_interval: '100ms',
  }, { labels: [{ bcs_cluster_id: 'BCS-K8S-1' }] });
  t.true(kubeeventType.enabled!(config));
  const rec = recordingContext();
  const running = kubeeventType.create(config).run(rec.ctx);
  try {
    await rec.waitFor((o) => records(o.filter((x): x is EventOutput => x.kind === 'event')).some((r) => r.event_name === 'Killing'), 10_000);
    await rec.waitFor((o) => o.some((x) => x.kind === 'metrics'), 5_000);
  } finally {
    rec.controller.abort(new DOMException('task removed', 'AbortError'));
    await running;
  }
  t.deepEqual(calls.slice(0, 4), ['list', 'watch@1000', 'list', 'watch@2000'], 'the 410 caused a relist and a watch from the new version');
  const recs = records(rec.events('kubeevent'));
  const byReason = (r: string): Rec[] => recs.filter((x) => x.event_name === r);
  t.is(byReason('Started').reduce((n, r) => n + r.event.count, 0), 3, 'a new event counts its whole count, across windows and the relist');
  t.is(byReason('BackOff').reduce((n, r) => n + r.event.count, 0), 1, 'first seen before the start, last after: 1');
  t.deepEqual(byReason('Pulled'), [], 'an old event counts nothing');
  const killing = byReason('Killing')[0]!;
  t.deepEqual(killing.dimension, { kind: 'Pod', namespace: 'default', name: 'pod-b', apiVersion: 'v1', uid: 'b', host: 'node-1', type: 'Normal', pod: 'pod-b', bcs_cluster_id: 'BCS-K8S-1' });
  t.is(killing.target, 'kubelet');
  t.deepEqual(killing.event, { content: 'Killing message 2', count: 2 });
  t.is(killing.timestamp, Math.floor((future + 2000) / 1000) * 1000);
  const ev = rec.events('kubeevent')[0]!;
  t.is(ev.dataId, 1500001);
  t.false(ev.cmdbLevel);
  t.deepEqual(Object.keys(ev.body).sort(), ['data', 'dataid']);
  const up = rec.metrics('kubeevent').at(-1)!;
  t.is(up.dataId, 1100099);
  t.deepEqual(Object.keys(up.records[0]!.metrics).sort(), ['bkm_kubeevent_cleaned_events', 'bkm_kubeevent_receive_events', 'bkm_kubeevent_report_events']);
  t.true(up.records[0]!.metrics.bkm_kubeevent_receive_events! >= 3);
  t.is(up.records[0]!.dimensions.bk_collect_type, 'kubeevent');
});

test('recorder windows: increments per window, keys without news are cleaned', (t) => {
  let now = Date.parse('2026-12-02T10:00:00Z');
  const r = new Recorder(now, [], () => now);
  const e = (count: number) => toKubeEvent(event('x', 'Unhealthy', count, now + 1000, now + 1000 * count));
  r.recv(e(2));
  now += 60_000;
  t.deepEqual(r.window().map((x) => (x.event as { count: number }).count), [2]);
  r.recv(e(5));
  t.deepEqual(r.window().map((x) => (x.event as { count: number }).count), [3]);
  t.deepEqual(r.window(), []);
  t.is(r.cleaned, 1);
  r.recv(toKubeEvent({ reason: 'NoTime' }));
  t.is(r.received, 3, 'events without any time are received but not recorded');
  t.deepEqual(r.window(), []);
  const withSeries = toKubeEvent(event('s', 'Sched', 0, now + 1000, now + 1000, { count: undefined, firstTimestamp: undefined, lastTimestamp: undefined, eventTime: iso(now + 1000), series: { count: 4, lastObservedTime: iso(now + 9000) } }));
  r.recv(withSeries);
  const out = r.window();
  t.is((out[0]!.event as { count: number }).count, 4, 'events.k8s.io-style series count');
  t.is(out[0]!.timestamp, Math.floor((now + 9000) / 1000) * 1000);
});

test('recorder: an event first and last seen before the start counts only later increments, also when seen again within a window', (t) => {
  let now = Date.parse('2026-12-02T10:00:00Z');
  const r = new Recorder(now, [], () => now);
  const old = (count: number, lastMs: number) => toKubeEvent(event('old', 'Pulled', count, now - 3_600_000, lastMs));
  r.recv(old(4, now - 3_600_000));
  r.recv(old(4, now - 3_600_000)); // a relist before the window closes
  t.deepEqual(r.window(), [], 'nothing new');
  r.recv(old(4, now - 3_600_000));
  r.recv(old(6, now + 1000)); // two more occurrences after the start
  now += 60_000;
  t.deepEqual(r.window().map((x) => (x.event as { count: number }).count), [2]);
});

test('tail_files: one JSON Event per line, read through the shared file input', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'events.log');
  writeFileSync(file, `${JSON.stringify(event('old', 'Pulled', 1, Date.now() - 3_600_000, Date.now() - 3_600_000))}\n`);
  const config = parseTask(t, kubeeventType, { tail_files: [file], interval: '300ms', flush_interval: '100ms' });
  const rec = recordingContext();
  const running = kubeeventType.create(config).run(rec.ctx);
  try {
    await new Promise((r) => setTimeout(r, 300));
    const future = Date.now() + 5_000;
    appendFileSync(file, `${JSON.stringify(event('t', 'Created', 1, future, future))}\nnot json\n${JSON.stringify(event('t', 'Created', 3, future, future))}\n`);
    await rec.waitFor((o) => o.length > 0, 5_000);
  } finally {
    rec.controller.abort(new DOMException('task removed', 'AbortError'));
    await running;
  }
  const recs = records(rec.events('kubeevent'));
  t.deepEqual(recs.map((r) => [r.event_name, r.event.count]), [['Created', 3]]);
  t.false(kubeeventType.enabled!(parseTask(t, kubeeventType, {})), 'no source → no task (reference: tail_files empty)');
});
