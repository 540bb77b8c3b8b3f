/**
 * The collector service. Today it is the OTLP trace receiver (receiver/); the host-agent tasks of a later
 * issue will be added beside it as further parts of the same Lifecycle.
 */
import { loadConfig } from '../common/config.ts';
import { Lifecycle, type Component } from '../common/lifecycle.ts';
import type { ServiceDeps, ServiceModule } from '../common/service.ts';
import { topicName } from '../common/topics.ts';
import { collectorSpec, validateCollector, type CollectorConfig } from './config.ts';
import { TraceReceiver } from './receiver/receiver.ts';

export function loadCollectorConfig(env: NodeJS.ProcessEnv): CollectorConfig {
  return loadConfig(collectorSpec, { env, validate: validateCollector });
}

/** The receiver built on `deps`, for callers (tests, benchmarks) that need its ports. */
export function createReceiver(deps: ServiceDeps, config: CollectorConfig = loadCollectorConfig(deps.env)): TraceReceiver {
  return new TraceReceiver({
    config,
    topic: topicName(config.topicPrefix, 'spans'),
    store: deps.store,
    bus: deps.bus,
    logger: deps.logger.child({ service: 'collector' }),
    registry: deps.registry,
  });
}

export const collector: ServiceModule = {
  name: 'collector',
  async create(deps: ServiceDeps): Promise<Component> {
    const config = loadCollectorConfig(deps.env);
    const lifecycle = new Lifecycle({ logger: deps.logger, stopTimeoutMs: config.shutdownTimeoutMs + 2_000 });
    lifecycle.add(createReceiver(deps, config));
    return lifecycle;
  },
};

export default collector;
