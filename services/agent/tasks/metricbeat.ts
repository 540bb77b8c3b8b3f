/**
 * `metricbeat` (reference §A5.8, tasks/metricbeat, module/prometheus/collector; listen scheduler): scrapes
 * Prometheus endpoints every period and publishes the samples as time series.
 *
 * Config: the task's `module` section as the reference's template writes it (`module: prometheus`,
 * `metricsets: ["collector"]`, `hosts`, `metrics_path`, `namespace`, `timeout`, `headers`, `bearer_token` /
 * `bearer_file`, `username` / `password` or URL user info, `ssl.{verification_mode, certificate_authorities,
 * certificate, key}`, `proxy_url` (http targets), `query`, `diff_metrics`, `metric_relabel_configs` (with the
 * reference's extra `rate` / `delta` actions), `metric_relabel_remote` (+ `_timeout`), `metric_replace`,
 * `dimension_replace`, `disable_custom_timestamp`, `normalize_metric_name`), plus `custom_report` on the
 * task. Global: `metrics_batch_size` (1 024), `max_metric_batches` (5 000), `metricbeat_align_ts`,
 * `metricbeat_spread_workload`, `keep_one_dimension` (`metricbeat_workers` is accepted: parsing is one
 * stream here).
 *
 * A scrape: GET with `Accept: application/openmetrics-text,*\/*` and `X-BK-AGENT: bkmonitorbeat` (gzip
 * accepted); the status code is not checked (as in the reference: an error page shows up as parse errors).
 * The body is parsed as it streams in — no temp file (errata 19: the reference's default, temp-file path
 * appends `bkm_metricbeat_scrape_size_bytes` and `bkm_metricbeat_scrape_duration_seconds`; they are kept
 * here, measured on the stream, so `bkm_metricbeat_scrape_line` counts exactly the endpoint's records and
 * code 1501 cannot occur). Per line: normalize the name → relabel (not the `bkm_metricbeat_*` series) →
 * `dimension_replace` copies → delta / rate → `metric_replace` copies. Then `bkm_metricbeat_scrape_line`,
 * `bkm_metricbeat_endpoint_up{code, code_name}` (0 Ok, 2502 if any line failed) and
 * `bkm_metricbeat_handle_duration_seconds`. A failed request gives only `endpoint_up{code="2501"}`.
 *
 * Output: records in MetricBatches of `metrics_batch_size` samples (at most `max_metric_batches` per scrape;
 * the rest is dropped and logged), each sample repeated per label group (a label-group key that clashes
 * with a sample label is written as `exported_<key>`, the reference's custom-report rule, used for both
 * shapes), timestamp = the sample's own time in seconds (or the scrape time with
 * `disable_custom_timestamp`) × 1 000, target = the endpoint URL (user info removed). After each scrape a
 * gather-up record with code 0 and value = batches + 1 (errata 7: always 0, failures show only in
 * `endpoint_up`).
 */
import { readFileSync } from 'node:fs';
import type * as Http from 'node:http';
import https from 'node:https';
import { createRequire } from 'node:module';
import { createGunzip, createInflate } from 'node:zlib';
import type { ConfigProblem } from '../../common/errors.ts';
import { fields, isMap, type RawMap } from '../config-fields.ts';
import { parseSampleLine, type Sample } from '../exposition/parse.ts';
import { parseRelabelConfig, relabel, type RelabelConfig } from '../exposition/relabel.ts';
import { DEFAULT_TIME_OFFSET_MS, nsToUnit, resolveTimestampNs } from '../exposition/timestamp.ts';
import type { BaseTaskConfig, MetricsOutput, Task, TaskContext, TaskType } from '../task.ts';
import { Codes, emitGatherUp, type NamedCode } from './gather-up.ts';
import { metricsBatchSize } from './script.ts';

// Through require: an ESM import of `node:http` loads undici (probe/http-client.ts).
const http = createRequire(import.meta.url)('node:http') as typeof Http;

export const UP = 'bkm_metricbeat_endpoint_up';
export const SCRAPE_SIZE = 'bkm_metricbeat_scrape_size_bytes';
export const SCRAPE_DURATION = 'bkm_metricbeat_scrape_duration_seconds';
export const SCRAPE_LINE = 'bkm_metricbeat_scrape_line';
export const HANDLE_DURATION = 'bkm_metricbeat_handle_duration_seconds';
const INNER = new Set([UP, SCRAPE_SIZE, SCRAPE_DURATION, SCRAPE_LINE, HANDLE_DURATION]);

export const ACCEPT = 'application/openmetrics-text,*/*';

export interface Endpoint {
  /** The URL requested (query applied). */
  readonly url: string;
  /** The URL without user info, as the reference's SanitizedURI (target and logs). */
  readonly sanitized: string;
  readonly username: string;
  readonly password: string;
}

export interface TlsSettings {
  readonly insecure: boolean;
  readonly ca?: string[];
  readonly cert?: string;
  readonly key?: string;
}

export interface RateRule {
  readonly source: string;
  readonly destination: string;
}

export interface MetricbeatConfig extends BaseTaskConfig {
  readonly endpoints: readonly Endpoint[];
  readonly namespace: string;
  readonly scrapeTimeoutMs: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly bearerToken: string;
  readonly bearerFile: string;
  readonly username: string;
  readonly password: string;
  readonly tls: TlsSettings;
  readonly proxyUrl: string;
  readonly relabels: readonly RelabelConfig[];
  readonly relabelRemote: string;
  readonly relabelRemoteTimeoutMs: number;
  /** Delta metric names (diff_metrics, or `delta` relabel actions); exclusive with rate. */
  readonly delta: readonly string[];
  readonly rate: readonly RateRule[];
  readonly metricReplace: Readonly<Record<string, string>>;
  readonly dimensionReplace: Readonly<Record<string, string>>;
  readonly disableCustomTimestamp: boolean;
  readonly normalizeMetricName: boolean;
  readonly customReport: boolean;
}

/** One produced sample. */
export interface PromRecord {
  key: string;
  labels: Record<string, string>;
  value: number;
  /** Seconds (the reference's "s" handler), absent with disable_custom_timestamp. */
  timestamp?: number;
  exemplar?: Record<string, string | number>;
}

// ---------------------------------------------------------------------------------------------------
// Config

/** The beats URL host parser: default scheme http, path from the host or `metrics_path` or /metrics. */
export function endpointOf(host: string, metricsPath: string, query: Readonly<Record<string, readonly string[]>>): Endpoint {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(host) ? host : `http://${host}`;
  const u = new URL(withScheme);
  if (u.pathname === '' || u.pathname === '/') u.pathname = metricsPath !== '' ? metricsPath : '/metrics';
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  u.username = '';
  u.password = '';
  const entries = Object.entries(query);
  if (entries.length > 0) {
    const params = new URLSearchParams();
    for (const [k, vs] of entries.sort(([a], [b]) => a.localeCompare(b))) for (const v of vs) params.append(k, v);
    u.search = params.toString();
  }
  return { url: u.toString(), sanitized: u.toString(), username, password };
}

function normalizeName(s: string): string {
  return s.split(/[^\p{L}\p{N}_]+/u).filter((p) => p !== '').join('_');
}

function readQuery(v: unknown, problem: (msg: string) => void): Record<string, string[]> {
  if (v === undefined || v === null) return {};
  if (!isMap(v)) {
    problem('must be a mapping of lists');
    return {};
  }
  const out: Record<string, string[]> = {};
  for (const [k, x] of Object.entries(v)) out[k] = (Array.isArray(x) ? x : [x]).map((i) => String(i));
  return out;
}

function parseMetricbeat(raw: RawMap, base: BaseTaskConfig, problems: ConfigProblem[]): MetricbeatConfig {
  const f = fields(raw, problems, '');
  if (!isMap(raw.module)) f.problem('module', 'is required (a mapping)');
  const m = f.sub('module');
  const moduleName = m.str('module', { default: 'prometheus' });
  if (moduleName !== 'prometheus') m.problem('module', `only the prometheus module is supported, got ${JSON.stringify(moduleName)}`);
  const metricsets = m.strings('metricsets');
  if (metricsets.length > 0 && !metricsets.includes('collector')) m.problem('metricsets', 'only the collector metricset is supported');
  const hosts = m.strings('hosts');
  if (isMap(raw.module) && hosts.length === 0) m.problem('hosts', 'needs at least one endpoint');
  const namespace = m.str('namespace');
  if (isMap(raw.module) && namespace === '') m.problem('namespace', 'is required');
  const query = readQuery(m.raw.query, (msg) => m.problem('query', msg));
  const endpoints: Endpoint[] = [];
  for (const [i, h] of hosts.entries()) {
    try {
      endpoints.push(endpointOf(h.trim(), m.str('metrics_path'), query));
    } catch (err) {
      m.problem(`hosts[${i}]`, `is not a URL: ${(err as Error).message}`);
    }
  }
  const relabels: RelabelConfig[] = [];
  const rate: RateRule[] = [];
  const relabelDelta: string[] = [];
  const rawRelabels = m.raw.metric_relabel_configs;
  if (rawRelabels !== undefined && rawRelabels !== null) {
    if (!Array.isArray(rawRelabels)) m.problem('metric_relabel_configs', 'must be a list');
    else
      for (const [i, r] of rawRelabels.entries()) {
        if (!isMap(r)) {
          m.problem(`metric_relabel_configs[${i}]`, 'must be a mapping');
          continue;
        }
        const text = (v: unknown): string => (typeof v === 'string' || typeof v === 'number' ? String(v) : '');
        const action = text(r.action).toLowerCase();
        const sources = Array.isArray(r.source_labels) ? r.source_labels.map((s) => String(s)) : [];
        if (action === 'rate') {
          if (sources.length === 1 && sources[0] === '__name__') rate.push({ source: text(r.regex), destination: text(r.replacement) });
          continue;
        }
        if (action === 'delta') {
          relabelDelta.push(...sources);
          continue;
        }
        try {
          relabels.push(parseRelabelConfig(r));
        } catch (err) {
          m.problem(`metric_relabel_configs[${i}]`, (err as Error).message);
        }
      }
  }
  const diff = m.strings('diff_metrics');
  const remoteTimeoutMs = m.durationMs('metric_relabel_remote_timeout', { default: 10_000, min: 0 });
  const ssl = m.sub('ssl');
  const verification = ssl.str('verification_mode', { default: 'full', values: ['none', 'full', 'certificate', 'strict'] });
  const readFiles = (paths: string[], key: string): string[] | undefined => {
    if (paths.length === 0) return undefined;
    const out: string[] = [];
    for (const p of paths) {
      try {
        out.push(readFileSync(p, 'utf8'));
      } catch (err) {
        ssl.problem(key, `cannot read ${p}: ${(err as Error).message}`);
      }
    }
    return out;
  };
  const ca = readFiles(ssl.strings('certificate_authorities'), 'certificate_authorities');
  const cert = readFiles(ssl.strings('certificate'), 'certificate')?.[0];
  const key = readFiles(ssl.strings('key'), 'key')?.[0];
  return {
    ...base,
    endpoints,
    namespace,
    scrapeTimeoutMs: m.durationMs('timeout', { default: base.timeoutMs > 0 ? base.timeoutMs : 10_000, min: 1 }),
    headers: m.stringMap('headers'),
    bearerToken: m.str('bearer_token'),
    bearerFile: m.str('bearer_file'),
    username: m.str('username'),
    password: m.str('password'),
    tls: { insecure: verification === 'none', ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) },
    proxyUrl: m.str('proxy_url'),
    relabels,
    relabelRemote: m.str('metric_relabel_remote'),
    relabelRemoteTimeoutMs: remoteTimeoutMs,
    delta: diff.length > 0 ? diff : rate.length > 0 ? [] : relabelDelta,
    rate: diff.length > 0 ? [] : rate,
    metricReplace: m.stringMap('metric_replace'),
    dimensionReplace: m.stringMap('dimension_replace'),
    disableCustomTimestamp: m.bool('disable_custom_timestamp', false),
    normalizeMetricName: m.bool('normalize_metric_name', false),
    customReport: f.bool('custom_report', false),
  };
}

// ---------------------------------------------------------------------------------------------------
// Processing (reference produceEvents / getEventFromPromEvent / actionOperator)

function seriesKey(labels: Readonly<Record<string, string>>): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}\xff${labels[k] as string}\xff`)
    .join('');
}

/** The delta / rate state of one task (reference actionOperator), kept across scrapes. */
export class ActionState {
  readonly #delta: ReadonlySet<string>;
  readonly #rate: ReadonlyMap<string, string>;
  readonly #values = new Map<string, { v: number; ts: number }>();
  constructor(delta: readonly string[], rate: readonly RateRule[]) {
    this.#delta = new Set(delta);
    this.#rate = new Map(rate.map((r) => [r.source, r.destination]));
  }
  get active(): boolean {
    return this.#delta.size > 0 || this.#rate.size > 0;
  }
  /**
   * `[metric, value]` to send, or undefined to drop the sample. Delta: the first sample of a series is
   * dropped, then value = current − previous. Rate: returns the new metric with Δvalue/Δseconds (first
   * sample dropped; a zero interval drops it too, where the reference would divide by zero).
   */
  update(metric: string, series: string, ts: number, value: number): [string, number] | undefined {
    if (this.#delta.has(metric)) {
      const k = `${metric}\x00${series}`;
      const prev = this.#values.get(k);
      this.#values.set(k, { v: value, ts });
      return prev ? [metric, value - prev.v] : undefined;
    }
    const dest = this.#rate.get(metric);
    if (dest === undefined) return [metric, value];
    const k = `${metric}\x00${series}`;
    const prev = this.#values.get(k);
    this.#values.set(k, { v: value, ts });
    if (!prev || ts === prev.ts) return undefined;
    return [dest, (value - prev.v) / (ts - prev.ts)];
  }
}

export interface Processor {
  config: MetricbeatConfig;
  actions: ActionState;
  remoteRelabels: readonly RelabelConfig[];
  /** Scrape time (ms) used for samples without a timestamp. */
  nowMs: number;
}

/** The records of one sample line (empty when dropped); throws on a parse error or a NaN/Inf value. */
export function produce(p: Processor, line: string): PromRecord[] {
  const c = p.config;
  const s: Sample = parseSampleLine(line);
  if (!Number.isFinite(s.value)) throw new Error(`value is NaN or Inf: ${line}`);
  let key = c.normalizeMetricName ? normalizeName(s.name) : s.name;
  const series = seriesKey(s.labels);
  let labels: Record<string, string> = s.labels;
  if (c.relabels.length > 0 && !INNER.has(key)) {
    let out = relabel({ ...labels, __name__: key }, c.relabels);
    if (!out) return [];
    if (p.remoteRelabels.length > 0) {
      out = relabel(out, p.remoteRelabels);
      if (!out) return [];
    }
    key = out.__name__ ?? '';
    delete out.__name__;
    if (key === '') return [];
    labels = out;
  }
  if (Object.keys(c.dimensionReplace).length > 0) {
    const copies: Record<string, string> = {};
    for (const [k, v] of Object.entries(labels)) {
      const target = c.dimensionReplace[k];
      if (target !== undefined) copies[target] = v;
    }
    labels = { ...labels, ...copies };
  }
  const tsS = nsToUnit(resolveTimestampNs(s.timestamp, p.nowMs, DEFAULT_TIME_OFFSET_MS), 's');
  const rec: PromRecord = { key, labels, value: s.value };
  if (!c.disableCustomTimestamp) rec.timestamp = tsS;
  if (s.exemplar) {
    const traceId = s.exemplar.labels.traceID || s.exemplar.labels.trace_id || '';
    const spanId = s.exemplar.labels.spanID || s.exemplar.labels.span_id || '';
    if (traceId !== '' || spanId !== '') {
      const ex: Record<string, string | number> = {};
      if (traceId !== '') ex.bk_trace_id = traceId;
      if (spanId !== '') ex.bk_span_id = spanId;
      ex.bk_trace_timestamp = nsToUnit(resolveTimestampNs(s.exemplar.timestamp, p.nowMs, DEFAULT_TIME_OFFSET_MS), 's');
      ex.bk_trace_value = s.exemplar.value;
      rec.exemplar = ex;
    }
  }
  const out: PromRecord[] = [];
  if (!p.actions.active) out.push(rec);
  else {
    const r = p.actions.update(key, series, tsS, s.value);
    if (!r) return [];
    if (r[0] === key) out.push({ ...rec, value: r[1] });
    else out.push(rec, { ...rec, key: r[0], value: r[1] });
  }
  if (Object.keys(c.metricReplace).length > 0) {
    const n = out.length;
    for (let i = 0; i < n; i++) {
      const target = c.metricReplace[(out[i] as PromRecord).key];
      if (target !== undefined) out.push({ ...(out[i] as PromRecord), key: target });
    }
  }
  return out;
}

/** keep_one_dimension for the prometheus module: the first sample per (metric, label names). */
export function keepOneDimensionRecords(records: readonly PromRecord[]): PromRecord[] {
  const seen = new Set<string>();
  return records.filter((r) => {
    const k = [...Object.keys(r.labels), r.key].sort().join('\xff');
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** MetricBatch records of samples, per label group, with the reference's `exported_` clash rule. */
export function toMetricRecords(config: BaseTaskConfig, samples: readonly PromRecord[], scrapeSeconds: number): MetricsOutput['records'][number][] {
  const groups = config.labels.length > 0 ? config.labels : [{}];
  const out: MetricsOutput['records'][number][] = [];
  for (const s of samples) {
    const timestamp = (s.timestamp !== undefined && s.timestamp > 0 ? s.timestamp : scrapeSeconds) * 1000;
    for (const group of groups) {
      const dims: Record<string, string> = { ...s.labels };
      for (const [k, v] of Object.entries(group)) {
        if (k in s.labels) {
          const nk = `exported_${k}`;
          if (!(nk in s.labels) && !(nk in group)) dims[nk] = v;
        } else dims[k] = v;
      }
      if (s.exemplar) for (const [k, v] of Object.entries(s.exemplar)) dims[k] = String(v);
      out.push({ timestamp, metrics: { [s.key]: s.value }, dimensions: dims });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// HTTP

export interface ScrapeResult {
  ok: boolean;
  error?: string;
  bytes: number;
  durationS: number;
}

function authHeader(c: MetricbeatConfig, e: Endpoint): string | undefined {
  let auth: string | undefined;
  if (c.bearerToken !== '') auth = `Bearer ${c.bearerToken}`;
  else if (c.bearerFile !== '') auth = `Bearer ${readFileSync(c.bearerFile, 'utf8')}`;
  if (c.username !== '' || c.password !== '') auth = `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
  if (auth === undefined && (e.username !== '' || e.password !== '')) auth = `Basic ${Buffer.from(`${e.username}:${e.password}`).toString('base64')}`;
  return auth;
}

/**
 * GETs the endpoint and feeds each body line to `onLine` as it arrives. Resolves when the body has been
 * read (ok) or the request failed (not ok: connection refused, timeout, TLS, ...).
 */
export function scrape(c: MetricbeatConfig, e: Endpoint, signal: AbortSignal, onLine: (line: string) => void): Promise<ScrapeResult> {
  const started = performance.now();
  return new Promise<ScrapeResult>((resolve) => {
    let done = false;
    let bytes = 0;
    const finish = (r: Omit<ScrapeResult, 'durationS' | 'bytes'>): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve({ ...r, bytes, durationS: (performance.now() - started) / 1000 });
    };
    const headers: Record<string, string> = { ...c.headers, Accept: ACCEPT, 'X-BK-AGENT': 'bkmonitorbeat', 'Accept-Encoding': 'gzip' };
    let auth: string | undefined;
    try {
      auth = authHeader(c, e);
    } catch (err) {
      finish({ ok: false, error: (err as Error).message });
      return;
    }
    if (auth !== undefined) headers.Authorization = auth;
    const target = new URL(e.url);
    const isHttps = target.protocol === 'https:';
    let reqUrl: URL = target;
    let path = `${target.pathname}${target.search}`;
    if (c.proxyUrl !== '' && !isHttps) {
      reqUrl = new URL(c.proxyUrl);
      path = target.toString();
      headers.Host = target.host;
    }
    const mod = isHttps ? https : http;
    const req = mod.request(
      {
        protocol: reqUrl.protocol,
        hostname: reqUrl.hostname.replace(/^\[|\]$/g, ''),
        port: reqUrl.port === '' ? undefined : Number(reqUrl.port),
        path,
        method: 'GET',
        headers,
        agent: false,
        ...(isHttps ? { rejectUnauthorized: !c.tls.insecure, ...(c.tls.ca ? { ca: c.tls.ca } : {}), ...(c.tls.cert ? { cert: c.tls.cert } : {}), ...(c.tls.key ? { key: c.tls.key } : {}) } : {}),
      },
      (res) => {
        const enc = String(res.headers['content-encoding'] ?? '').toLowerCase();
        const body = enc === 'gzip' ? res.pipe(createGunzip()) : enc === 'deflate' ? res.pipe(createInflate()) : res;
        res.on('data', (d: Buffer) => (bytes += d.length));
        let rest = '';
        body.setEncoding('utf8');
        body.on('data', (chunk: string) => {
          const s = rest === '' ? chunk : rest + chunk;
          let start = 0;
          for (;;) {
            const nl = s.indexOf('\n', start);
            if (nl < 0) break;
            onLine(s.slice(start, nl));
            start = nl + 1;
          }
          rest = s.slice(start);
        });
        body.on('end', () => {
          if (rest !== '') onLine(rest);
          finish({ ok: true });
        });
        body.on('error', (err: Error) => finish({ ok: false, error: err.message }));
        res.on('error', (err: Error) => finish({ ok: false, error: err.message }));
      },
    );
    const onAbort = (): void => {
      req.destroy(new Error('aborted'));
    };
    const timer = setTimeout(() => req.destroy(new Error(`timeout after ${c.scrapeTimeoutMs} ms`)), c.scrapeTimeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    req.on('error', (err) => finish({ ok: false, error: err.message }));
    req.end();
  });
}

async function fetchRemoteRelabels(c: MetricbeatConfig): Promise<RelabelConfig[]> {
  const res = await fetch(c.relabelRemote, { signal: AbortSignal.timeout(c.relabelRemoteTimeoutMs) });
  const list: unknown = await res.json();
  if (!Array.isArray(list)) throw new Error('remote relabel configs must be a JSON list');
  const out: RelabelConfig[] = [];
  for (const r of list) {
    if (!isMap(r)) continue;
    try {
      out.push(
        parseRelabelConfig({
          source_labels: r.sourceLabels,
          separator: r.separator === '' ? undefined : r.separator,
          regex: r.regex,
          modulus: r.modulus,
          target_label: r.targetLabel,
          replacement: r.replacement,
          action: r.action === '' || r.action === undefined ? 'replace' : r.action,
        }),
      );
    } catch {
      // the reference skips rules whose regex does not compile
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The task

/** Seconds to wait for `metricbeat_align_ts` (reference alignTs: uses the second of the minute). */
export function alignDelaySeconds(periodS: number, secondOfMinute: number): number {
  const p = periodS <= 0 ? 1 : periodS;
  const n = p - (secondOfMinute % p);
  return n >= 60 || n === p ? 0 : n;
}

class MetricbeatTask implements Task<MetricbeatConfig> {
  readonly config: MetricbeatConfig;
  readonly #actions: ActionState[];
  #remote: RelabelConfig[] = [];

  constructor(config: MetricbeatConfig) {
    this.config = config;
    this.#actions = config.endpoints.map(() => new ActionState(config.delta, config.rate));
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const raw = ctx.global.raw;
    const periodS = Math.max(1, Math.round(c.periodMs / 1000));
    if (raw.metricbeat_align_ts === true) {
      const n = alignDelaySeconds(periodS, new Date(ctx.now()).getUTCSeconds());
      if (n > 0) await ctx.sleep(n * 1000);
    } else if (raw.metricbeat_spread_workload === true) {
      const mod = Math.floor(Math.random() * 1e9) % periodS;
      if (mod > 0) await ctx.sleep((Math.floor(mod / 2) + 1) * 1000);
    }
    const loops = c.endpoints.map((e, i) => this.#loop(ctx, e, this.#actions[i] as ActionState));
    await Promise.all(loops);
  }

  async #loop(ctx: TaskContext, e: Endpoint, actions: ActionState): Promise<void> {
    let next = ctx.now();
    while (!ctx.signal.aborted) {
      try {
        await this.scrapeOnce(ctx, e, actions);
      } catch (err) {
        if (ctx.signal.aborted) return;
        ctx.logger.warn('metricbeat scrape failed', { task_id: this.config.taskId, url: e.sanitized, err: (err as Error).message });
      }
      next += this.config.periodMs;
      const wait = next - ctx.now();
      if (wait < 0) next = ctx.now();
      try {
        await ctx.sleep(Math.max(0, wait));
      } catch {
        return;
      }
    }
  }

  /** One scrape of one endpoint: batches, self series and the gather-up record. */
  async scrapeOnce(ctx: TaskContext, e: Endpoint, actions: ActionState): Promise<void> {
    const c = this.config;
    const log = ctx.logger.child({ task_type: 'metricbeat', task_id: c.taskId, url: e.sanitized });
    const nowMs = ctx.now();
    const scrapeSeconds = Math.floor(nowMs / 1000);
    const handleStart = performance.now();
    if (c.relabelRemote !== '') {
      try {
        this.#remote = await fetchRemoteRelabels(c);
      } catch (err) {
        log.warn('remote relabel configs unavailable; keeping the previous ones', { err: (err as Error).message });
      }
    }
    const p: Processor = { config: c, actions, remoteRelabels: this.#remote, nowMs };
    const batchSize = metricsBatchSize(ctx.global.raw);
    const maxBatchesRaw = Number(ctx.global.raw.max_metric_batches);
    const maxBatches = Number.isInteger(maxBatchesRaw) && maxBatchesRaw > 0 ? maxBatchesRaw : 5000;
    let collecting = ctx.global.keepOneDimension;
    let pending: PromRecord[] = [];
    const all: PromRecord[] = [];
    const ready: PromRecord[][] = [];
    let batches = 0;
    let dropped = 0;
    let lines = 0;
    let failed = 0;
    let firstError: string | undefined;
    const push = (recs: PromRecord[]): void => {
      for (const r of recs) {
        if (collecting) {
          all.push(r);
          continue;
        }
        if (batches >= maxBatches) {
          dropped++;
          continue;
        }
        pending.push(r);
        if (pending.length >= batchSize) {
          ready.push(pending);
          batches++;
          pending = [];
        }
      }
    };
    const line = (text: string): void => {
      if (text.length === 0 || text[0] === '#' || text.trim() === '') return;
      try {
        const recs = produce(p, text);
        lines += recs.length;
        push(recs);
      } catch (err) {
        failed++;
        firstError ??= (err as Error).message;
      }
    };
    const flushReady = async (): Promise<void> => {
      while (ready.length > 0) {
        const b = ready.shift() as PromRecord[];
        await this.#emit(ctx, e, b, scrapeSeconds);
      }
    };
    const res = await scrape(c, e, ctx.signal, line);
    if (ctx.signal.aborted) return;
    if (!res.ok) {
      log.warn('scrape failed', { err: res.error });
      pending = [];
      ready.length = 0;
      batches = 0;
      push(produce(p, upLine(Codes.ConnRefused)));
    } else {
      push(produce(p, `${SCRAPE_SIZE}{} ${res.bytes}`));
      push(produce(p, `${SCRAPE_DURATION}{} ${res.durationS.toFixed(6)}`));
      push(produce(p, `${SCRAPE_LINE}{} ${lines}`));
      if (failed > 0) log.warn('scrape has invalid lines', { bad_lines: failed, first_error: firstError });
      push(produce(p, upLine(failed > 0 ? Codes.InvalidPromFormat : Codes.OK)));
      push(produce(p, `${HANDLE_DURATION}{} ${((performance.now() - handleStart) / 1000).toFixed(6)}`));
    }
    if (collecting) {
      collecting = false;
      push(keepOneDimensionRecords(all));
    }
    if (pending.length > 0) {
      ready.push(pending);
      batches++;
      pending = [];
    }
    await flushReady();
    if (dropped > 0) log.warn('max_metric_batches reached; the rest of the scrape was dropped', { max_batches: maxBatches, dropped });
    await emitGatherUp(ctx, c, Codes.OK, { value: batches + 1 });
  }

  async #emit(ctx: TaskContext, e: Endpoint, samples: readonly PromRecord[], scrapeSeconds: number): Promise<void> {
    const c = this.config;
    await ctx.emit({ kind: 'metrics', eventType: 'metricbeat', dataId: c.dataId, bkBizId: c.bkBizId, taskId: c.taskId, target: e.sanitized, records: toMetricRecords(c, samples, scrapeSeconds) });
  }

  async stop(): Promise<void> {
    this.#remote = [];
  }
}

function upLine(code: NamedCode): string {
  return `${UP}{code="${code.code}",code_name="${code.name}"} 1`;
}

export const metricbeatType: TaskType<MetricbeatConfig> = {
  type: 'metricbeat',
  scheduler: 'listen',
  shape: 'list',
  section: 'metricbeat_task',
  parse: (raw, base, problems) => parseMetricbeat(raw, base, problems),
  create: (config) => new MetricbeatTask(config),
};
