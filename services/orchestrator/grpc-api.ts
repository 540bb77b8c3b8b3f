/**
 * The gRPC command API (orchestrator.proto, service bkstream.orchestrator.v1.FlowService) on
 * ORCH_GRPC_PORT. Every call needs an admin token in its metadata (`authorization: Bearer <token>`):
 * none or an unknown one → UNAUTHENTICATED, an application's → PERMISSION_DENIED. Errors map onto gRPC
 * codes: bad input → INVALID_ARGUMENT, unknown flow → NOT_FOUND, retry of a flow that did not fail →
 * FAILED_PRECONDITION, store unavailable → UNAVAILABLE ("the database is unavailable"). Flow configs
 * come back with their secrets masked.
 */
import { join } from 'node:path';
import type { Authenticator } from '../common/auth.ts';
import { clientMessage, ValidationError } from '../common/errors.ts';
import { GrpcServer, grpcStatus, loadService, unaryHandler, type ProtoLoaderOptions, type ServiceClientConstructor } from '../common/grpc.ts';
import type { Component } from '../common/lifecycle.ts';
import type { Logger } from '../common/log.ts';
import type { FlowType } from '../common/records.ts';
import { parseKey, type FlowOperations, type FlowView, type StepView } from './operations.ts';

export const PROTO_PATH = join(import.meta.dirname, 'orchestrator.proto');

export const PROTO_OPTIONS: ProtoLoaderOptions = { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true };

/** The FlowService definition, for servers and clients (tests, the CLI). */
export function flowServiceDefinition(): ServiceClientConstructor {
  return loadService(PROTO_PATH, 'bkstream.orchestrator.v1.FlowService', PROTO_OPTIONS);
}

const ms = (iso: string | null): number => (iso ? Date.parse(iso) : 0);

/** The view with the proto's conventions: no nulls (0 / ""), times as ms, config as JSON. */
function toProtoFlow(f: FlowView): Record<string, unknown> {
  return {
    ...f,
    waiting_on: f.waiting_on ?? '',
    deploy_data_id: f.deploy_data_id ?? 0,
    databus_clean_id: f.databus_clean_id ?? 0,
    databus_clean_result_table_id: f.databus_clean_result_table_id ?? '',
    flow_id: f.flow_id ?? 0,
    project_id: f.project_id ?? 0,
    config_json: JSON.stringify(f.config),
    updated_at: ms(f.updated_at),
    next_attempt_at: ms(f.next_attempt_at),
  };
}

function toProtoStep(s: StepView): Record<string, unknown> {
  return { ...s, started_at: ms(s.started_at), finished_at: ms(s.finished_at) };
}

interface KeyMsg {
  bk_biz_id: number;
  app_name: string;
  flow_type: string;
}

export class GrpcApi implements Component {
  readonly name = 'orchestrator-grpc';
  readonly #ops: FlowOperations;
  readonly #host: string;
  readonly #port: number;
  readonly #log: Logger;
  readonly #auth: Authenticator;
  #server: GrpcServer | undefined;

  constructor(ops: FlowOperations, host: string, port: number, logger: Logger, auth: Authenticator) {
    this.#ops = ops;
    this.#host = host;
    this.#port = port;
    this.#log = logger.child({ component: 'grpc' });
    this.#auth = auth;
  }

  port(): number {
    return this.#server?.port() ?? 0;
  }

  async start(): Promise<void> {
    if (this.#server) return;
    const server = new GrpcServer({ what: "the orchestrator's gRPC API", host: this.#host, port: this.#port });
    const unary = <Req, Res>(fn: (req: Req) => Promise<Res>) =>
      unaryHandler<Req, Res>((call) => fn(call.request), (err, code) => {
        if (code === (grpcStatus.INTERNAL as number)) this.#log.error('gRPC call failed', { err });
        return clientMessage(err);
      }, { auth: this.#auth, access: 'admin' });
    server.addService(flowServiceDefinition().service, {
      Submit: unary(async (req: Record<string, unknown>) => {
        const r = await this.#ops.submit(
          {
            command_id: req.command_id,
            action: req.action,
            flow_type: req.flow_type,
            bk_biz_id: req.bk_biz_id,
            app_name: req.app_name,
            config: req.config_json === '' ? '{}' : req.config_json,
            operator: req.operator,
            ...(req.requested_at ? { requested_at: req.requested_at } : {}),
          },
          'grpc',
        );
        return { outcome: r.outcome, command_id: r.command_id, flow: r.flow ? toProtoFlow(r.flow) : null };
      }),
      Get: unary(async (req: { key?: KeyMsg; steps: number }) => {
        if (!req.key) throw new ValidationError('key is required');
        const { flow, steps } = await this.#ops.get(parseKey(req.key.bk_biz_id, req.key.app_name, req.key.flow_type), req.steps > 0 ? req.steps : 50);
        return { flow: toProtoFlow(flow), steps: steps.map(toProtoStep) };
      }),
      List: unary(async (req: { status: string; flow_type: string; bk_biz_id: number; has_bk_biz_id: boolean; app_name: string; limit: number; offset: number }) => {
        const flows = await this.#ops.list({
          ...(req.status ? { status: req.status } : {}),
          ...(req.flow_type ? { flow_type: req.flow_type as FlowType } : {}),
          ...(req.has_bk_biz_id ? { bk_biz_id: req.bk_biz_id } : {}),
          ...(req.app_name ? { app_name: req.app_name } : {}),
          ...(req.limit > 0 ? { limit: req.limit } : {}),
          ...(req.offset > 0 ? { offset: req.offset } : {}),
        });
        return { flows: flows.map(toProtoFlow) };
      }),
      Retry: unary(async (req: KeyMsg) => toProtoFlow(await this.#ops.retry(parseKey(req.bk_biz_id, req.app_name, req.flow_type)))),
    });
    await server.start();
    this.#server = server;
    this.#log.info('listening', { host: this.#host, port: server.port() });
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.stop(2_000);
  }
}
