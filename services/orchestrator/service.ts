/**
 * The orchestrator service: drives BKData provisioning flows (tail sampling, virtual metric) as durable
 * state machines behind one circuit breaker per BKData API family. See README.md.
 */
import { defineService, loadServiceConfig } from '../common/service.ts';
import { orchestratorSpec } from './config.ts';
import { Orchestrator } from './orchestrator.ts';

export const orchestratorService = defineService({
  name: 'orchestrator',
  needs: ['store', 'bus'],
  spec: orchestratorSpec,
  config: (env) => loadServiceConfig(orchestratorSpec, env),
  async create(deps, config) {
    return new Orchestrator({ config, store: deps.store, bus: deps.bus, logger: deps.logger, registry: deps.registry, topicPrefix: deps.common.topicPrefix });
  },
});

export default orchestratorService;
