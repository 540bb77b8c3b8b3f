/** What the console server tells the front end (`/console/settings.json`). */
export interface Settings {
  refreshIntervalMs: number;
  otlpHttpUrl: string;
  otlpGrpcUrl: string;
}
