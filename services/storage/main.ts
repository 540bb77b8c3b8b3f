/** The storage process: `node services/storage/main.ts`. */
import { runService } from '../common/service.ts';
import { storageService } from './service.ts';

runService(storageService);
