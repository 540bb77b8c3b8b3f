/**
 * `tcp` uptime check (reference tasks/tcp, §A5.4; template data id 1009). Every configured host is
 * expanded to its IPs (probe/targets.ts; failures are events with 1213/1004/1211), then every IP is
 * probed concurrently, taking 1 unit of the type's concurrency limit each (§A2.6, errata 3/11):
 * connect (timeout → 1001, error → 1000); without `response` that is success (`task_duration` = the
 * handshake); otherwise write `request` (`request_format` raw/hex), read once ≤ `buffer_size` bytes
 * (timeout → 1101, error → 1200, write error → 1100), match (`response_format`, → 1202). Success is then
 * checked against `available_duration` (→ 3). One event per (host, IP), or its `custom_report` record.
 */
import type { ConfigProblem } from '../../common/errors.ts';
import { fields } from '../config-fields.ts';
import { probesOf } from '../probe/budget.ts';
import { customReportOutput, emitSafely, simpleBody, simpleReportDimensions, UptimeEvent, uptimeOutput, type SimpleTarget } from '../probe/event.ts';
import { readMatchParams, readNetParams, type MatchParams, type NetParams } from '../probe/net-config.ts';
import { runProbes } from '../probe/run.ts';
import { readSimpleTargets, type SimpleTargets } from '../probe/simple-config.ts';
import { tcpProbe } from '../probe/socket-probe.ts';
import { expandTargets } from '../probe/targets.ts';
import type { BaseTaskConfig, Task, TaskContext, TaskType } from '../task.ts';
import { Codes } from './gather-up.ts';

export interface TcpTaskConfig extends BaseTaskConfig, NetParams, MatchParams, SimpleTargets {}

function parseTcp(raw: Readonly<Record<string, unknown>>, base: BaseTaskConfig, problems: ConfigProblem[], meta: Readonly<Record<string, unknown>>): TcpTaskConfig {
  const f = fields(raw, problems, '');
  return { ...base, ...readNetParams(f, meta), ...readMatchParams(f), ...readSimpleTargets(f) };
}

/** Emits one tcp/udp event (or its custom report). */
export async function emitSimple(ctx: TaskContext, event: UptimeEvent, target: SimpleTarget, customReport: boolean, extra: Record<string, unknown> = {}): Promise<void> {
  const dims = simpleReportDimensions(event, target);
  const output = customReport ? customReportOutput(event, `${target.targetHost}:${target.targetPort}`, dims, ctx.host) : uptimeOutput(event, simpleBody(event, target, extra), dims);
  await emitSafely(ctx, output);
}

class TcpTask implements Task<TcpTaskConfig> {
  readonly config: TcpTaskConfig;

  constructor(config: TcpTaskConfig) {
    this.config = config;
  }

  async run(ctx: TaskContext): Promise<void> {
    const c = this.config;
    const hosts = await expandTargets(c.hosts, { ipType: c.ipType, dnsCheckMode: c.dnsCheckMode, urls: false, signal: ctx.signal });
    const groups = [];
    for (const h of hosts) {
      if (h.code.code !== Codes.OK.code) {
        const event = new UptimeEvent(c, ctx.now());
        event.fail(h.code);
        await emitSimple(ctx, event, { targetHost: h.host, targetPort: c.port, resolvedIp: '' }, c.customReport);
        continue;
      }
      for (const ip of h.ips) groups.push({ weight: 1, probes: [() => this.#probe(ctx, h.host, ip)] });
    }
    await runProbes(ctx, groups);
  }

  async #probe(ctx: TaskContext, host: string, ip: string): Promise<void> {
    const c = this.config;
    const event = new UptimeEvent(c, ctx.now());
    const expectsResponse = c.matcher.expected.length > 0;
    const result = await tcpProbe({ ip, port: c.port, timeoutMs: c.timeoutMs, request: c.request, expectsResponse, bufferSize: c.bufferSize, signal: ctx.signal, sockets: probesOf(ctx).sockets, startMono: event.startMono });
    if (result.kind === 'not-probed') {
      ctx.logger.debug('tcp target not probed', { task_id: c.taskId, ip, reason: result.reason });
      return;
    }
    event.end();
    if (result.code.code !== Codes.OK.code) event.fail(result.code);
    else if (expectsResponse && !c.matcher.match(result.body ?? Buffer.alloc(0))) event.fail(Codes.ResponseNotMatch);
    else event.successOrTimeout();
    await emitSimple(ctx, event, { targetHost: host, targetPort: c.port, resolvedIp: ip }, c.customReport);
  }
}

export const tcpType: TaskType<TcpTaskConfig> = {
  type: 'tcp',
  scheduler: 'main',
  shape: 'list',
  section: 'tcp_task',
  parse: parseTcp,
  create: (config) => new TcpTask(config),
};
