/** Runs the host agent on its own: `node services/agent/main.ts` (one per host; a DaemonSet on Kubernetes). */
import { runService } from '../common/service.ts';
import { agentService } from './service.ts';

runService(agentService);
