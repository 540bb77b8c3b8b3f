/**
 * `bkstream up --demo`: a demo application with live traffic, so the console's service map, traces and
 * flows fill within seconds of start.
 *
 * start: registers the demo application (app.ts; a fresh token) → starts the demo shop (shop.ts: frontend,
 * checkout, payment, fulfillment over real HTTP and gRPC on loopback, traced with the OpenTelemetry SDK and
 * exported to the collector's OTLP listeners with that token) → starts the shoppers (traffic.ts) → submits
 * a tail-sampling flow for the application on the orchestrator's command topic and follows it in the
 * background until it ends (success against bkdata-sim), telling `print`.
 * stop: stops following the flow, the shoppers, the shop (intake first), flushes the SDK's last spans to
 * the collector (so it must stop after the demo: `up` adds the demo last), and the Kafka producer. Every
 * step runs even if one fails; idempotent; safe without start; within `up`'s 10 s per part (shoppers
 * waited for at most 3 s, the last export at most 5 s).
 */
import type { Bus, BusProducer } from '../../common/bus/index.ts';
import type { Component } from '../../common/lifecycle.ts';
import type { Store } from '../../common/store/index.ts';
import type { Application } from '../../collector/applications.ts';
import type { Flow } from '../../orchestrator/model.ts';
import { ensureDemoApp, submitFlowCommand, tailSamplingCommand, waitForFlowCommand } from './app.ts';
import { DEFAULT_BEHAVIOUR, DemoShop, type ShopBehaviour } from './shop.ts';
import { DemoTelemetry, type ExportCounts } from './telemetry.ts';
import { ShopTraffic } from './traffic.ts';

export interface DemoOptions {
  store: Store;
  bus: Bus;
  /** TOPIC_PREFIX: the flow command goes to `<prefix>.flow.commands`. */
  topicPrefix: string;
  /** The collector's OTLP endpoints (at least one). */
  otlp: { grpcUrl: string | undefined; httpUrl: string | undefined };
  /** Requests per second to the shop's frontend. Default 5 (about 40 spans a second). */
  requestsPerSecond?: number;
  /** How long the SDK's batch processors wait before exporting, ms. Default 1000. */
  exportDelayMs?: number;
  /** Error and latency shares of the shop (shop.ts). */
  behaviour?: Partial<ShopBehaviour>;
  /**
   * Whether to submit the tail-sampling flow. Default true; `up` submits it only when it runs the local
   * bkdata-sim (never against a real BKData).
   */
  submitFlow?: boolean;
  /** How long the tail-sampling flow may take to end, ms. Default 120 000. */
  flowTimeoutMs?: number;
  /** How often the flow's state is read, ms. Default 500. */
  flowPollMs?: number;
  /**
   * The host IP the spans say they ran on (resource `net.host.ip`, discovery's hosts). Default 127.0.0.1,
   * the host agent's own default identity (AGENT_HOST_IP), so the map's host is the one the agent reports.
   */
  hostIp?: string;
  /** Where the demo says what it does (one line each). */
  print: (line: string) => void;
}

export interface DemoStats {
  requests: number;
  failedRequests: number;
  spans: ExportCounts;
}

export interface Demo extends Component {
  /** The registered application and its token, once started. */
  app(): { application: Application; token: string } | undefined;
  /** The tail-sampling flow once its run ended (rejects on failure to follow it); undefined before start. */
  flow(): Promise<Flow> | undefined;
  /** Each demo service's loopback address, once started. */
  addresses(): Record<string, string>;
  stats(): DemoStats;
}

export function createDemo(options: DemoOptions): Demo {
  const behaviour: ShopBehaviour = { ...DEFAULT_BEHAVIOUR, ...options.behaviour };
  let registered: { application: Application; token: string; created: boolean } | undefined;
  let telemetry: DemoTelemetry | undefined;
  let shop: DemoShop | undefined;
  let traffic: ShopTraffic | undefined;
  let producer: BusProducer | undefined;
  let flow: Promise<Flow> | undefined;
  let following: AbortController | undefined;
  let stopping: Promise<void> | undefined;

  const stopAll = async (): Promise<void> => {
    const steps: [string, () => Promise<void>][] = [
      ['flow', async () => following?.abort()],
      ['traffic', async () => traffic?.stop()],
      ['shop', async () => shop?.stop()],
      ['telemetry', async () => telemetry?.shutdown()],
      ['producer', async () => producer?.stop()],
    ];
    const failures: string[] = [];
    for (const [name, step] of steps) {
      await step().catch((err: unknown) => failures.push(`${name}: ${err instanceof Error ? err.message : String(err)}`));
    }
    traffic = undefined;
    shop = undefined;
    telemetry = undefined;
    producer = undefined;
    following = undefined;
    if (failures.length > 0) throw new Error(`demo: stop failed: ${failures.join('; ')}`);
  };

  return {
    name: 'demo',
    async start() {
      if (shop) return;
      if (!options.otlp.grpcUrl && !options.otlp.httpUrl) throw new Error('demo: the collector has no OTLP listener to send to');
      registered = await ensureDemoApp(options.store);
      const { application, token } = registered;
      options.print(`demo: application ${application.bkBizId}/${application.appName} ${registered.created ? 'registered' : 'already registered, new token issued'}; its token (shown once): ${token}`);
      telemetry = new DemoTelemetry({ ...options.otlp, token }, { exportDelayMs: options.exportDelayMs ?? 1_000, hostIp: options.hostIp ?? '127.0.0.1' });
      shop = new DemoShop(telemetry, behaviour);
      try {
        await shop.start();
        traffic = new ShopTraffic(() => (shop as DemoShop).frontendUrl(), { requestsPerSecond: options.requestsPerSecond ?? 5, random: behaviour.random });
        await traffic.start();
        options.print(`demo: shop running on loopback (${Object.entries(shop.addresses()).map(([k, v]) => `${k} ${v}`).join(', ')}), ${options.requestsPerSecond ?? 5} requests/s`);
        if (options.submitFlow === false) {
          options.print('demo: no tail-sampling flow submitted (BKDATA_API_URL names a real BKData; the demo provisions only the local bkdata-sim)');
          return;
        }
        producer = options.bus.producer();
        await producer.start();
        const command = tailSamplingCommand(application);
        await submitFlowCommand(producer, options.topicPrefix, command);
        options.print(`demo: tail-sampling flow of ${application.bkBizId}/${application.appName} submitted (command ${command.command_id}); \`npx bkstream flows list\` or the console's Flows page follow it`);
        following = new AbortController();
        const signal = following.signal;
        flow = waitForFlowCommand(options.store, command, { timeoutMs: options.flowTimeoutMs ?? 120_000, pollMs: options.flowPollMs ?? 500, signal });
        flow.then(
          (f) => options.print(`demo: tail-sampling flow of ${f.bk_biz_id}/${f.app_name}: ${f.status}${f.status === 'success' ? '' : ` at step ${f.step}: ${f.message}`}`),
          (err: unknown) => {
            if (!signal.aborted) options.print(`demo: ${err instanceof Error ? err.message : String(err)}`);
          },
        );
      } catch (err) {
        await stopAll().catch(() => undefined);
        throw err;
      }
    },
    stop() {
      stopping ??= stopAll().finally(() => {
        stopping = undefined;
      });
      return stopping;
    },
    app: () => (registered ? { application: registered.application, token: registered.token } : undefined),
    flow: () => flow,
    addresses: () => shop?.addresses() ?? {},
    stats: () => ({
      requests: traffic?.counts.sent ?? 0,
      failedRequests: traffic?.counts.failed ?? 0,
      spans: telemetry ? { ...telemetry.counts } : { exported: 0, failed: 0, lastError: undefined },
    }),
  };
}
