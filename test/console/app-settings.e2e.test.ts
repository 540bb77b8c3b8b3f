/**
 * An application's settings page in Debian's Chromium against the whole pipeline in this process
 * (stack.ts): switching tail sampling on with a condition PATCHes the application through the console's
 * proxy (read back through the collector's apps API), the collector queues a tail_sampling flow command
 * and the orchestrator's flow appears on the page and runs to success in bkdata-sim; a bad value is
 * refused by the collector and its message is shown next to the field, the application unchanged.
 */
import test from 'ava';
import { createApplication } from '../../services/collector/applications.ts';
import { waitFor } from '../helpers/kafka.ts';
import { launch, NARROW, openPage, screenshot, type ConsoleSession } from './browser.ts';
import { ADMIN_TOKEN, getJson, startStack } from './stack.ts';

const ADMIN: ConsoleSession = { token: ADMIN_TOKEN, scope: { kind: 'admin' } };

interface AppAnswer {
  application: {
    traceRetentionDays: number;
    tailSampling: boolean;
    tailSamplingConfig: Record<string, unknown>;
    virtualMetric: boolean;
    provisionedFlows: string[];
  };
}

interface FlowAnswer {
  flows: { app_name: string; flow_type: string; status: string; desired: string }[];
}

test('settings: tail sampling switched on with a condition reaches the collector and starts its flow; a bad value shows the collector\'s message', async (t) => {
  const stack = await startStack(t);
  await createApplication(stack.store, { bkBizId: 2, appName: 'shop', tracesDataId: 1_500_001 });
  const appUrl = `${stack.urls.collectorAdmin}/api/v1/apps/2/shop`;
  const browser = await launch(t);
  const p = await openPage(browser, stack.urls.console, { session: ADMIN });
  t.teardown(() => p.context.close());
  const { page } = p;
  const form = page.locator('form[data-testid=app-settings]');

  await page.goto(`${stack.urls.console}/#/apps/2/shop/settings`);
  await form.waitFor();
  t.is(await form.locator('input[name=trace_retention_days]').inputValue(), '7', 'the current retention');
  t.false(await form.locator('input[name=tail_sampling]').isChecked(), 'tail sampling off');
  t.false(await form.locator('input[name=virtual_metric]').isChecked(), 'virtual metrics off');
  await page.locator('[data-testid=app-flows][data-loaded=yes]').waitFor();
  t.is(await page.locator('[data-testid=app-flows] tr[data-flow-type]').count(), 0, 'no flows yet');
  t.true(await form.locator('button[type=submit]').isDisabled(), 'nothing to save before a change');

  // tail sampling on, 20 %, one condition; retention 14 days
  await form.locator('input[name=tail_sampling]').check();
  await form.locator('input[name=tail_percentage]').fill('20');
  await form.locator('input[name=trace_retention_days]').fill('14');
  await form.locator('[data-testid=add-condition]').click();
  await form.locator('input[name=condition-0-key]').fill('attributes.http.status_code');
  await form.locator('select[name=condition-0-method]').selectOption('gte');
  await form.locator('input[name=condition-0-values]').fill('500, 503');
  await form.locator('[data-testid=add-condition]').click();
  await form.locator('select[name=condition-1-connector]').selectOption('or');
  await form.locator('input[name=condition-1-key]').fill('status.code');
  await form.locator('select[name=condition-1-method]').selectOption('eq');
  await form.locator('input[name=condition-1-values]').fill('2');
  const patched = page.waitForRequest((r) => r.method() === 'PATCH' && r.url().endsWith('/api/collector/apps/2/shop'));
  await form.locator('button[type=submit]').click();
  const request = await patched;
  t.is(request.headers().authorization, `Bearer ${ADMIN_TOKEN}`);
  t.deepEqual(request.postDataJSON(), {
    trace_retention_days: 14,
    tail_sampling: true,
    tail_sampling_config: {
      tail_percentage: 20,
      tail_conditions: [
        { key: 'attributes.http.status_code', method: 'gte', value: ['500', '503'] },
        { condition: 'or', key: 'status.code', method: 'eq', value: ['2'] },
      ],
    },
  }, 'only what changed is sent');
  const outcome = page.locator('[data-testid=settings-outcome]');
  await outcome.waitFor();
  t.regex(await outcome.innerText(), /create_or_update tail_sampling/);

  // the change, read back through the collector's apps API
  const saved = (await getJson<AppAnswer>(appUrl)).application;
  t.is(saved.traceRetentionDays, 14);
  t.true(saved.tailSampling);
  t.false(saved.virtualMetric);
  t.deepEqual(saved.tailSamplingConfig, {
    tail_percentage: 20,
    tail_conditions: [
      { key: 'attributes.http.status_code', method: 'gte', value: ['500', '503'] },
      { condition: 'or', key: 'status.code', method: 'eq', value: ['2'] },
    ],
  });
  t.deepEqual(saved.provisionedFlows, ['tail_sampling']);

  // the flow command reached the orchestrator: its flow shows on the page and runs to success
  await page.locator('[data-testid=app-flows] tr[data-flow-type=tail_sampling]').waitFor({ timeout: 60_000 });
  await page.locator('[data-testid=app-flows] tr[data-flow-type=tail_sampling][data-status=success]').waitFor({ timeout: 60_000 });
  const flows = await getJson<FlowAnswer>(`${stack.urls.orchestrator}/api/v1/flows?bk_biz_id=2&app_name=shop`);
  t.deepEqual(flows.flows.map((f) => [f.flow_type, f.desired, f.status]), [['tail_sampling', 'running', 'success']]);
  t.is(await form.locator('input[name=tail_percentage]').inputValue(), '20', 'the form shows what the collector saved');
  t.is(await form.locator('input[name=condition-1-key]').inputValue(), 'status.code');
  await screenshot(page, 'app-settings');

  // a bad value: the collector's message beside the field, nothing changed
  await form.locator('input[name=tail_percentage]').fill('150');
  const refused = page.waitForResponse((r) => r.request().method() === 'PATCH' && r.url().endsWith('/api/collector/apps/2/shop'));
  await form.locator('button[type=submit]').click();
  t.is((await refused).status(), 400);
  const message = form.locator('[data-error-for=tail_percentage]');
  await message.waitFor();
  t.is(await message.innerText(), 'tail_sampling_config.tail_percentage must be an integer from 0 to 100');
  t.is((await getJson<AppAnswer>(appUrl)).application.tailSamplingConfig.tail_percentage, 20, 'the application is unchanged');
  await screenshot(page, 'app-settings-error');

  // switched off: a stop command
  await form.locator('input[name=tail_percentage]').fill('20');
  await form.locator('input[name=tail_sampling]').uncheck();
  await form.locator('button[type=submit]').click();
  await waitFor('the stop in the outcome', async () => /stop tail_sampling/.test(await outcome.innerText()), 30_000, 100);
  t.false(await form.locator('[data-error-for=tail_percentage]').isVisible(), 'the old message is gone');
  t.false((await getJson<AppAnswer>(appUrl)).application.tailSampling);
  await waitFor('the flow stopped', async () => (await getJson<FlowAnswer>(`${stack.urls.orchestrator}/api/v1/flows?bk_biz_id=2&app_name=shop`)).flows[0]?.desired === 'stopped', 60_000, 200);

  t.deepEqual(p.errors.filter((e) => !/status of 400/.test(e)), [], 'no console errors but the refused PATCH');
  t.deepEqual(p.foreign, [], 'no request leaves the console\'s origin');

  // a phone-sized window: the form and its conditions fit without scrolling sideways
  const narrow = await openPage(browser, stack.urls.console, { session: ADMIN, viewport: NARROW });
  t.teardown(() => narrow.context.close());
  await narrow.page.goto(`${stack.urls.console}/#/apps/2/shop/settings`);
  await narrow.page.locator('form[data-testid=app-settings] input[name=condition-1-key]').waitFor();
  t.true(await narrow.page.evaluate('document.documentElement.scrollWidth <= window.innerWidth + 1') === true, 'no horizontal overflow at 390 px');
  await screenshot(narrow.page, 'app-settings-narrow');
  t.deepEqual(narrow.errors, []);
});
