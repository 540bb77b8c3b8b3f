/**
 * bkdata-sim as a service: a local, stateful stand-in for the BKData (bk-base) REST API with fault
 * injection, for local runs (`bkstream up` starts it when BKDATA_API_URL is unset) and tests. It is not
 * BKData: see README.md for what it models and what it does not.
 */
import { loadConfig } from '../common/config.ts';
import type { ServiceModule } from '../common/service.ts';
import { simSpec } from './config.ts';
import { BkdataSim } from './sim.ts';

export const bkdataSimService: ServiceModule = {
  name: 'bkdata-sim',
  async create(deps) {
    const config = loadConfig(simSpec, { env: deps.env });
    return new BkdataSim({ config, logger: deps.logger, registry: deps.registry, store: deps.store });
  },
};

export default bkdataSimService;
