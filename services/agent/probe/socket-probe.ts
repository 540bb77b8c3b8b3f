/**
 * The tcp and udp exchanges (reference tasks/tcp/gather.go checkTargetHost, tasks/udp/gather.go
 * checkTargetHost + detect), each connection holding a unit of the socket budget while open.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Codes, type NamedCode } from '../tasks/gather-up.ts';
import type { SocketBudget } from './budget.ts';
import { isStopped } from './run.ts';
import { ipFamily } from './targets.ts';

/** A probe that never ran or was cut by a stop of the task: no event. */
export interface NotProbed {
  readonly kind: 'not-probed';
  readonly reason: string;
}

export interface TcpProbeRequest {
  readonly ip: string;
  readonly port: number;
  readonly timeoutMs: number;
  /** Sent after connecting when non-empty (only when a response is expected, as the reference). */
  readonly request: Buffer;
  /** Whether a response is read (a `response` is configured). */
  readonly expectsResponse: boolean;
  readonly bufferSize: number;
  readonly signal: AbortSignal;
  /** The agent's probe sockets: the connection holds one while open. */
  readonly sockets: SocketBudget;
  /** Monotonic ms the probe's clock started at (the deadline of the exchange is start + timeout). */
  readonly startMono: number;
}

export interface TcpProbeResult {
  readonly kind: 'done';
  readonly code: NamedCode;
  /** The first read (≤ bufferSize bytes), when a response was read. */
  readonly body?: Buffer;
}

/**
 * Connects (timeout → 1001 ConnTimeout, error → 1000 ConnFailed); without an expected response that is
 * success. Otherwise, with a deadline of start + timeout: writes the request (timeout → 1101, error →
 * 1100), reads once (timeout → 1101, error → 1200; end of stream → an empty body). Matching is the caller's.
 */
export async function tcpProbe(req: TcpProbeRequest): Promise<TcpProbeResult | NotProbed> {
  let release: () => void;
  try {
    release = await req.sockets.acquire(req.signal);
  } catch {
    return { kind: 'not-probed', reason: 'run ended while waiting for a socket' };
  }
  return new Promise((resolve) => {
    let connected = false;
    let settled = false;
    const socket = net.connect({ host: req.ip, port: req.port, noDelay: true });
    const finish = (r: TcpProbeResult | NotProbed): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      release();
      resolve(r);
    };
    const timedOut = (): void => finish({ kind: 'done', code: connected ? Codes.RequestTimeout : Codes.ConnTimeout });
    const onAbort = (): void => {
      if (isStopped(req.signal)) finish({ kind: 'not-probed', reason: 'task stopped' });
      else timedOut();
    };
    const timer = setTimeout(timedOut, Math.max(0, req.startMono + req.timeoutMs - performance.now()));
    if (req.signal.aborted) {
      onAbort();
      return;
    }
    req.signal.addEventListener('abort', onAbort, { once: true });
    let writing = false;
    socket.once('connect', () => {
      connected = true;
      if (!req.expectsResponse) {
        finish({ kind: 'done', code: Codes.OK });
        return;
      }
      if (req.request.length > 0) {
        writing = true;
        socket.write(req.request, (err) => {
          writing = false;
          if (err) finish({ kind: 'done', code: Codes.RequestFailed });
        });
      }
    });
    socket.once('data', (chunk: Buffer) => finish({ kind: 'done', code: Codes.OK, body: chunk.length > req.bufferSize ? chunk.subarray(0, req.bufferSize) : chunk }));
    socket.once('end', () => finish({ kind: 'done', code: Codes.OK, body: Buffer.alloc(0) }));
    socket.on('error', () => finish({ kind: 'done', code: !connected ? Codes.ConnFailed : writing ? Codes.RequestFailed : Codes.ResponseFailed }));
  });
}

export interface UdpProbeRequest {
  readonly ip: string;
  readonly port: number;
  /** Attempts (`times`). */
  readonly times: number;
  readonly request: Buffer;
  readonly expectsResponse: boolean;
  readonly waitEmptyResponse: boolean;
  /** Read deadline of each attempt, from the write. */
  readonly availableDurationMs: number;
  readonly bufferSize: number;
  readonly signal: AbortSignal;
  /** The agent's probe sockets: each attempt's socket holds one while open. */
  readonly sockets: SocketBudget;
  /** Called at the start of each attempt (the event's clock restarts there). */
  readonly onAttempt?: (index: number) => void;
}

export interface UdpProbeResult {
  readonly kind: 'done';
  readonly code: NamedCode;
  /** The attempt index the loop stopped at (0-based; `times` when every attempt failed). */
  readonly times: number;
  readonly body?: Buffer;
  /** Monotonic ms of the last attempt's end (when a response was expected). */
  readonly endMono?: number;
}

type Attempt = { readonly kind: 'attempt'; readonly code: NamedCode; readonly body?: Buffer } | NotProbed;

/**
 * Up to `times` attempts, each on a fresh connected socket: write (error → 1100), then wait
 * `available_duration` for one datagram. ICMP port unreachable (ECONNREFUSED) → 2501 and stop; no
 * datagram or a read error → 1101 (timeout) / 1200 when a response is expected or `wait_empty_response`,
 * and the next attempt; otherwise a silent port is success with an empty body. The run's deadline ends
 * the current attempt as a read timeout and starts no other.
 */
export async function udpProbe(req: UdpProbeRequest): Promise<UdpProbeResult | NotProbed> {
  const strict = req.expectsResponse || req.waitEmptyResponse;
  let last: Attempt = { kind: 'attempt', code: Codes.Unknown };
  let endMono: number | undefined;
  let index = 0;
  for (; index < req.times; index++) {
    if (index > 0 && req.signal.aborted) break;
    req.onAttempt?.(index);
    last = await udpAttempt(req, strict);
    if (last.kind === 'not-probed') return last;
    endMono = performance.now();
    if (last.code.code === Codes.OK.code || last.code.code === Codes.ConnRefused.code) break;
  }
  return { kind: 'done', code: last.code, times: index, body: last.body, endMono };
}

async function udpAttempt(req: UdpProbeRequest, strict: boolean): Promise<Attempt> {
  let release: () => void;
  try {
    release = await req.sockets.acquire(req.signal);
  } catch {
    return { kind: 'not-probed', reason: 'run ended while waiting for a socket' };
  }
  const family = ipFamily(req.ip);
  return new Promise((resolve) => {
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    let socket: dgram.Socket;
    try {
      socket = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
    } catch {
      release();
      resolve({ kind: 'attempt', code: Codes.ConnFailed });
      return;
    }
    const finish = (r: Attempt): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      req.signal.removeEventListener('abort', onAbort);
      try {
        socket.close();
      } catch {
        // already closed
      }
      release();
      resolve(r);
    };
    const readTimeout = (): void => finish(strict ? { kind: 'attempt', code: Codes.RequestTimeout } : { kind: 'attempt', code: Codes.OK, body: Buffer.alloc(0) });
    const onAbort = (): void => {
      if (isStopped(req.signal)) finish({ kind: 'not-probed', reason: 'task stopped' });
      else readTimeout();
    };
    if (req.signal.aborted && isStopped(req.signal)) {
      onAbort();
      return;
    }
    req.signal.addEventListener('abort', onAbort, { once: true });
    let connected = false;
    let sent = false;
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') finish({ kind: 'attempt', code: Codes.ConnRefused });
      else if (!connected) finish({ kind: 'attempt', code: Codes.ConnFailed });
      else if (!sent) finish({ kind: 'attempt', code: Codes.RequestFailed });
      else finish(strict ? { kind: 'attempt', code: Codes.ResponseFailed } : { kind: 'attempt', code: Codes.OK, body: Buffer.alloc(0) });
    });
    socket.on('message', (msg: Buffer) => finish({ kind: 'attempt', code: Codes.OK, body: msg.length > req.bufferSize ? msg.subarray(0, req.bufferSize) : msg }));
    socket.connect(req.port, req.ip, () => {
      connected = true;
      socket.send(req.request, (err) => {
        if (err) {
          finish({ kind: 'attempt', code: (err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? Codes.ConnRefused : Codes.RequestFailed });
          return;
        }
        sent = true;
        if (req.signal.aborted) readTimeout();
        else timer = setTimeout(readTimeout, req.availableDurationMs);
      });
    });
  });
}
