/** Creates a service the way the runner does: its config from `deps.env` first (throws ConfigError), then `create`. */
import type { Component } from '../../services/common/lifecycle.ts';
import type { Need, ServiceDeps, ServiceModule } from '../../services/common/service.ts';

export async function createService<C, N extends Need>(module: ServiceModule<C, N>, deps: ServiceDeps<N>): Promise<Component> {
  return module.create(deps, module.config(deps.env));
}
