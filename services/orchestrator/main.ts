import { runService } from '../common/service.ts';
import { orchestratorService } from './service.ts';

runService(orchestratorService);
