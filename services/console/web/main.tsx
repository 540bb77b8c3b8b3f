/** The console's entry: reads the settings the server gives (a meta tag of index.html), then renders the app. */
import { render } from 'preact';
import { App } from './app.tsx';
import { setRefreshInterval } from './poll.ts';
import type { Settings } from './settings.ts';
import './styles.css';

async function boot(): Promise<void> {
  const root = document.getElementById('root') as HTMLElement;
  let settings: Settings = { refreshIntervalMs: 5_000, otlpHttpUrl: 'http://127.0.0.1:4318/v1/traces', otlpGrpcUrl: 'http://127.0.0.1:4317' };
  // The server puts the settings into index.html, so the first API call waits for nothing else.
  const meta = document.querySelector('meta[name="bkstream-settings"]')?.getAttribute('content');
  try {
    if (meta) settings = JSON.parse(meta) as Settings;
    else {
      const res = await fetch('/console/settings.json', { cache: 'no-store' });
      if (res.ok) settings = (await res.json()) as Settings;
    }
  } catch {
    // the defaults above
  }
  setRefreshInterval(settings.refreshIntervalMs);
  root.textContent = '';
  render(<App settings={settings} />, root);
}

void boot();
