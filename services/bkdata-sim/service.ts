/**
 * bkdata-sim as a service: a local, stateful stand-in for the BKData (bk-base) REST API with fault
 * injection, for local runs (`bkstream up` starts it when BKDATA_API_URL is unset) and tests. It is not
 * BKData: see README.md for what it models and what it does not.
 */
import { defineService, loadServiceConfig } from '../common/service.ts';
import { simSpec } from './config.ts';
import { BkdataSim } from './sim.ts';

export const bkdataSimService = defineService({
  name: 'bkdata-sim',
  needs: ['store'],
  spec: simSpec,
  config: (env) => loadServiceConfig(simSpec, env),
  async create(deps, config) {
    return new BkdataSim({ config, logger: deps.logger, registry: deps.registry, store: deps.store });
  },
});

export default bkdataSimService;
