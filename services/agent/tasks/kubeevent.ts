/**
 * `kubeevent` (reference §A5.15, tasks/kubeevent; `kubeevent_task`, listen scheduler): Kubernetes events,
 * counted per event in a window and published in the reference's event shape.
 *
 * Sources (bkstream's addition: the reference only tails files):
 * - the API server, through @kubernetes/client-node: `in_cluster: true` (service-account token), or
 *   `kubeconfig: <path>`, or `api_server: <url>` (+ `bearer_token`, `insecure_skip_verify`); `namespace`
 *   limits it to one namespace. A list gives the current events and a resource version, a watch follows
 *   from there (bookmarks keep the version fresh); a watch that ends is resumed from the last version, and
 *   a `410 Gone` (an ERROR event with code 410, or a 410 response) starts over with a new list;
 * - `tail_files` as in the reference (one JSON Event per line), read through the keyword tasks' shared file
 *   input (tail/input.ts), so offsets survive restarts.
 * The section configures a task when it has `tail_files` or an API source.
 *
 * Recorder (reference gather.go): events are keyed by md5(reason/kind/namespace/name/uid). A new key whose
 * first time is after the task started counts its whole count; one seen only since (last time after the
 * start) counts 1; an older one counts nothing. Every `interval` (1 m) each key emits the count added since
 * the previous window (a key without new occurrences is dropped and counted as cleaned), as
 * `{event_name: reason, target: source.component or "kubelet", event: {content: message, count},
 * dimension: {kind, namespace, name, apiVersion, uid, host, type, <lower(kind)>: name, labels…},
 * timestamp: last time in ms}`; records go out every 3 s or per 100 as `{dataid, data}` AgentEvents
 * (type `kubeevent`, no cmdb level). Every minute the self series `bkm_kubeevent_receive_events`,
 * `bkm_kubeevent_report_events`, `bkm_kubeevent_cleaned_events` go to `upmetrics_dataid` as time series.
 */
import { createHash } from 'node:crypto';
import type * as K8s from '@kubernetes/client-node';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { sharedInput } from '../tail/input.ts';
import type { BaseTaskConfig, EventOutput, Task, TaskContext, TaskType } from '../task.ts';

export interface KubeEventConfig extends BaseTaskConfig {
  readonly intervalMs: number;
  readonly tailFiles: readonly string[];
  readonly upMetricsDataId: number;
  readonly inCluster: boolean;
  readonly kubeconfig: string;
  readonly apiServer: string;
  readonly bearerToken: string;
  readonly insecureSkipVerify: boolean;
  readonly namespace: string;
  /** Records per AgentEvent (reference 100) and the flush interval (reference 3 s). */
  readonly batch: number;
  readonly flushMs: number;
  /** Self-series period (reference 1 m). */
  readonly upMetricsPeriodMs: number;
  /** Pause before resuming a failed watch. */
  readonly retryMs: number;
}

/** The fields of a Kubernetes Event the task reads (core/v1 shape, raw JSON or client model). */
export interface KubeEvent {
  reason: string;
  message: string;
  source: { component: string; host: string };
  uid: string;
  firstTimestamp: string;
  lastTimestamp: string;
  eventTime: string;
  count: number;
  involvedObject: { kind: string; namespace: string; name: string; apiVersion: string };
  type: string;
  series?: { count: number; lastObservedTime: string };
}

function str(v: unknown): string {
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? '' : v.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

function obj(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
}

/** A Kubernetes Event object (raw JSON or a client-node model) in the fields the recorder uses. */
export function toKubeEvent(raw: unknown): KubeEvent {
  const o = obj(raw);
  const src = obj(o.source);
  const inv = obj(o.involvedObject);
  const series = o.series === undefined || o.series === null ? undefined : obj(o.series);
  return {
    reason: str(o.reason),
    message: str(o.message),
    source: { component: str(src.component), host: str(src.host) },
    uid: str(obj(o.metadata).uid),
    firstTimestamp: str(o.firstTimestamp),
    lastTimestamp: str(o.lastTimestamp),
    eventTime: str(o.eventTime),
    count: typeof o.count === 'number' ? o.count : 0,
    involvedObject: { kind: str(inv.kind), namespace: str(inv.namespace), name: str(inv.name), apiVersion: str(inv.apiVersion) },
    type: str(o.type),
    ...(series ? { series: { count: typeof series.count === 'number' ? series.count : 0, lastObservedTime: str(series.lastObservedTime) } } : {}),
  };
}

/** Seconds of a Kubernetes time (the reference parses `2006-01-02T15:04:05Z`; others fall back to now). */
function seconds(s: string, nowMs: number): number {
  const t = Date.parse(s);
  return Number.isNaN(t) ? Math.floor(nowMs / 1000) : Math.floor(t / 1000);
}

function firstTime(e: KubeEvent, nowMs: number): number {
  return seconds(e.firstTimestamp !== '' ? e.firstTimestamp : e.eventTime, nowMs);
}

function lastTime(e: KubeEvent, nowMs: number): number {
  const t0 = e.lastTimestamp !== '' ? seconds(e.lastTimestamp, nowMs) : 0;
  const t1 = e.series ? seconds(e.series.lastObservedTime, nowMs) : 0;
  if (t0 === 0 && t1 === 0) return Math.floor(nowMs / 1000);
  return Math.max(t0, t1);
}

function countOf(e: KubeEvent): number {
  if (e.count > 0) return e.count;
  if (e.series) return e.series.count;
  return 1;
}

export function eventKey(e: KubeEvent): string {
  return createHash('md5').update(`${e.reason}/${e.involvedObject.kind}/${e.involvedObject.namespace}/${e.involvedObject.name}/${e.uid}`).digest('hex');
}

interface Slot {
  event: KubeEvent;
  left: number;
  right: number;
}

/** The reference's recorder: counts per key and window. */
export class Recorder {
  readonly #startedS: number;
  readonly #labels: readonly Readonly<Record<string, string>>[];
  readonly #now: () => number;
  readonly #set = new Map<string, Slot>();
  received = 0;
  cleaned = 0;

  constructor(startedMs: number, labels: readonly Readonly<Record<string, string>>[], now: () => number) {
    this.#startedS = Math.floor(startedMs / 1000);
    this.#labels = labels;
    this.#now = now;
  }

  recv(e: KubeEvent): void {
    this.received++;
    if (e.firstTimestamp === '' && e.lastTimestamp === '' && e.eventTime === '') return;
    const h = eventKey(e);
    const slot = this.#set.get(h);
    if (!slot) {
      const n = countOf(e);
      const now = this.#now();
      if (firstTime(e, now) > this.#startedS) this.#set.set(h, { event: e, left: 0, right: n });
      else if (lastTime(e, now) > this.#startedS) this.#set.set(h, { event: e, left: n - 1, right: n });
      // Neither first nor last seen since the start: only later increments count (left = right = its count;
      // a relist within the window then adds nothing, as a watch update with a higher count adds the difference).
      else this.#set.set(h, { event: e, left: n, right: n });
      return;
    }
    slot.right = countOf(e);
    slot.event = { ...slot.event, message: e.message, lastTimestamp: e.lastTimestamp };
  }

  /** Closes the window: a record per key with new occurrences; keys without are dropped. */
  window(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const [key, slot] of this.#set) {
      const cnt = slot.right - slot.left;
      slot.left = slot.right;
      if (cnt <= 0) {
        this.#set.delete(key);
        this.cleaned++;
        continue;
      }
      out.push(this.record(slot.event, cnt));
    }
    return out;
  }

  record(e: KubeEvent, count: number): Record<string, unknown> {
    const dimension: Record<string, string> = {
      kind: e.involvedObject.kind,
      namespace: e.involvedObject.namespace,
      name: e.involvedObject.name,
      apiVersion: e.involvedObject.apiVersion,
      uid: e.uid,
      host: e.source.host,
      type: e.type,
    };
    const rel = e.involvedObject.kind.toLowerCase();
    if (!(rel in dimension)) dimension[rel] = e.involvedObject.name;
    for (const l of this.#labels) Object.assign(dimension, l);
    return {
      event_name: e.reason,
      target: e.source.component !== '' ? e.source.component : 'kubelet',
      event: { content: e.message, count },
      dimension,
      timestamp: lastTime(e, this.#now()) * 1000,
    };
  }
}

/**
 * @kubernetes/client-node, loaded on first use: importing it costs ~65 MB of resident memory, which every
 * agent would pay at start-up (the registry imports every task type) whether or not it watches events.
 */
let clientNode: Promise<typeof K8s> | undefined;
export function loadClientNode(): Promise<typeof K8s> {
  clientNode ??= import('@kubernetes/client-node');
  return clientNode;
}

/** The KubeConfig of the task's API source. */
export function kubeConfigOf(c: KubeEventConfig, k8s: typeof K8s): K8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  if (c.inCluster) kc.loadFromCluster();
  else if (c.kubeconfig !== '') kc.loadFromFile(c.kubeconfig);
  else {
    kc.loadFromOptions({
      // client-node refuses plain http unless TLS verification is off (there is no TLS to verify then)
      clusters: [{ name: 'agent', server: c.apiServer, skipTLSVerify: c.insecureSkipVerify || c.apiServer.startsWith('http:') }],
      users: [{ name: 'agent', ...(c.bearerToken !== '' ? { token: c.bearerToken } : {}) }],
      contexts: [{ name: 'agent', cluster: 'agent', user: 'agent' }],
      currentContext: 'agent',
    });
  }
  return kc;
}

class GoneError extends Error {}

class KubeEventTask implements Task<KubeEventConfig> {
  readonly config: KubeEventConfig;
  /** Lists made (tests: a 410 must cause a relist). */
  lists = 0;

  constructor(config: KubeEventConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const log = ctx.logger.child({ task_type: 'kubeevent', task_id: c.taskId });
    const recorder = new Recorder(ctx.now(), c.labels, () => ctx.now());
    let pending: Record<string, unknown>[] = [];
    let sent = 0;
    const flush = async (): Promise<void> => {
      while (pending.length > 0) {
        const data = pending.slice(0, c.batch);
        pending = pending.slice(c.batch);
        const out: EventOutput = { kind: 'event', eventType: 'kubeevent', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, timestampMs: ctx.now(), cmdbLevel: false, body: { dataid: c.dataId, data } };
        await ctx.emit(out);
        sent += data.length;
      }
    };
    const upMetrics = async (): Promise<void> => {
      if (c.upMetricsDataId <= 0) return;
      const dims: Record<string, string> = { task_id: String(c.taskId), bk_collect_type: 'kubeevent', bk_biz_id: String(c.bkBizId) };
      for (const l of c.labels) Object.assign(dims, l);
      await ctx.emit({
        kind: 'metrics',
        eventType: 'kubeevent',
        dataId: c.upMetricsDataId,
        bkBizId: c.bkBizId,
        taskId: c.taskId,
        target: '',
        records: [{ timestamp: ctx.now(), metrics: { bkm_kubeevent_receive_events: recorder.received, bkm_kubeevent_report_events: sent, bkm_kubeevent_cleaned_events: recorder.cleaned }, dimensions: dims }],
      });
    };
    const stops: (() => Promise<void>)[] = [];
    if (c.tailFiles.length > 0) {
      const input = sharedInput(ctx.state, ctx.logger);
      const id = `kubeevent:${c.ident}:${Math.random().toString(36).slice(2)}`;
      const unsubscribe = input.subscribe({
        id,
        paths: c.tailFiles,
        exclude: [],
        encoding: 'utf-8',
        closeInactiveMs: 0,
        retainFileBytes: 0,
        onLines: (_file, lines) => {
          for (const l of lines) {
            if (l.trim() === '') continue;
            try {
              recorder.recv(toKubeEvent(JSON.parse(l)));
            } catch (err) {
              log.debug('not a Kubernetes event line', { err: (err as Error).message });
            }
          }
          input.commit(id);
        },
      });
      stops.push(unsubscribe);
    }
    const apiLoop = c.inCluster || c.kubeconfig !== '' || c.apiServer !== '' ? this.#watchLoop(ctx, recorder, log) : Promise.resolve();
    let nextWindow = ctx.now() + c.intervalMs;
    let nextFlush = ctx.now() + c.flushMs;
    let nextUp = ctx.now() + c.upMetricsPeriodMs;
    try {
      while (!ctx.signal.aborted) {
        const wait = Math.min(nextWindow, nextFlush, nextUp) - ctx.now();
        try {
          await ctx.sleep(Math.max(0, wait));
        } catch {
          break;
        }
        const now = ctx.now();
        if (now >= nextWindow) {
          pending.push(...recorder.window());
          nextWindow += c.intervalMs;
          if (pending.length >= c.batch) await flush();
        }
        if (now >= nextFlush) {
          await flush();
          nextFlush = now + c.flushMs;
        }
        if (now >= nextUp) {
          await upMetrics();
          nextUp = now + c.upMetricsPeriodMs;
        }
      }
    } finally {
      await apiLoop;
      for (const stop of stops) await stop();
      await flush().catch((err: unknown) => log.warn('final kubeevent flush failed', { err: (err as Error).message }));
    }
  }

  /** List, then watch from the list's version; resume on a closed watch, relist on 410 Gone. */
  async #watchLoop(ctx: TaskContext, recorder: Recorder, log: TaskContext['logger']): Promise<void> {
    const c = this.config;
    let kc: K8s.KubeConfig;
    const k8s = await loadClientNode();
    try {
      kc = kubeConfigOf(c, k8s);
    } catch (err) {
      log.error('kubernetes credentials unusable; API watch disabled', { err: (err as Error).message });
      return;
    }
    const api = kc.makeApiClient(k8s.CoreV1Api);
    const watch = new k8s.Watch(kc);
    const path = c.namespace !== '' ? `/api/v1/namespaces/${encodeURIComponent(c.namespace)}/events` : '/api/v1/events';
    let version = '';
    while (!ctx.signal.aborted) {
      try {
        if (version === '') {
          this.lists++;
          const list = c.namespace !== '' ? await api.listNamespacedEvent({ namespace: c.namespace }) : await api.listEventForAllNamespaces();
          for (const item of list.items) recorder.recv(toKubeEvent(item));
          version = list.metadata?.resourceVersion ?? '';
          log.debug('kubernetes events listed', { items: list.items.length, resource_version: version });
        }
        await new Promise<void>((resolve, reject) => {
          let controller: AbortController | undefined;
          const onAbort = (): void => controller?.abort();
          ctx.signal.addEventListener('abort', onAbort, { once: true });
          const finish = (err: unknown): void => {
            ctx.signal.removeEventListener('abort', onAbort);
            if (err) reject(err instanceof Error ? err : new Error(JSON.stringify(err)));
            else resolve();
          };
          watch
            .watch(
              path,
              { resourceVersion: version, allowWatchBookmarks: true },
              (type: string, object: unknown) => {
                if (type === 'ERROR') {
                  const status = obj(object);
                  if (status.code === 410) {
                    controller?.abort();
                    finish(new GoneError(str(status.message)));
                  }
                  return;
                }
                const rv = str(obj(obj(object).metadata).resourceVersion);
                if (rv !== '') version = rv;
                if (type === 'ADDED' || type === 'MODIFIED') recorder.recv(toKubeEvent(object));
              },
              (err: unknown) => finish(err),
            )
            .then(
              (ctl) => {
                controller = ctl;
                if (ctx.signal.aborted) ctl.abort();
              },
              (err: unknown) => finish(err),
            );
        });
      } catch (err) {
        if (ctx.signal.aborted) return;
        const code = (err as { statusCode?: number; code?: number }).statusCode ?? (err as { code?: number }).code;
        if (err instanceof GoneError || code === 410) {
          log.info('watch expired (410 Gone); listing again', { resource_version: version });
          version = '';
          continue;
        }
        log.warn('kubernetes event watch failed; retrying', { err: (err as Error).message });
        if (code !== undefined && code >= 400) version = '';
        try {
          await ctx.sleep(c.retryMs);
        } catch {
          return;
        }
      }
    }
  }
}

function parseKubeEvent(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[]): KubeEventConfig {
  const f = fields(raw, problems, '');
  const interval = f.durationMs('interval', { default: 0, min: 0 });
  return {
    ...base,
    intervalMs: interval > 0 ? interval : 60_000,
    tailFiles: f.strings('tail_files'),
    upMetricsDataId: f.int('upmetrics_dataid', { default: 0 }),
    inCluster: f.bool('in_cluster', false),
    kubeconfig: f.str('kubeconfig'),
    apiServer: f.str('api_server'),
    bearerToken: f.str('bearer_token'),
    insecureSkipVerify: f.bool('insecure_skip_verify', false),
    namespace: f.str('namespace'),
    batch: 100,
    flushMs: f.durationMs('flush_interval', { default: 3_000, min: 1 }),
    upMetricsPeriodMs: f.durationMs('upmetrics_period', { default: 60_000, min: 1 }),
    retryMs: f.durationMs('retry_interval', { default: 5_000, min: 1 }),
  };
}

export const kubeeventType: TaskType<KubeEventConfig> = {
  type: 'kubeevent',
  scheduler: 'listen',
  shape: 'single',
  section: 'kubeevent_task',
  enabled: (c) => c.tailFiles.length > 0 || c.inCluster || c.kubeconfig !== '' || c.apiServer !== '',
  parse: (raw, base, problems) => parseKubeEvent(raw, base, problems),
  create: (config) => new KubeEventTask(config),
};
