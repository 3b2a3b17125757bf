// A miner watches a running run's spend grow on the dashboard without reloading, and stops
// its inference: the run gateway then refuses the run's token.
import { claimRun, submitAgent } from './fixtures/api';
import { createChutesUser, uniqueName } from './fixtures/simulator';
import { connectChutes, expect, signInOnDashboard, snap, test, waitForHydration } from './fixtures/test';
import { installWallet } from './fixtures/wallet';

test('a running run shows its live spend against its cap and can be stopped', async ({ page, request }, testInfo) => {
  const wallet = await installWallet(page);
  const chutesUser = uniqueName('e2e-runs');
  await createChutesUser(request, chutesUser);
  await signInOnDashboard(page, wallet);
  await connectChutes(page, chutesUser);
  await page.locator('#back-to-dashboard').click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await waitForHydration(page);

  // Queued: the provider is chosen at the claim; the page says which it will be.
  await submitAgent(request, wallet.pair, 'live-spend');
  await page.reload();
  await waitForHydration(page);
  const queued = page.locator('#runs-table tbody tr').first();
  await expect(queued.locator('.run-status')).toHaveText('queued');
  await expect(queued).toContainText('will use Chutes (your default)');
  await expect(queued).toContainText(/version [0-9a-f]{8}…, submitted \d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC/);
  const work = await claimRun(request);
  expect(work.inference_token.provider).toBe('chutes');
  expect(work.inference_token.access_token).toMatch(/^oro-run-/);

  // The page as it is now: no reload from here on (a reload would clear this mark).
  await page.reload();
  await waitForHydration(page);
  await page.evaluate(() => ((window as any).__sameDocument = true));
  const row = page.locator(`tr[data-run="${work.eval_run_id}"]`);
  await expect(row.locator('.run-status')).toHaveText('running');
  await expect(row.locator('.run-spend')).toContainText('$0.00 / $5.00');
  await expect(row.locator('.run-spend .live')).toHaveText('(live)');
  await expect(page.locator('#run-protection')).toContainText('run gateway');
  await expect(page.locator('#run-protection')).toContainText('your Chutes token never leaves the service');

  // The agent infers through the gateway; the dashboard's figure follows within seconds.
  const chat = () =>
    request.post(`${work.inference_token.base_url}/chat/completions`, {
      headers: { Authorization: `Bearer ${work.inference_token.access_token}` },
      data: { model: 'deepseek-ai/DeepSeek-V3.2-TEE', messages: [{ role: 'user', content: 'hello from the sandbox' }] },
    });
  expect((await chat()).status()).toBe(200);
  await expect(row.locator('.run-spend')).toContainText(/\$0\.0\d*[1-9]\d* \/ \$5\.00/, { timeout: 15_000 });
  expect(await page.evaluate(() => (window as any).__sameDocument)).toBe(true);
  await snap(page, 'runs-live-spend', testInfo);

  // A second tab of the dashboard, open before the stop: it offers the stop too.
  const other = await page.context().newPage();
  await other.goto('/dashboard');
  await waitForHydration(other);
  const otherRow = other.locator(`tr[data-run="${work.eval_run_id}"]`);
  const otherStop = otherRow.getByRole('button', { name: /Stop inference for run/ });
  await expect(otherStop).toBeEnabled();
  await otherStop.focus();

  // Stop inference, confirmed, with the keyboard.
  const stop = row.getByRole('button', { name: /Stop inference for run/ });
  const yes = row.getByRole('button', { name: 'Yes, stop' });
  // Asked, then kept running: the question closes and the focus is back on Stop.
  await stop.focus();
  await page.keyboard.press('Enter');
  await expect(yes).toBeFocused();
  await row.getByRole('button', { name: 'Keep running' }).click();
  await expect(yes).toBeHidden();
  await expect(stop).toBeFocused();
  await expect(row.locator('.run-status')).toHaveText('running');
  await stop.focus();
  await page.keyboard.press('Enter');
  await expect(yes).toBeVisible();
  await expect(yes).toBeFocused();
  await yes.focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('#stop-outcome')).toContainText(`Stopped inference for run ${work.eval_run_id}`);
  expect((await chat()).status()).toBe(401);
  await snap(page, 'runs-stopped', testInfo);

  // The other tab learns it with its next figures: the stop is no longer offered there.
  await expect(otherRow.locator('.stopped')).toBeVisible({ timeout: 15_000 });
  await expect(otherStop).toBeHidden();
  // Its focus was on the button that went: it moves to the panel's heading, and the row says why.
  await expect(other.locator('#runs-heading')).toBeFocused();
  await expect(other.locator('#stop-outcome')).toHaveText('Inference for this run was stopped elsewhere.');
  await other.close();

  // Reloaded, the row says the inference is stopped and offers no second stop.
  await page.reload();
  const reloaded = page.locator(`#runs-table tr[data-run="${work.eval_run_id}"]`);
  await expect(reloaded.locator('.run-status')).toHaveText('running');
  await expect(reloaded.locator('.stopped')).toBeVisible();
  await expect(reloaded.getByRole('button', { name: /Stop inference for run/ })).toBeHidden();
});

test('the budget shows the run cap, warns below it, and is removed only on purpose', async ({ page }, testInfo) => {
  const wallet = await installWallet(page);
  await signInOnDashboard(page, wallet);
  await expect(page.locator('#run-cap')).toHaveText('Each run commits its cap of $5.00 when it starts.');

  // Empty: nothing is sent, and the way to have no ceiling is named.
  await page.locator('#budget-save').click();
  await expect(page.locator('#budget-outcome')).toContainText('use Remove ceiling');

  // Below one run's cap: saved, with the consequence spelled out; the field keeps the value.
  await page.locator('#budget-input').fill('3');
  await page.locator('#budget-save').click();
  await expect(page.locator('#budget-outcome')).toContainText('Monthly budget set to $3.00.');
  await expect(page.locator('#budget-warning')).toContainText('lets no run start');
  await expect(page.locator('#budget-input')).toHaveValue('3.00');
  await snap(page, 'budget-below-cap', testInfo);

  // A fraction of a cent is refused, not shown as $0.00.
  await page.locator('#budget-input').fill('0.001');
  await page.locator('#budget-save').click();
  await expect(page.locator('#budget-outcome')).toHaveAttribute('role', 'alert');
  await expect(page.locator('#budget-state')).toContainText('of $3.00 committed');

  // Removing takes its own button and a confirmation, by keyboard; "Keep it" keeps it.
  await page.locator('#budget-remove').focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('#budget-remove-confirm')).toBeFocused();
  await page.locator('#budget-remove-keep').click();
  await expect(page.locator('#budget-remove-confirm')).toBeHidden();
  await expect(page.locator('#budget-remove')).toBeFocused();
  await expect(page.locator('#budget-state')).toContainText('of $3.00 committed');
  await page.locator('#budget-remove').focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('#budget-remove-confirm')).toBeVisible();
  await page.locator('#budget-remove-confirm').focus();
  await page.keyboard.press('Enter');
  await expect(page.locator('#budget-outcome')).toContainText('Ceiling removed');
  await expect(page.locator('#budget-state')).toContainText('No ceiling.');
  await expect(page.locator('#budget-input')).toHaveValue('');
});
