/**
 * Records in the reference formats for the clean tests (etl.test.ts, clean-e2e.test.ts): a trace GSE
 * envelope as bk-collector's exporter sends it and a batch of its derived RED metrics (the collector
 * README, Feeds), and the flow settings the orchestrator's builders are called with.
 */
import type { FlowSettings } from '../../services/orchestrator/config.ts';

export const settings: FlowSettings = {
  operator: 'admin',
  maintainers: ['zoe'],
  defaultBkBizId: 2,
  tailSamplingProjectId: 123,
  virtualMetricProjectId: 456,
  requiredTempConvertNode: false,
  dataExpiresDays: 30,
  virtualMetricStorage: 'mysql-default',
  virtualMetricStorageExpireDays: 30,
  mysqlStorageNodeType: 'mysql_storage',
  storageRegistryAreaCode: 'inland',
  flowClusterGroup: 'default_inland',
  flinkCode: 'class X {}',
};
export const app = { bkBizId: 2, appName: 'shop' };

// A span as bk-collector writes it in the envelope (reference-format fields; the collector README, Feeds).
export const SPAN_A =
  '{"span_name":"GET /cart","span_id":"a1b2c3d4e5f60718","trace_id":"0af7651916cd43dd8448eb211c80319c","parent_span_id":"","kind":2,' +
  '"start_time":1764662704000000,"end_time":1764662704250000,"elapsed_time":250000,"trace_state":"","links":[],' +
  '"events":[{"name":"cache miss","timestamp":1764662704100000,"attributes":{}}],"status":{"code":0,"message":""},' +
  '"attributes":{"http.method":"GET","http.status_code":200,"ratio":1.0,"big":12345678901234567890,"note":"购物车"},' +
  '"resource":{"service.name":"cart","bk.instance.id":":cart::10.0.0.1:"},"bk_biz_id":2,"app_name":"shop","iterationindex":0}';
export const SPAN_B =
  '{"span_name":"SELECT","span_id":"0000000000000002","trace_id":"0af7651916cd43dd8448eb211c80319c","parent_span_id":"a1b2c3d4e5f60718",' +
  '"kind":3,"start_time":1764662704010000,"end_time":1764662704020000,"elapsed_time":10000,"status":{"code":2,"message":"déjà \\"vu\\""},' +
  '"attributes":{"db.system":"mysql","rows":1e3,"tiny":0.0001},"resource":{"service.name":"cart"},"iterationindex":1}';
export const ENVELOPE = `{"datetime":"2025-12-02 16:05:04","utctime":"2025-12-02 08:05:04","time":1764662704,"dataid":1500001,"items":[${SPAN_A},${SPAN_B}]}`;

// A derived-metric batch as bk-collector's metrics converter sends it (the collector README, Feeds).
export const POINT_A =
  '{"metrics":{"bk_apm_duration":250000000},"target":"bk-collector","timestamp":1764662704250,"dimension":{"app_name":"shop",' +
  '"kind":"2","span_name":"GET /cart","status_code":"0","service_name":"cart","http_method":"GET","http_status_code":"200",' +
  '"http_favor":"1.1","telemetry_sdk_name":"opentelemetry","apdex_type":"satisfied","scope_name":""}}';
export const POINT_B = '{"metrics":{"bk_apm_duration":10000000.7},"target":"bk-collector","timestamp":"1764662704020","dimension":{"kind":"3","db_system":"mysql","status_code":"2"}}';
export const BATCH = `{"dataid":1500002,"version":"1.0.0","data":[${POINT_A},${POINT_B}]}`;
