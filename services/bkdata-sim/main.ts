import { runService } from '../common/service.ts';
import { bkdataSimService } from './service.ts';

runService(bkdataSimService);
