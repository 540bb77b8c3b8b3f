/**
 * The collector service. Today it is the OTLP trace receiver (receiver/); the host-agent tasks of a later
 * issue will be added beside it as further parts of the same Lifecycle.
 */
import { Lifecycle } from '../common/lifecycle.ts';
import { defineService, loadServiceConfig, type ServiceDeps } from '../common/service.ts';
import { topicName } from '../common/topics.ts';
import { receiverSpec, validateCollector, type CollectorConfig } from './config.ts';
import { TraceReceiver } from './receiver/receiver.ts';

export function loadCollectorConfig(env: NodeJS.ProcessEnv): CollectorConfig {
  return loadServiceConfig(receiverSpec, env, validateCollector);
}

/** The receiver built on `deps`, for callers (tests, benchmarks) that need its ports. */
export function createReceiver(deps: ServiceDeps<'store' | 'bus'>, config: CollectorConfig = loadCollectorConfig(deps.env)): TraceReceiver {
  return new TraceReceiver({
    config,
    topic: topicName(config.topicPrefix, 'spans'),
    store: deps.store,
    bus: deps.bus,
    logger: deps.logger.child({ service: 'collector' }),
    registry: deps.registry,
  });
}

export const collector = defineService({
  name: 'collector',
  needs: ['store', 'bus'],
  spec: receiverSpec,
  config: loadCollectorConfig,
  async create(deps, config) {
    const lifecycle = new Lifecycle({ logger: deps.logger, stopTimeoutMs: config.shutdownTimeoutMs + 2_000 });
    lifecycle.add(createReceiver(deps, config));
    return lifecycle;
  },
});

export default collector;
