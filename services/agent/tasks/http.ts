/**
 * `http` uptime check (reference tasks/http, §A5.2, errata 4 and 11; child type `http`, template data id
 * 1011). Each step runs in order and independently (a failed step does not stop the next); within a step
 * every (URL, resolved IP) pair is requested concurrently and yields one event. The request itself is
 * probe/http-client.ts; matching is probe/match.ts; target expansion probe/targets.ts.
 *
 * Judgement (reference GatherURL): request build error → 1103; transport error → 1101 when it is the
 * timeout, else 1200 (connection refused, TLS verification, header overflow, too many redirects, ...);
 * status code not in `response_code` → 1202; no `response` configured → success (subject to
 * `available_duration`: code 3); otherwise the body (≤ `buffer_size` bytes, gzip decoded) must match
 * `response_format` → else 1202. A body that cannot be read (including the timeout hitting while reading
 * it) is not judged: status -1, error_code 1, available 0, `message` = the error (errata 4).
 *
 * `status` is the 1-based step index on failure (the reference's `Event.Fail` override); target expansion
 * failures (1213 invalid URL, 1004 DNS, 1211 no IP of the family) use the 0-based index (a quirk kept: on
 * the first step they report status 0 with a non-zero error code); an `available_duration` overrun
 * reports status 1 (the reference's base `Fail` is called there).
 *
 * Concurrency (§A2.6): `ctx.acquire(len(ips))` per URL, given back when that URL's last request ends;
 * when it fails (the run's signal aborted) no further URL or step is started, and the requests already
 * started still report (errata 11). Each request also holds a unit of the agent's socket budget.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields, isMap, type FieldReader } from '../config-fields.ts';
import { customReportOutput, emitSafely, GatherStatus, UptimeEvent, uptimeOutput } from '../probe/event.ts';
import { probesOf } from '../probe/budget.ts';
import { httpProbe, type HttpProbeResponse } from '../probe/http-client.ts';
import { readMatchParams, readNetParams, type MatchParams, type NetParams } from '../probe/net-config.ts';
import { base64Text, base64Value } from '../probe/payload.ts';
import { isStopped, runProbes } from '../probe/run.ts';
import { expandTargets } from '../probe/targets.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { Codes, type NamedCode } from './gather-up.ts';

export interface HttpStep extends MatchParams {
  /** URLs as cleaned (`http://` added when missing); `url_list` wins over `url`. */
  readonly urls: readonly string[];
  readonly method: string;
  readonly headers: readonly (readonly [string, string])[];
  /** Expected status codes (empty = any). */
  readonly responseCodes: readonly number[];
  /** Whether a response body is expected (`response` non-empty). */
  readonly expectsBody: boolean;
}

export interface HttpTaskConfig extends BaseTaskConfig, NetParams {
  readonly steps: readonly HttpStep[];
  readonly proxy?: URL;
  readonly insecureSkipVerify: boolean;
}

/** The reference's Content-Type parser (media type and charset). */
const CONTENT_TYPE = /(?<mediatype>[^;\s]*)\s*;?\s*(?:charset\s*=\s*(?<charset>[^;\s]*)|)\s*;?\s*/;

function withScheme(url: string): string {
  return url.startsWith('http') ? url : `http://${url}`;
}

/** `response_code`: a comma list; entries that are not integers are dropped (reference Atoi). */
export function parseResponseCodes(text: string, list: readonly number[] = []): number[] {
  const out = [...list];
  for (const part of text.split(',')) if (/^[+-]?\d+$/.test(part)) out.push(Number(part));
  return out;
}

function readStep(f: FieldReader): HttpStep {
  const urlList = f.strings('url_list').map(withScheme);
  const url = f.str('url');
  if (urlList.length === 0 && url === '') f.problem('url', 'url or url_list is required');
  const headers: [string, string][] = Object.entries(f.stringMap('headers')).map(([k, v]) => [k, base64Text(v)]);
  const codesList: number[] = [];
  if (f.has('response_code_list')) {
    const raw = f.raw.response_code_list;
    if (Array.isArray(raw)) {
      for (const [i, v] of raw.entries()) {
        if (typeof v === 'number' && Number.isInteger(v)) codesList.push(v);
        else f.problem(`response_code_list[${i}]`, `must be an integer, got ${JSON.stringify(v)}`);
      }
    } else {
      f.problem('response_code_list', 'must be a list of integers');
    }
  }
  const match = readMatchParams(f, base64Value);
  return {
    ...match,
    urls: urlList.length > 0 ? urlList : [withScheme(url)],
    method: f.str('method') || 'GET',
    headers,
    responseCodes: parseResponseCodes(f.str('response_code') || '200', codesList),
    expectsBody: match.matcher.expected.length > 0,
  };
}

function parseHttp(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[], meta: Readonly<Record<string, unknown>>): HttpTaskConfig {
  const f = fields(raw, problems, '');
  const net = readNetParams(f, meta);
  const proxyText = f.str('proxy');
  let proxy: URL | undefined;
  if (proxyText !== '') {
    try {
      proxy = new URL(proxyText);
      if (proxy.protocol !== 'http:') f.problem('proxy', `only http:// proxies are supported, got ${JSON.stringify(proxyText)}`);
    } catch {
      f.problem('proxy', `is not a URL: ${JSON.stringify(proxyText)}`);
    }
  }
  const steps: HttpStep[] = [];
  const rawSteps = raw.steps;
  if (rawSteps !== undefined && rawSteps !== null) {
    if (!Array.isArray(rawSteps)) f.problem('steps', 'must be a list');
    else {
      for (const [i, s] of rawSteps.entries()) {
        if (!isMap(s)) {
          f.problem(`steps[${i}]`, 'must be a mapping');
          continue;
        }
        steps.push(readStep(fields(s, problems, `steps[${i}]`)));
      }
    }
  }
  return { ...base, ...net, steps, proxy, insecureSkipVerify: f.bool('insecure_skip_verify', false) };
}

/** One request's result (reference `http.Event`). */
export class HttpEvent extends UptimeEvent {
  url = '';
  steps = 0;
  /** The step index used as failure status. */
  index = 1;
  method = '';
  responseCode = 0;
  message = '';
  charset = '';
  contentLength = 0;
  mediaType = '';
  resolvedIp = '';

  /** Failure with the step index as status (the reference's http `Event.Fail`). */
  failStep(code: NamedCode): void {
    this.fail(code);
    this.status = this.index;
  }

  fromResponse(r: HttpProbeResponse): void {
    this.message = r.status;
    this.responseCode = r.statusCode;
    const len = r.headers['content-length'];
    this.contentLength = typeof len === 'string' && /^[+-]?\d+$/.test(len) ? Number(len) : 0;
    const ct = r.headers['content-type'];
    const m = CONTENT_TYPE.exec(typeof ct === 'string' ? ct : '');
    this.mediaType = m?.groups?.mediatype ?? '';
    this.charset = m?.groups?.charset ?? '';
  }

  body(): Record<string, unknown> {
    return {
      ...this.baseBody(),
      url: this.url,
      steps: this.steps,
      method: this.method,
      response_code: this.responseCode,
      message: this.message,
      charset: this.charset,
      content_length: this.contentLength,
      media_type: this.mediaType,
      resolved_ip: this.resolvedIp,
    };
  }

  /** The custom-report dimensions (reference NewCustomEventByHttpEvent, host fields added later). */
  reportDimensions(): Record<string, string> {
    const c = this.config;
    return {
      bk_biz_id: String(c.bkBizId),
      url: this.url,
      method: this.method,
      response_code: String(this.responseCode),
      message: this.message,
      error_code: String(this.code.code),
      media_type: this.mediaType,
      resolved_ip: this.resolvedIp,
      status: String(this.status),
      task_id: String(c.taskId),
      task_type: c.type,
    };
  }
}

class HttpTask implements Task<HttpTaskConfig> {
  readonly config: HttpTaskConfig;

  constructor(config: HttpTaskConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    for (const [index, step] of c.steps.entries()) {
      if (ctx.signal.aborted) return;
      const hosts = await expandTargets(step.urls, { ipType: c.ipType, dnsCheckMode: c.dnsCheckMode, urls: true, signal: ctx.signal });
      const jobs: { url: string; ips: readonly string[] }[] = [];
      for (const h of hosts) {
        if (h.code.code !== Codes.OK.code) {
          const event = this.#event(ctx, index, step, h.host);
          event.failStep(h.code);
          await this.#emit(ctx, event);
        } else {
          jobs.push({ url: h.host, ips: h.ips });
        }
      }
      const completed = await runProbes(ctx, jobs.map((j) => ({ weight: j.ips.length, probes: j.ips.map((ip) => () => this.#probe(ctx, index, step, j.url, ip)) })));
      if (!completed) return;
    }
  }

  #event(ctx: TaskContext, index: number, step: HttpStep, url: string): HttpEvent {
    const event = new HttpEvent(this.config, ctx.now());
    event.steps = this.config.steps.length;
    event.index = index;
    event.method = step.method;
    event.url = url;
    return event;
  }

  async #probe(ctx: TaskContext, index: number, step: HttpStep, url: string, ip: string): Promise<void> {
    const c = this.config;
    const event = this.#event(ctx, index + 1, step, url);
    event.resolvedIp = ip;
    const result = await httpProbe({
      url,
      method: step.method,
      headers: step.headers,
      body: step.request,
      pinIp: ip,
      timeoutMs: c.timeoutMs,
      bufferSize: c.bufferSize,
      proxy: c.proxy,
      insecure: c.insecureSkipVerify,
      ipType: c.ipType,
      readBody: step.expectsBody,
      signal: ctx.signal,
      sockets: probesOf(ctx).sockets,
    });
    if (result.kind === 'cancelled' || isStopped(ctx.signal)) return;
    switch (result.kind) {
      case 'build-error':
        event.message = result.message;
        event.failStep(Codes.BadRequestParams);
        break;
      case 'transport-error':
        event.message = result.message;
        event.failStep(result.timeout ? Codes.RequestTimeout : Codes.ResponseFailed);
        break;
      case 'response': {
        const r = result.response;
        event.fromResponse(r);
        if (step.responseCodes.length > 0 && !step.responseCodes.includes(r.statusCode)) {
          event.failStep(Codes.ResponseNotMatch);
        } else if (!step.expectsBody) {
          event.successOrTimeout();
        } else if (r.gzipError !== undefined) {
          event.failStep(Codes.ResponseFailed);
        } else if (r.bodyError) {
          // errata 4: not judged
          event.message = r.bodyError.message;
          event.status = GatherStatus.Unknown;
          event.code = Codes.Unknown;
          event.available = 0;
        } else if (!step.matcher.match(r.body ?? Buffer.alloc(0))) {
          event.failStep(Codes.ResponseNotMatch);
        } else {
          event.successOrTimeout();
        }
        break;
      }
    }
    event.end();
    await this.#emit(ctx, event);
  }

  async #emit(ctx: TaskContext, event: HttpEvent): Promise<void> {
    if (event.endMono === undefined) event.end();
    const output = this.config.customReport ? customReportOutput(event, event.url, event.reportDimensions(), ctx.host) : uptimeOutput(event, event.body(), event.reportDimensions());
    await emitSafely(ctx, output);
  }
}

export const httpType: TaskType<HttpTaskConfig> = {
  type: 'http',
  scheduler: 'main',
  shape: 'list',
  section: 'http_task',
  parse: parseHttp,
  create: (config) => new HttpTask(config),
};
