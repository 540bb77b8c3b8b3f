/**
 * `bkstream report`: one-shot custom report (reference `bkmonitorbeat -report`, §A8). The message is
 * prepared and validated as the reference does (services/agent/report.ts), then sent either to Kafka
 * (`--type agent`, the default: an `AgentEvent` on `<prefix>.events` for events, `MetricBatch` records on
 * `<prefix>.metrics` for time series, stamped with the host identity of the agent's main file) or to a
 * bk-collector-style proxy (`--http host:port`: `POST http://host:port/v2/push/`, non-200 fails).
 * The reference's flag spellings (`-report.bk_data_id 1500512`, `-report.message.kind event`, ...) are
 * accepted too. Exit code 1 on any failure.
 */
import { loadAgentConfig } from '../../agent/config-engine.ts';
import { DEFAULT_AGENT_CONFIG } from '../../agent/config.ts';
import { HostIdentitySource } from '../../agent/host-identity.ts';
import { prepareReport, reportRecords, validateReport } from '../../agent/report.ts';
import { TASK_TYPES } from '../../agent/tasks/index.ts';
import { commonSpec, loadConfig } from '../../common/config.ts';
import { UnavailableError } from '../../common/errors.ts';
import { silentLogger } from '../../common/log.ts';
import { topicName } from '../../common/topics.ts';
import { cliBrokers, cliBus } from '../broker.ts';
import { defineCommand, type Command } from '../command.ts';
import { innermostMessage } from '../messages.ts';

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

const report = defineCommand({
  name: 'report',
  summary: 'send one custom event or time-series report (bkmonitorbeat -report)',
  options: {
    kind: { type: 'string', choices: ['event', 'timeseries'], required: true, help: 'what the message is' },
    'data-id': { type: 'integer', value: 'n', help: 'the data id it is reported under' },
    body: { type: 'string', value: 'json', help: 'the message body (time series: {access_token, data: [...]})' },
    'event-name': { type: 'string', value: 'text', help: 'an event\'s name' },
    'event-content': { type: 'string', value: 'text', help: 'an event\'s content' },
    'event-target': { type: 'string', value: 'text', help: 'an event\'s target' },
    'event-timestamp': { type: 'integer', value: 'ms', help: 'an event\'s time, ms since the epoch (default the body\'s, or now)' },
    token: { type: 'string', help: 'the access token' },
    type: { type: 'string', choices: ['agent', 'http'], help: 'agent: to Kafka (the default); http: to the proxy at --http' },
    http: { type: 'string', value: 'host:port', help: 'a bk-collector-style proxy to POST /v2/push/ to (implies --type http)' },
    config: { type: 'string', value: 'file', help: 'the agent\'s main file, for the host identity (default AGENT_CONFIG or the example)' },
    'agent-address': { type: 'string', value: 'address', help: 'the GSE socket of the reference: accepted, not used' },
  },
  notes: 'The reference\'s spellings (`-report.bk_data_id 1500512`, `-report.message.kind event`, …) are accepted too.\nExit code 1 when the message is invalid or cannot be sent.',
}, async ({ values, usage }, env, print) => {
  const kind = values.kind;
  const type = values.type ?? (values.http ? 'http' : 'agent');
  if (type === 'http' && !values.http) usage('--type http needs --http host:port (the bk-collector proxy)');
  if (values['agent-address']) console.error('bkstream report: --agent-address (the GSE socket) is not used: reports go to Kafka');
  const now = Date.now();
  let doc: Record<string, unknown>;
  try {
    doc = prepareReport({
      kind: kind,
      dataId: values['data-id'] ?? 0,
      now,
      ...(values.body === undefined ? {} : { body: values.body }),
      ...(values['event-name'] ? { eventName: values['event-name'] } : {}),
      ...(values['event-content'] ? { eventContent: values['event-content'] } : {}),
      ...(values['event-target'] ? { eventTarget: values['event-target'] } : {}),
      eventTimestamp: values['event-timestamp'] ?? 0,
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
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(doc), signal: AbortSignal.timeout(10_000) });
      text = await res.text();
    } catch (err) {
      throw new UnavailableError(`cannot reach the proxy at ${url}: ${innermostMessage(err)}`, { cause: err });
    }
    if (res.status !== 200) {
      console.error(`bkstream report: POST ${url} failed: ${res.status} ${res.statusText} ${text}`);
      return 1;
    }
    print(text);
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
  const producer = (await cliBus(cliBrokers(common, env), 'bkstream-report', { retries: 3, connectionTimeoutMs: 3_000 })).producer({ idempotent: true });
  try {
    await producer.start();
    for (const r of records) await producer.send(r.topic, [{ key: r.key, value: r.value, timestamp: r.timestamp }]);
  } finally {
    await producer.stop().catch(() => undefined);
  }
  print(`sent ${records.length} record${records.length === 1 ? '' : 's'} to ${[...new Set(records.map((r) => r.topic))].join(', ')}`);
  return 0;
});

/** `bkstream report`, the reference's flag spellings turned into ours first. */
export const command: Command = { ...report, run: (args, env, print) => report.run(normaliseReportArgs(args), env, print) };
