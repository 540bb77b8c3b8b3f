/**
 * ICMP echo through the system `ping` (Debian's iputils-ping), one process per IP (README "Probes" has
 * the measurements behind this choice: a native raw-socket library costs ~35× less CPU per target but
 * cannot be built for the project's Node runtime here, reports whole milliseconds, and its RTTs grow
 * with event-loop stalls; `ping` timestamps in the kernel).
 *
 * The reference pinger sends an instance's next echo as soon as the previous is answered, or after
 * `max_rtt` without an answer, `total_num` echoes in all; a reply slower than `max_rtt` counts as lost.
 * `ping -A -i <max_rtt> -W <max_rtt> -c <total_num>` does the same (adaptive mode: the next echo leaves
 * when the previous is answered, at the latest after the interval); replies are read per sequence number
 * from its output and those slower than `max_rtt` are counted lost here. One difference remains: after
 * its last echo, iputils waits max(2 × the slowest RTT seen, the adapted interval) when some replies came,
 * so a last reply slower than that but under `max_rtt` is counted lost.
 *
 * Processes are bounded by the agent's probe resources (budget.ts ProbeResources): the socket budget (one
 * unit each) and the ping-process bound (`AGENT_PROBE_MAX_PING_PROCESSES`); the binary is theirs too
 * (`AGENT_PING_PATH`). The run's signal interrupts them (what was not answered is lost).
 */
import { spawn } from 'node:child_process';
import type { ProbeResources } from './budget.ts';
import { ipFamily } from './targets.ts';

/** The smallest ICMP echo payload for which iputils ping measures RTT (it needs room for its timestamp). */
export const MIN_PING_PAYLOAD = 16;

export interface PingRequest {
  readonly ip: string;
  /** Echoes to send (`total_num`). */
  readonly count: number;
  readonly maxRttMs: number;
  /** ICMP message size including its 8-byte header (`ping_size`). */
  readonly size: number;
  readonly signal: AbortSignal;
  /** The agent's bounds and `ping` binary. */
  readonly resources: ProbeResources;
}

export interface PingResult {
  /** RTT in ms of each echo, in sequence order; `undefined` = lost (no reply, or one slower than max_rtt). */
  readonly rtts: readonly (number | undefined)[];
  /** The process could not be started (no `ping` binary, no permission): a failure of the run, not of the target. */
  readonly error?: string;
  /** What ping said when it gave up on the target (exit code 2: unreachable network, no route, ...): the echoes are lost. */
  readonly stderr?: string;
}

const REPLY = /icmp_seq=(\d+)\b.*?\btime[=<]([\d.]+) ms/;

/** Parses iputils ping output: the first reply per sequence number (1-based), duplicates ignored. */
export function parsePingOutput(text: string, count: number, maxRttMs: number): (number | undefined)[] {
  const rtts: (number | undefined)[] = Array.from({ length: count }, () => undefined);
  for (const line of text.split('\n')) {
    if (line.includes('(DUP!)')) continue;
    const m = REPLY.exec(line);
    if (!m) continue;
    const seq = Number(m[1]);
    const rtt = Number(m[2]);
    if (seq < 1 || seq > count || rtts[seq - 1] !== undefined) continue;
    if (rtt < maxRttMs) rtts[seq - 1] = rtt;
  }
  return rtts;
}

/** The arguments of one ping process. */
export function pingArgs(req: Pick<PingRequest, 'ip' | 'count' | 'maxRttMs' | 'size'>): string[] {
  const seconds = (ms: number): string => (Math.max(ms, 1) / 1_000).toFixed(3);
  const payload = Math.max(req.size - 8, MIN_PING_PAYLOAD);
  return ['-n', ipFamily(req.ip) === 6 ? '-6' : '-4', '-A', '-c', String(req.count), '-i', seconds(req.maxRttMs), '-W', seconds(req.maxRttMs), '-s', String(payload), '-t', '64', req.ip];
}

/** Pings one IP. Never rejects; a run abort interrupts the process (unanswered echoes are lost). */
export async function ping(req: PingRequest): Promise<PingResult> {
  const lost = (error?: string): PingResult => ({ rtts: Array.from({ length: req.count }, () => undefined), ...(error ? { error } : {}) });
  if (ipFamily(req.ip) === 0) return lost();
  let releaseProcess: () => void;
  let releaseSocket: () => void;
  try {
    releaseProcess = await req.resources.pingProcesses.acquire(req.signal);
  } catch {
    return lost();
  }
  try {
    releaseSocket = await req.resources.sockets.acquire(req.signal);
  } catch {
    releaseProcess();
    return lost();
  }
  return new Promise((resolve) => {
    let out = '';
    let err = '';
    let spawnError: string | undefined;
    const child = spawn(req.resources.pingPath, pingArgs(req), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C', LANG: 'C' } });
    const onAbort = (): void => {
      child.kill('SIGINT');
    };
    req.signal.addEventListener('abort', onAbort, { once: true });
    if (req.signal.aborted) onAbort();
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => (out += d));
    child.stderr.on('data', (d: string) => {
      if (err.length < 4_096) err += d;
    });
    child.on('error', (e) => (spawnError = e.message));
    child.on('close', (code) => {
      req.signal.removeEventListener('abort', onAbort);
      releaseSocket();
      releaseProcess();
      const rtts = parsePingOutput(out, req.count, req.maxRttMs);
      // exit code 1 = some echo unanswered; 2 = ping gave up (unreachable network, no route, bad arguments)
      if (spawnError !== undefined) resolve({ rtts, error: spawnError });
      else if (code === 2 && !req.signal.aborted) resolve({ rtts, stderr: err.trim() || 'ping exited with code 2' });
      else resolve({ rtts });
    });
  });
}
