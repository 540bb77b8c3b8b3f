/**
 * Runs the host agent on its own: `node services/agent/main.ts` (one per host; a DaemonSet on Kubernetes).
 * With `mode: check` the process ends after the check run (service.ts `agentProcess`).
 */
import { runService } from '../common/service.ts';
import { agentProcess } from './service.ts';

runService(agentProcess);
