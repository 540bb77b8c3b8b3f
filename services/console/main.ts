import { runService } from '../common/service.ts';
import { consoleService } from './service.ts';

runService(consoleService);
