/** A raw HTTP client of bkdata-sim for its tests: the envelope as it comes, and a seeded raw data + clean. */
import type { BkdataSim } from '../../services/bkdata-sim/service.ts';

export interface Envelope {
  result: boolean;
  code: string;
  message: string;
  data: unknown;
}

export type SimCall = (method: string, path: string, body?: unknown) => Promise<{ status: number; env: Envelope }>;

export function api(sim: BkdataSim): SimCall {
  const base = sim.url().replace(/\/$/, '');
  return async (method, path, body) => {
    const res = await fetch(`${base}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    return { status: res.status, env: (await res.json()) as Envelope };
  };
}

/** Raw data 901 (`r`) of business 2 and its clean `2_tbl`. */
export async function seed(call: SimCall): Promise<{ rawId: number; rt: string }> {
  const raw = await call('POST', '/v3/access/deploy_plan/', { bk_biz_id: 2, data_scenario: 'custom', access_raw_data: { raw_data_name: 'r', preassigned_data_id: 901 } });
  const clean = await call('POST', '/v3/databus/cleans/', { bk_biz_id: 2, raw_data_id: 901, clean_config_name: 'c', result_table_name: 'tbl', json_config: '{}', fields: [{ field_name: 'a' }] });
  return { rawId: (raw.env.data as { raw_data_id: number }).raw_data_id, rt: (clean.env.data as { result_table_id: string }).result_table_id };
}
