/**
 * The agent service's own settings (env keys `AGENT_*`, or keys of the BKSTREAM_CONFIG file). What the
 * agent collects is configured the reference's way, in the bkmonitorbeat main file AGENT_CONFIG names and
 * the child task files of its `include` directory; these are bkstream's additions: where that file is,
 * the admin server, the state directory and spool, the channel, shutdown, where the host's filesystems
 * are mounted, and the uptime probes' agent-wide bounds and `ping` binary. Kafka comes from the shared
 * KAFKA_BROKERS / TOPIC_PREFIX. No other file of the agent reads the environment for its settings.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { bool, int, optionalStr, str, type Config } from '../common/config.ts';
import type { ConfigProblem } from '../common/errors.ts';
import { GSE_KEY_DOC } from '../common/gse/secret.ts';
import { secretKeySpec, validateSecretKey } from '../common/secrets.ts';
import type { CommonConfig } from '../common/service.ts';
import { DEFAULT_MAX_PING_PROCESSES, DEFAULT_MAX_SOCKETS, DEFAULT_PING_PATH } from './probe/budget.ts';

const MiB = 1024 * 1024;

/** The example main file `bkstream up` runs (relative to the working directory, the repository root). */
export const DEFAULT_AGENT_CONFIG = 'services/agent/examples/bkmonitorbeat.yaml';

export const agentSpec = {
  configFile: str({ env: 'AGENT_CONFIG', default: DEFAULT_AGENT_CONFIG, doc: 'the bkmonitorbeat main file (YAML; its `include` directory holds the child task files)' }),
  adminHost: str({ env: 'AGENT_ADMIN_HOST', default: '127.0.0.1', doc: 'interface of the admin server (`/metrics`, `/healthz`, `POST /-/reload`)' }),
  adminPort: int({ env: 'AGENT_ADMIN_PORT', default: 4320, min: 0, max: 65_535, doc: 'admin port (0 = any free port)' }),
  stateDir: optionalStr({ env: 'AGENT_STATE_DIR', doc: 'directory of the agent\'s state (check times, sequences) and spool; unset = `$DATA_DIR/agent`' }),
  /** Bytes the on-disk spool may hold (256 MiB); past it the oldest records are dropped and counted. */
  spoolMaxBytes: int({ env: 'AGENT_SPOOL_MAX_BYTES', default: 256 * MiB, min: MiB, doc: 'bytes the on-disk spool may hold; past it the oldest records are dropped and counted' }),
  spoolFsync: bool({ env: 'AGENT_SPOOL_FSYNC', default: true, doc: 'fdatasync every spool append batch and acknowledgement (off: a power loss may lose the last seconds; a crash loses nothing either way)' }),
  /** 0 = the main file's `event_buffer_size` (10). */
  channelSize: int({ env: 'AGENT_CHANNEL_SIZE', default: 0, min: 0, max: 1_000_000, doc: 'outputs the channel between tasks and the publisher holds before tasks wait (0 = the main file\'s `event_buffer_size`)' }),
  sendBatchRecords: int({ env: 'AGENT_SEND_BATCH_RECORDS', default: 500, min: 1, max: 100_000, doc: 'records per produce request at most' }),
  sendBatchBytes: int({ env: 'AGENT_SEND_BATCH_BYTES', default: 512 * 1024, min: 1024, max: 64 * MiB, doc: 'bytes per produce request, about' }),
  /** 500 ms: the agent sends a few records a minute; a standing kafkajs connection costs CPU (README). */
  sendIdleDisconnectMs: int({ env: 'AGENT_SEND_IDLE_DISCONNECT_MS', default: 500, min: 0, doc: 'close the Kafka connection after the spool has been empty this long, ms (0 = keep it open)' }),
  /** Graceful stop: how long runs may take to end and the spool to drain into Kafka (8 000 ms). */
  shutdownTimeoutMs: int({ env: 'AGENT_SHUTDOWN_TIMEOUT_MS', default: 8_000, min: 0, doc: 'graceful stop: how long the spool keeps draining into Kafka, ms (what is left stays for the next start)' }),
  /** On: each record goes where its data id's GSE route says (README "Routing by data id"). */
  gseRouting: bool({ env: 'AGENT_GSE_ROUTING', default: true, doc: 'publish each record where its data id\'s GSE route says (routes read from `<prefix>.gse.routes`; a data id without a route, or no such topic: the bkstream topics); off: every record to the bkstream topics on KAFKA_BROKERS, the routes are not read' }),
  /** Opens the SASL passwords of GSE receivers (sealed by the orchestrator's registry with its key). */
  secretKey: { ...secretKeySpec.secretKey, doc: GSE_KEY_DOC },
  secretKeyFile: { ...secretKeySpec.secretKeyFile, doc: 'a file holding that key instead (mode 0600 or stricter, else refused)' },
  secretKeyPrevious: { ...secretKeySpec.secretKeyPrevious, doc: 'the orchestrator\'s older keys (comma separated), for passwords sealed before a key rotation' },
  hostIp: optionalStr({ env: 'AGENT_HOST_IP', doc: 'this host\'s IP, over the main file\'s `ip` (a DaemonSet passes the node IP); the CMDB hostid file still wins' }),
  procRoot: str({ env: 'AGENT_PROC_ROOT', default: '/proc', doc: 'where the host\'s /proc is mounted (the DaemonSet mounts it at /host/proc)' }),
  sysRoot: str({ env: 'AGENT_SYS_ROOT', default: '/sys', doc: 'where the host\'s /sys is mounted' }),
  rootfs: str({ env: 'AGENT_ROOTFS', default: '/', doc: 'where the host\'s root filesystem is mounted (read-only)' }),
  /** One budget for the whole agent: a task with thousands of targets waits for sockets instead of running out of file descriptors. */
  probeMaxSockets: int({ env: 'AGENT_PROBE_MAX_SOCKETS', default: DEFAULT_MAX_SOCKETS, min: 1, max: 1_000_000, doc: 'uptime-probe sockets in flight at most, all tasks together (each http/tcp connection, udp attempt and ping process holds one; the others wait)' }),
  probeMaxPingProcesses: int({ env: 'AGENT_PROBE_MAX_PING_PROCESSES', default: DEFAULT_MAX_PING_PROCESSES, min: 1, max: 100_000, doc: '`ping` processes running at once at most, all ping tasks together' }),
  pingPath: str({ env: 'AGENT_PING_PATH', default: DEFAULT_PING_PATH, doc: 'the `ping` binary the ping tasks run (iputils): a name looked up on PATH, or a path, which must be an executable file' }),
};

export type AgentConfig = Config<typeof agentSpec> & CommonConfig;

/** Cross-field checks. */
export function validateAgent(c: AgentConfig): ConfigProblem[] {
  const problems: ConfigProblem[] = [...validateSecretKey(c)];
  if (c.spoolMaxBytes < 4 * c.sendBatchBytes) {
    problems.push({ key: 'AGENT_SPOOL_MAX_BYTES', message: `must hold at least four produce requests (4 × AGENT_SEND_BATCH_BYTES = ${4 * c.sendBatchBytes})` });
  }
  // A path was set on purpose: it must be there. A bare name is looked up when a ping task runs (a host
  // without `ping` and without ping tasks is fine; a ping task then reports its failure status).
  if (c.pingPath.includes('/')) {
    try {
      accessSync(c.pingPath, constants.X_OK);
      if (!statSync(c.pingPath).isFile()) throw new Error('not a file');
    } catch {
      problems.push({ key: 'AGENT_PING_PATH', message: `must be an executable file, got ${JSON.stringify(c.pingPath)}` });
    }
  }
  return problems;
}
