/**
 * `bkstream report`: one-shot custom report (reference `bkmonitorbeat -report`, §A8). The message is
 * prepared and validated as the reference does (services/agent/report.ts), then sent either to Kafka
 * (`--type agent`, the default: an `AgentEvent` on `<prefix>.events` for events, `MetricBatch` records on
 * `<prefix>.metrics` for time series, stamped with the host identity of the agent's main file) or to a
 * bk-collector-style proxy (`--http host:port`: `POST http://host:port/v2/push/`, non-200 fails).
 * The reference's flag spellings (`-report.bk_data_id 1500512`, `-report.message.kind event`, ...) are
 * accepted too. Exit code 1 on any failure.
 */
import { parseArgs } from 'node:util';
import { loadAgentConfig } from '../../agent/config-engine.ts';
import { DEFAULT_AGENT_CONFIG } from '../../agent/config.ts';
import { HostIdentitySource } from '../../agent/host-identity.ts';
import { prepareReport, reportRecords, validateReport } from '../../agent/report.ts';
import { TASK_TYPES } from '../../agent/tasks/index.ts';
import { Bus } from '../../common/bus/index.ts';
import { brokersOrLocal, commonSpec, loadConfig } from '../../common/config.ts';
import { ValidationError } from '../../common/errors.ts';
import { silentLogger } from '../../common/log.ts';
import { topicName } from '../../common/topics.ts';
import type { Command } from '../command.ts';

/** The reference's flag names → ours. */
const REFERENCE_FLAGS: Record<string, string> = {
  'report.type': 'type',
  'report.http.server': 'http',
  'report.http.token': 'token',
  'report.bk_data_id': 'data-id',
  'report.message.kind': 'kind',
  'report.message.body': 'body',
  'report.event.name': 'event-name',
  'report.event.content': 'event-content',
  'report.event.target': 'event-target',
  'report.event.timestamp': 'event-timestamp',
  'report.agent.address': 'agent-address',
};

/** `-report.x v` / `--report.x=v` → `--ours v`; a bare `-report` is dropped. */
export function normaliseReportArgs(args: readonly string[]): string[] {
  const out: string[] = [];
  for (const a of args) {
    if (a === '-report' || a === '--report') continue;
    const m = /^--?(report\.[a-z_.]+)(=.*)?$/.exec(a);
    const ours = m ? REFERENCE_FLAGS[m[1] as string] : undefined;
    out.push(m && ours ? `--${ours}${m[2] ?? ''}` : a);
  }
  return out;
}

function int(name: string, v: string | undefined): number {
  if (v === undefined || v === '') return 0;
  if (!/^-?\d+$/.test(v)) throw new ValidationError(`--${name} must be an integer, got ${JSON.stringify(v)}`);
  return Number(v);
}

export const command: Command = {
  summary: 'send one custom event or time-series report (bkmonitorbeat -report)',
  usage: 'bkstream report --kind event|timeseries --data-id N [--body JSON] [--event-name/--event-content/--event-target/--event-timestamp] [--token T] [--http host:port] [--config bkmonitorbeat.yaml]',
  async run(args, env) {
    const { values } = parseArgs({
      args: normaliseReportArgs(args),
      options: {
        type: { type: 'string' },
        http: { type: 'string' },
        token: { type: 'string' },
        'data-id': { type: 'string' },
        kind: { type: 'string' },
        body: { type: 'string' },
        'event-name': { type: 'string' },
        'event-content': { type: 'string' },
        'event-target': { type: 'string' },
        'event-timestamp': { type: 'string' },
        'agent-address': { type: 'string' },
        config: { type: 'string' },
      },
    });
    const kind = values.kind;
    if (kind !== 'event' && kind !== 'timeseries') throw new ValidationError(`--kind must be event or timeseries, got ${JSON.stringify(kind ?? '')}`);
    const type = values.type ?? (values.http ? 'http' : 'agent');
    if (type !== 'agent' && type !== 'http') throw new ValidationError(`--type must be agent (Kafka) or http, got ${JSON.stringify(type)}`);
    if (type === 'http' && !values.http) throw new ValidationError('--type http needs --http host:port (the bk-collector proxy)');
    if (values['agent-address']) console.error('bkstream report: --agent-address (the GSE socket) is not used: reports go to Kafka');
    const now = Date.now();
    let doc: Record<string, unknown>;
    try {
      doc = prepareReport({
        kind: kind,
        dataId: int('data-id', values['data-id']),
        now,
        ...(values.body === undefined ? {} : { body: values.body }),
        ...(values['event-name'] ? { eventName: values['event-name'] } : {}),
        ...(values['event-content'] ? { eventContent: values['event-content'] } : {}),
        ...(values['event-target'] ? { eventTarget: values['event-target'] } : {}),
        eventTimestamp: int('event-timestamp', values['event-timestamp']),
        ...(values.token ? { token: values.token } : {}),
      });
    } catch (err) {
      console.error(`bkstream report: ${(err as Error).message}`);
      return 1;
    }
    const problems = validateReport(kind, doc);
    if (problems.length > 0) {
      console.error(`bkstream report: the ${kind} message is invalid:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
      return 1;
    }

    if (type === 'http') {
      const url = `http://${values.http}/v2/push/`;
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc) });
      const text = await res.text();
      if (res.status !== 200) {
        console.error(`bkstream report: POST ${url} failed: ${res.status} ${res.statusText} ${text}`);
        return 1;
      }
      console.log(text);
      return 0;
    }

    const common = loadConfig(commonSpec, { env });
    const loaded = loadAgentConfig(values.config ?? (env.AGENT_CONFIG || DEFAULT_AGENT_CONFIG), { types: TASK_TYPES });
    const identity = new HostIdentitySource({ config: loaded.main, logger: silentLogger, ...(env.AGENT_HOST_IP ? { ipOverride: env.AGENT_HOST_IP } : {}) });
    await identity.start();
    identity.stop();
    let records;
    try {
      records = reportRecords(kind, doc, identity.current(), { events: topicName(common.topicPrefix, 'events'), metrics: topicName(common.topicPrefix, 'metrics') }, now);
    } catch (err) {
      console.error(`bkstream report: ${(err as Error).message}`);
      return 1;
    }
    const producer = new Bus({ brokers: brokersOrLocal(common.kafkaBrokers, env), clientId: 'bkstream-report', logger: silentLogger, retries: 3, connectionTimeoutMs: 3_000 }).producer({ idempotent: true });
    try {
      await producer.start();
      for (const r of records) await producer.send(r.topic, [{ key: r.key, value: r.value, timestamp: r.timestamp }]);
    } finally {
      await producer.stop().catch(() => undefined);
    }
    console.log(`sent ${records.length} record${records.length === 1 ? '' : 's'} to ${[...new Set(records.map((r) => r.topic))].join(', ')}`);
    return 0;
  },
};
