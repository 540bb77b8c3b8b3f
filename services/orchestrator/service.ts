/**
 * The orchestrator service: drives BKData provisioning flows (tail sampling, virtual metric) as durable
 * state machines behind one circuit breaker per BKData API family. See README.md.
 */
import { loadConfig } from '../common/config.ts';
import type { ServiceModule } from '../common/service.ts';
import { orchestratorSpec } from './config.ts';
import { Orchestrator } from './orchestrator.ts';

export const orchestratorService: ServiceModule = {
  name: 'orchestrator',
  async create(deps) {
    const config = loadConfig(orchestratorSpec, { env: deps.env });
    return new Orchestrator({ config, store: deps.store, bus: deps.bus, logger: deps.logger, registry: deps.registry, topicPrefix: deps.common.topicPrefix });
  },
};

export default orchestratorService;
