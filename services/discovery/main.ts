/** The discovery process: `node services/discovery/main.ts`. */
import { runService } from '../common/service.ts';
import { discoveryService } from './service.ts';

runService(discoveryService);
