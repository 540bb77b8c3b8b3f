/** The sampler process: `node services/sampler/main.ts`. */
import { runService } from '../common/service.ts';
import { samplerService } from './service.ts';

runService(samplerService);
