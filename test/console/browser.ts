/**
 * Debian's Chromium driven by playwright-core (no browser download): launched headless with the flags
 * this machine needs, a fresh context per page with the console's session in sessionStorage, every
 * console error and page error collected, screenshots under .tmp/console-screenshots/.
 */
import type { ExecutionContext } from 'ava';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const SCREENSHOTS = resolve(import.meta.dirname, '../../.tmp/console-screenshots');
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

export const DESKTOP = { width: 1440, height: 900 };
export const NARROW = { width: 390, height: 844 };

/** The session the console keeps in sessionStorage (web/session.ts). */
export interface ConsoleSession {
  token: string;
  scope: { kind: 'admin' } | { kind: 'app'; bkBizId: number; appName: string };
}

export async function launch(t: ExecutionContext): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
  t.teardown(() => browser.close());
  return browser;
}

export interface OpenPage {
  context: BrowserContext;
  page: Page;
  /** Console errors and uncaught page errors, in order. */
  errors: string[];
  /** Requests to another origin than the console's (there must be none). */
  foreign: string[];
}

/** A fresh context (no cache, no storage) with `session` signed in, the page not yet navigated. */
export async function openPage(browser: Browser, baseUrl: string, options: { session?: ConsoleSession; viewport?: { width: number; height: number } } = {}): Promise<OpenPage> {
  const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP, serviceWorkers: 'block' });
  if (options.session) {
    await context.addInitScript((value: string) => sessionStorage.setItem('bkstream.console.session', value), JSON.stringify(options.session));
  }
  const page = await context.newPage();
  const errors: string[] = [];
  const foreign: string[] = [];
  const origin = new URL(baseUrl).origin;
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()} ${m.location().url}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(origin) && !u.startsWith('data:')) foreign.push(u);
  });
  return { context, page, errors, foreign };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = resolve(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path, fullPage: false });
  return path;
}
