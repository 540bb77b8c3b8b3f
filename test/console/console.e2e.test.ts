/**
 * The console in Debian's Chromium against the whole pipeline running in this process with demo traffic
 * (traces from the OpenTelemetry SDK over OTLP, agent documents through the topics): every page loads
 * without console errors and without a request to another origin; the service map shows the expected
 * nodes and edges with figures; a trace opens as a waterfall with its span count; hosts show agents and
 * non-empty charts (from derived series and from basereport documents); an application created in the
 * console gets a token whose OTLP export then appears in the console without a reload; flows can be
 * retried and stopped; an application token sees its application only; narrow windows do not overflow.
 * Screenshots of every page go to .tmp/console-screenshots/.
 */
import test, { type ExecutionContext } from 'ava';
import type { Browser, Page } from 'playwright-core';
import { createApplication } from '../../services/collector/applications.ts';
import { waitFor } from '../helpers/kafka.ts';
import { DESKTOP, launch, NARROW, openPage, screenshot, type ConsoleSession, type OpenPage } from './browser.ts';
import { agentOutputs, demoTraces, exportOtlp, HOSTS, produceAgentOutputs, SPANS_PER_TRACE } from './demo.ts';
import { ADMIN_TOKEN, getJson, startStack, type Stack } from './stack.ts';

const ADMIN: ConsoleSession = { token: ADMIN_TOKEN, scope: { kind: 'admin' } };
const DEMO_TRACES = 16;
const STUCK_APP = 'stuckapp';

interface World {
  stack: Stack;
  browser: Browser;
  shopToken: string;
  traceIds: string[];
}

// The stack is shared by the tests of this file: hooks may not use t.teardown, so cleanups run in after.always.
const cleanups: (() => unknown)[] = [];
const hookContext = { teardown: (fn: () => unknown) => void cleanups.unshift(fn) } as unknown as ExecutionContext;
let world: Promise<World> | undefined;

test.before(() => {
  world = (async () => {
    const stack = await startStack(hookContext, { stuckApp: STUCK_APP });
    const { token } = await createApplication(stack.store, { bkBizId: 2, appName: 'shop', appAlias: 'Demo shop' });
    await createApplication(stack.store, { bkBizId: 2, appName: STUCK_APP });
    const demo = demoTraces(DEMO_TRACES);
    await exportOtlp(stack.urls.otlpHttp, token, demo.spans);
    await produceAgentOutputs(stack.kit, stack.topics, agentOutputs());
    // flows: one that succeeds, one whose clean never starts (it fails and can be retried)
    for (const app of ['shop', STUCK_APP]) {
      const r = await fetch(`${stack.urls.orchestrator}/api/v1/flows`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` }, body: JSON.stringify({ action: 'create_or_update', flow_type: 'tail_sampling', bk_biz_id: 2, app_name: app, config: { data_id: app === 'shop' ? 1_500_001 : 1_500_002, tail_percentage: 10 }, operator: 'demo' }) });
      if (r.status !== 202) throw new Error(`flow submit: ${r.status} ${await r.text()}`);
    }
    await waitFor('the demo traces in storage', async () => (await getJson<{ items: unknown[] }>(`${stack.urls.storage}/api/v1/apps/2/shop/traces?limit=100`)).items.length === DEMO_TRACES, 60_000, 200);
    await waitFor('the demo topology in discovery', async () => (await getJson<{ total: number }>(`${stack.urls.discovery}/api/v1/apps/2/shop/relations`)).total >= 5, 60_000, 200);
    await waitFor('the agents\' heartbeats in storage', async () => (await getJson<{ items: unknown[] }>(`${stack.urls.storage}/api/v1/events?event_type=heartbeat&limit=1000`)).items.length === HOSTS.length * 30, 60_000, 200);
    await waitFor('the flows settled', async () => {
      const { flows } = await getJson<{ flows: { app_name: string; status: string }[] }>(`${stack.urls.orchestrator}/api/v1/flows`);
      return flows.find((f) => f.app_name === 'shop')?.status === 'success' && /failed/.test(flows.find((f) => f.app_name === STUCK_APP)?.status ?? '');
    }, 60_000, 200);
    const browser = await chromium(hookContext);
    return { stack, browser, shopToken: token, traceIds: demo.traceIds };
  })();
  return world.then(() => undefined);
});

test.after.always(async () => {
  for (const fn of cleanups) await Promise.resolve(fn()).catch(() => undefined);
});

async function chromium(t: ExecutionContext): Promise<Browser> {
  return launch(t);
}

async function w(): Promise<World> {
  if (!world) throw new Error('the stack did not start');
  return world;
}

/** Opens `hash` of the console as the admin (or `session`), closed after the test. */
async function visit(t: ExecutionContext, hash: string, options: { session?: ConsoleSession; viewport?: { width: number; height: number } } = {}): Promise<OpenPage> {
  const { browser, stack } = await w();
  const p = await openPage(browser, stack.urls.console, { session: options.session ?? ADMIN, viewport: options.viewport ?? DESKTOP });
  t.teardown(() => p.context.close());
  await p.page.goto(`${stack.urls.console}/${hash}`);
  return p;
}

function clean(t: ExecutionContext, p: OpenPage, allowed: RegExp[] = []): void {
  const errors = p.errors.filter((e) => !allowed.some((re) => re.test(e)));
  t.deepEqual(errors, [], 'no console errors');
  t.deepEqual(p.foreign, [], 'no request leaves the console\'s origin');
}

async function noHorizontalOverflow(page: Page): Promise<boolean> {
  return (await page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1')) === true;
}

/** An attribute of every element `selector` matches. */
async function attributes(page: Page, selector: string, name: string): Promise<string[]> {
  const out: string[] = [];
  for (const el of await page.locator(selector).all()) out.push((await el.getAttribute(name)) ?? '');
  return out;
}

test.serial('sign-in: the token is kept in sessionStorage only and every API call carries it as a bearer token', async (t) => {
  const { browser, stack } = await w();
  const p = await openPage(browser, stack.urls.console);
  t.teardown(() => p.context.close());
  await p.page.goto(`${stack.urls.console}/`);
  await p.page.waitForURL(/#\/signin$/);
  await screenshot(p.page, 'signin');
  await p.page.fill('input[name=token]', ADMIN_TOKEN);
  const authorised = p.page.waitForRequest((r) => r.url().includes('/api/collector/apps') && r.headers().authorization === `Bearer ${ADMIN_TOKEN}`);
  await p.page.click('button[type=submit]');
  await authorised;
  await p.page.waitForURL(/#\/apps$/);
  await p.page.locator('[data-testid=apps][data-loaded=yes]').waitFor();
  const storage = await p.page.evaluate(() => ({ local: JSON.stringify(localStorage), session: sessionStorage.getItem('bkstream.console.session') }));
  t.is(storage.local, '{}', 'nothing in localStorage');
  t.deepEqual(JSON.parse(storage.session ?? 'null'), { token: ADMIN_TOKEN, scope: { kind: 'admin' } });
  const calls: string[] = [];
  p.page.on('request', (r) => {
    if (r.url().includes('/api/')) calls.push(r.headers().authorization ?? 'none');
  });
  await p.page.reload();
  await p.page.locator('[data-testid=apps] tr[data-app="2/shop"]').waitFor();
  t.true(calls.length > 0 && calls.every((a) => a === `Bearer ${ADMIN_TOKEN}`), calls.join(', '));
  await p.page.click('text=Sign out');
  await p.page.waitForURL(/#\/signin$/);
  t.is(await p.page.evaluate(() => sessionStorage.getItem('bkstream.console.session')), null);
  clean(t, p);
});

test.serial('applications: list with flow status; create shows the token once with the SDK snippet; its OTLP export appears without a reload; rotate and delete ask first', async (t) => {
  const { stack } = await w();
  const p = await visit(t, '#/apps');
  const { page } = p;
  const shop = page.locator('[data-testid=apps] tr[data-app="2/shop"]');
  await shop.locator('text=tail_sampling: success').waitFor();
  await page.locator(`[data-testid=apps] tr[data-app="2/${STUCK_APP}"] .badge`).filter({ hasText: /failed/ }).waitFor();
  t.regex(await shop.innerText(), /Demo shop/);
  await screenshot(page, 'apps');

  // create
  await page.fill('form[aria-label="new application"] input[name=app_name]', 'newapp');
  await page.click('form[aria-label="new application"] button[type=submit]');
  const token = await page.locator('[data-testid=token]').inputValue();
  t.regex(token, /^bkst_[A-Za-z0-9_-]{43}$/);
  const snippet = await page.locator('[data-testid=sdk-snippet]').innerText();
  t.true(snippet.includes(`x-bk-token=${token}`));
  t.true(snippet.includes(stack.urls.otlpHttp));
  await page.click('text=Copy token');
  await page.locator('text=Copied the token.').waitFor();
  await screenshot(page, 'apps-token');
  await page.locator('[data-testid=apps] tr[data-app="2/newapp"]').waitFor();
  await page.click('text=Done');
  t.is(await page.locator('[data-testid=token]').count(), 0, 'the token is not shown again');

  // the token works for an OTLP export, and the traces page shows the new trace by itself
  const traces = await visit(t, '#/apps/2/newapp/traces');
  await traces.page.locator('[data-testid=traces][data-loaded=yes]').waitFor();
  t.is(await traces.page.locator('[data-testid=traces] tr[data-trace]').count(), 0);
  const demo = demoTraces(1);
  await exportOtlp(stack.urls.otlpHttp, token, demo.spans);
  await traces.page.locator(`[data-testid=traces] tr[data-trace="${demo.traceIds[0] as string}"]`).waitFor({ timeout: 30_000 });
  clean(t, traces);

  // rotate: asked first; a new token is shown once
  const row = page.locator('[data-testid=apps] tr[data-app="2/newapp"]');
  await row.locator('text=Rotate token').click();
  await row.locator('text=Cancel').click();
  await row.locator('text=Rotate token').click();
  await row.locator('text=Yes, rotate').click();
  const rotated = await page.locator('[data-testid=token]').inputValue();
  t.regex(rotated, /^bkst_/);
  t.not(rotated, token);
  await page.click('text=Done');

  // delete: asked first; the DELETE goes to the collector admin with the token; the console shows its answer
  await row.locator('text=Delete').click();
  await row.locator('text=Cancel').click();
  t.is(await row.count(), 1, 'cancel deletes nothing');
  await row.locator('text=Delete').click();
  const [request, response] = await Promise.all([
    page.waitForRequest((r) => r.method() === 'DELETE'),
    page.waitForResponse((r) => r.request().method() === 'DELETE'),
    row.locator('text=Yes, delete').click(),
  ]);
  t.true(request.url().endsWith('/api/collector/apps/2/newapp'));
  t.is(request.headers().authorization, `Bearer ${ADMIN.token}`);
  const direct = await fetch(`${stack.urls.collectorAdmin}/api/v1/apps/2/newapp`, { method: 'DELETE', headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const outcome = await page.locator('[data-testid=app-outcome]').innerText();
  if (response.ok()) {
    t.is(outcome, 'Deleted 2/newapp.');
    await row.waitFor({ state: 'detached' });
  } else {
    t.is(response.status(), direct.status, 'the console shows what the collector answers');
    t.regex(outcome, new RegExp(`collector: .*\\(${response.status()}\\)`));
  }
  clean(t, p, response.ok() ? [] : [/Failed to load resource: the server responded with a status of \d+/]);
});

test.serial('service map: the expected nodes and edges with requests and error rates; a node opens its endpoints, instances and hosts', async (t) => {
  const p = await visit(t, '#/apps/2/shop/map');
  const { page } = p;
  const graph = page.locator('[data-testid=service-map]');
  await graph.waitFor();
  await page.locator('[data-testid=map-nodes] tr[data-node="gateway"][data-x]:not([data-x=""])').waitFor({ state: 'attached' });
  const nodes = await attributes(page, '[data-testid=map-nodes] tr[data-node]', 'data-node');
  for (const n of ['gateway', 'order-svc', 'billing', 'order-svc-mysql', 'order-svc-kafka', 'billing-kafka', 'http:payment-gw']) t.true(nodes.includes(n), `node ${n} in ${nodes.join(', ')}`);
  t.regex(await graph.getAttribute('aria-label') ?? '', new RegExp(`service map: ${nodes.length} nodes`));
  await page.locator('[data-testid=map-edges][data-figures=yes]').waitFor({ state: 'attached' });
  const edges: string[][] = [];
  for (const row of await page.locator('[data-testid=map-edges] tr[data-edge]').all()) {
    const cells = await row.locator('td').allTextContents();
    edges.push([(await row.getAttribute('data-edge')) ?? '', cells[3] ?? '', cells[4] ?? '']);
  }
  const edge = (id: string): string[] | undefined => edges.find((e) => e[0] === id);
  for (const id of ['gateway->order-svc', 'order-svc->order-svc-mysql', 'order-svc->order-svc-kafka', 'order-svc-kafka->billing-kafka', 'billing-kafka->billing', 'gateway->http:payment-gw']) t.truthy(edge(id), `edge ${id} in ${edges.map((e) => e[0]).join(', ')}`);
  t.deepEqual(edge('order-svc->order-svc-mysql')?.slice(1), [String(DEMO_TRACES), '25 %'], 'every fourth INSERT failed');
  t.deepEqual(edge('gateway->order-svc')?.slice(1), [String(DEMO_TRACES), '0 %']);
  t.deepEqual(edge('gateway->http:payment-gw')?.slice(1), [String(DEMO_TRACES), '0 %']);
  await screenshot(page, 'map');

  // a click on the order-svc node (where cytoscape drew it) opens its panel
  const row = page.locator('[data-testid=map-nodes] tr[data-node="order-svc"]');
  const [x, y] = [Number(await row.getAttribute('data-x')), Number(await row.getAttribute('data-y'))];
  const box = await graph.boundingBox();
  if (!box) throw new Error('the graph has no box');
  await page.mouse.click(box.x + x, box.y + y);
  const panel = page.locator('[data-testid=node-panel]');
  await panel.locator('h2', { hasText: 'order-svc' }).waitFor();
  await panel.locator('[data-testid=node-hosts] li').first().waitFor();
  await screenshot(page, 'map-node');
  t.regex(await panel.locator('[data-testid=node-endpoints]').innerText(), /POST \/orders/);
  t.regex(await panel.locator('[data-testid=node-instances]').innerText(), /order-svc/);
  t.regex(await panel.locator('[data-testid=node-hosts]').innerText(), /10\.0\.0\.2/);
  t.regex(await panel.innerText(), /16 requests · 0 % errors/);
  clean(t, p);
});

test.serial('traces: search with the filters; a trace opens as a waterfall with every span; a span shows its attributes and events', async (t) => {
  const { traceIds } = await w();
  const p = await visit(t, '#/apps/2/shop/traces');
  const { page } = p;
  await page.locator('[data-testid=traces][data-loaded=yes]').waitFor();
  t.is(await page.locator('[data-testid=traces] tr[data-trace]').count(), DEMO_TRACES);
  await screenshot(page, 'traces');
  const search = async (fields: Record<string, string>): Promise<number> => {
    for (const [name, value] of Object.entries(fields)) {
      const el = page.locator(`form[aria-label="trace search"] [name=${name}]`);
      if (name === 'status' || name === 'range') await el.selectOption(value);
      else await el.fill(value);
    }
    await page.click('form[aria-label="trace search"] button[type=submit]');
    await page.waitForURL(new RegExp(Object.entries(fields).filter(([, v]) => v !== '').map(([k]) => `${k}=`).join('.*')));
    const query = new URL(page.url()).hash.split('?')[1] ?? '';
    await page.locator(`[data-testid=traces][data-for="${query}"]`).waitFor({ state: 'attached' });
    return page.locator('[data-testid=traces] tr[data-trace]').count();
  };
  t.is(await search({ status: 'error' }), DEMO_TRACES / 4);
  t.is(await search({ status: '', service: 'billing', endpoint: 'orders process' }), DEMO_TRACES);
  t.is(await search({ service: '', endpoint: '', attr: 'user.tier=gold' }), DEMO_TRACES / 2);
  t.is(await search({ attr: '', min: '1000' }), 0);

  const failed = traceIds[3] as string;
  await page.goto(`${(await w()).stack.urls.console}/#/apps/2/shop/traces/${failed}`);
  const wf = page.locator('[data-testid=waterfall]');
  await wf.waitFor();
  t.is(await wf.getAttribute('data-spans'), String(SPANS_PER_TRACE));
  t.is(await page.locator('.wf-row').count(), SPANS_PER_TRACE);
  t.deepEqual((await attributes(page, '.wf-row', 'data-depth')).map(Number), [0, 1, 2, 3, 3, 4, 1]);
  t.regex(await page.locator('[data-testid=trace-summary]').innerText(), /7 spans · 3 services · .* · 1 errors/);
  await page.locator('.wf-row', { hasText: 'INSERT orders' }).click();
  const detail = page.locator('[data-testid=span-detail]');
  await detail.waitFor();
  t.regex(await detail.innerText(), /db\.system\s+mysql/);
  t.regex(await detail.innerText(), /error: deadlock found/);
  t.regex(await page.locator('[data-testid=span-events]').innerText(), /retry.*"attempt":2/);
  await screenshot(page, 'trace');
  // folding the order-svc server span hides its three descendants
  await page.locator('.wf-row', { hasText: 'order-svc POST /orders' }).locator('button.caret').click();
  t.is(await page.locator('.wf-row').count(), SPANS_PER_TRACE - 3);
  clean(t, p);
});

test.serial('hosts: agents with heartbeat age, version and tasks; a host shows non-empty charts (derived series, or basereport documents), probes and exceptions', async (t) => {
  const p = await visit(t, '#/hosts');
  const { page } = p;
  for (const h of HOSTS) await page.locator(`[data-testid=agents] tr[data-host="${h.ip}"]`).waitFor();
  const web1 = await page.locator('[data-testid=agents] tr[data-host="10.0.0.1"]').innerText();
  t.regex(web1, /web-1/);
  t.regex(web1, /\d+ (s|min) ago/);
  t.regex(web1, /3\.6\.0/);
  t.regex(web1, /\t7\t/);
  await screenshot(page, 'hosts');
  for (const ip of ['10.0.0.1', '10.0.0.2']) {
    await page.goto(`${(await w()).stack.urls.console}/#/hosts/0/${ip}`);
    await page.locator('[data-testid=chart-source]').waitFor();
    // storage derives cpu, memory, disk and load series from the basereport documents; the network chart reads the documents
    t.regex(await page.locator('[data-testid=chart-source]').innerText(), /^cpu usage, memory used, disk used, load: host series derived by storage; network: read from 30 basereport documents\.$/);
    for (const [chart, source] of [['cpu', 'series'], ['mem', 'series'], ['disk', 'series'], ['net', 'documents'], ['load', 'series']] as const) {
      const c = page.locator(`[data-chart=${chart}]`);
      t.is(await c.getAttribute('data-source'), source, `${ip} ${chart}`);
      t.true(Number(await c.getAttribute('data-points')) >= 30, `${ip} ${chart} has points`);
      await c.locator('canvas').waitFor();
    }
    await page.locator('[data-testid=probes] tbody tr', { hasText: 'http://127.0.0.1:9/health' }).first().waitFor();
    t.true(await page.locator('[data-testid=probes] tbody tr.failed').count() >= 1, 'the failed probe is marked');
    await page.locator('[data-testid=exceptions] tbody tr', { hasText: 'disk full' }).waitFor();
    if (ip === '10.0.0.2') await screenshot(page, 'host');
  }
  clean(t, p);
});

test.serial('flows: status, step log and breakers; a failed flow is retried; a flow is stopped after a confirmation', async (t) => {
  const { stack } = await w();
  const p = await visit(t, '#/flows');
  const { page } = p;
  const shop = page.locator('[data-testid=flows] tr[data-flow="2:shop:tail_sampling"]');
  const stuck = page.locator(`[data-testid=flows] tr[data-flow="2:${STUCK_APP}:tail_sampling"]`);
  await shop.locator('.badge', { hasText: 'success' }).waitFor();
  await stuck.locator('.badge', { hasText: /failed/ }).waitFor();
  for (const family of ['access', 'databus', 'auth', 'dataflow', 'resourcecenter']) await page.locator(`[data-breaker=${family}]`, { hasText: 'closed' }).waitFor();
  await shop.locator('text=Step log').click();
  await page.locator('[data-testid=step-log] tbody tr').first().waitFor();
  t.true(await page.locator('[data-testid=step-log] tbody tr').count() >= 3);
  await screenshot(page, 'flows');
  t.true(await shop.locator('button', { hasText: 'Retry' }).isDisabled(), 'a successful flow has nothing to retry');
  const retried = page.waitForResponse((r) => r.url().endsWith(`/api/orchestrator/flows/2/${STUCK_APP}/tail_sampling/retry`));
  await stuck.locator('button', { hasText: 'Retry' }).click();
  t.is((await retried).status(), 200);
  await page.locator('[data-testid=flow-outcome]', { hasText: `Retrying 2:${STUCK_APP}:tail_sampling.` }).waitFor();
  await shop.locator('button', { hasText: 'Stop' }).click();
  await shop.locator('text=Cancel').click();
  await shop.locator('button', { hasText: 'Stop' }).click();
  await shop.locator('text=Yes, stop').click();
  await page.locator('[data-testid=flow-outcome]', { hasText: 'Stopping 2:shop:tail_sampling.' }).waitFor();
  await shop.locator('td', { hasText: /^stopped$/ }).first().waitFor({ timeout: 30_000 });
  const { flows } = await getJson<{ flows: { app_name: string; desired: string }[] }>(`${stack.urls.orchestrator}/api/v1/flows`);
  t.is(flows.find((f) => f.app_name === 'shop')?.desired, 'stopped');
  clean(t, p);
});

test.serial('an application token sees its application only', async (t) => {
  const { shopToken } = await w();
  const session: ConsoleSession = { token: shopToken, scope: { kind: 'app', bkBizId: 2, appName: 'shop' } };
  const p = await visit(t, '#/', { session });
  await p.page.waitForURL(/#\/apps\/2\/shop\/map$/);
  await p.page.locator('[data-testid=service-map]').waitFor();
  t.deepEqual(await p.page.locator('.main-nav a').allInnerTexts(), ['Service map', 'Traces']);
  t.is(await p.page.locator('.who').innerText(), 'app 2/shop');
  await p.page.goto(`${(await w()).stack.urls.console}/#/hosts`);
  await p.page.locator('text=this page needs the admin token').waitFor();
  await p.page.goto(`${(await w()).stack.urls.console}/#/apps/2/${STUCK_APP}/traces`);
  await p.page.locator('text=this token is for application 2/shop only').waitFor();
  clean(t, p);
});

test.serial('narrow windows: every page fits a phone-sized viewport', async (t) => {
  const { traceIds } = await w();
  for (const [name, hash] of [['apps', '#/apps'], ['map', '#/apps/2/shop/map'], ['traces', '#/apps/2/shop/traces'], ['trace', `#/apps/2/shop/traces/${traceIds[0] as string}`], ['hosts', '#/hosts'], ['host', '#/hosts/0/10.0.0.2'], ['flows', '#/flows']] as const) {
    const p = await visit(t, hash, { viewport: NARROW });
    const ready = { apps: '[data-testid=apps][data-loaded=yes]', map: '[data-testid=service-map]', traces: '[data-testid=traces][data-loaded=yes]', trace: '[data-testid=waterfall]', hosts: '[data-testid=agents][data-loaded=yes]', host: '[data-chart=cpu] canvas', flows: '[data-testid=flows][data-loaded=yes]' }[name];
    await p.page.locator(ready).first().waitFor();
    t.true(await noHorizontalOverflow(p.page), `${name} overflows`);
    await screenshot(p.page, `narrow-${name}`);
    clean(t, p);
    await p.context.close();
  }
});
