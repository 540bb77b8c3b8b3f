/** Runs the collector service on its own: `node services/collector/main.ts`. */
import { runService } from '../common/service.ts';
import { collector } from './service.ts';

runService(collector);
