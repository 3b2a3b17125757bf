import fs from 'node:fs';
import path from 'node:path';
import type { Page } from '@playwright/test';
import { SIMULATOR_URL } from './fixtures/env';
import { createChutesUser, createOpenRouterAccount, createOpenRouterInferenceKey, uniqueName } from './fixtures/simulator';
import { expect, signInOnDashboard, snap, test, waitForHydration } from './fixtures/test';
import { installWallet } from './fixtures/wallet';

const row = (page: Page, provider: 'chutes' | 'openrouter') => page.locator(`#provider-${provider}`);

/** Connect Chutes from the dashboard: the simulator's consent page, then our landing page. */
async function consentOnChutes(page: Page, decision: 'approve' | 'deny', username?: string) {
  await page.locator('#chutes-connect').click();
  await page.waitForURL(`${SIMULATOR_URL}/chutes/idp/authorize?**`);
  await expect(page.locator('#username')).toHaveValue('demo-miner');
  if (username) await page.locator('#username').fill(username);
  await page.locator(`#${decision}`).click();
  await page.waitForURL('**/oauth/chutes/callback?**');
  await waitForHydration(page);
  const result = page.locator('#oauth-result');
  await expect(result.locator('p.ok, p.error')).toBeVisible();
  return result;
}

test('a miner connects OpenRouter and Chutes, switches the default and disconnects', async ({ page, request }, testInfo) => {
  test.setTimeout(120_000);
  const wallet = await installWallet(page);
  const chutesUser = uniqueName('e2e-miner');
  await createChutesUser(request, chutesUser);
  const inferenceKey = (await createOpenRouterInferenceKey(request)).key;
  const managementKey = (await createOpenRouterAccount(request)).management_key;
  const maskedKey = `sk-or-v1-...${managementKey.slice(-4)}`;

  await test.step('sign in: nothing connected yet', async () => {
    await signInOnDashboard(page, wallet);
    await expect(page.locator('#no-provider-notice')).toBeVisible();
    await expect(page.locator('#no-provider-notice')).toContainText('your next submission needs one');
    for (const provider of ['chutes', 'openrouter'] as const) {
      await expect(row(page, provider)).toHaveAttribute('data-connected', 'false');
      await expect(row(page, provider).locator('.provider-state')).toHaveText('Not connected');
      const toggle = page.locator(`#${provider}-default`);
      await expect(toggle).toHaveAttribute('aria-pressed', 'false');
      await expect(toggle).toBeDisabled();
      await expect(toggle).toHaveText('Make default');
      await expect(page.locator(`#${provider}-disconnect`)).toHaveCount(0);
    }
  });

  const openrouter = row(page, 'openrouter');
  const keyInput = page.locator('#openrouter-key');
  const hint = openrouter.locator('.key-hint');

  await test.step('OpenRouter: the paste form guides and refuses wrong keys', async () => {
    const toggle = page.locator('#openrouter-connect');
    await expect(page.locator('#openrouter-paste')).toBeHidden();
    await expect(toggle).toHaveAttribute('aria-expanded', 'false');
    await toggle.click();
    await expect(page.locator('#openrouter-paste')).toBeVisible();
    await expect(toggle).toHaveAttribute('aria-expanded', 'true');
    await expect(keyInput).toHaveAttribute('type', 'password');

    // Nothing pasted yet: said plainly, nothing sent.
    await page.locator('#openrouter-submit').click();
    await expect(openrouter.locator('.row-result p.error')).toHaveText('Paste your key first.');

    await keyInput.fill('sk-or-v1-abc');
    await expect(hint).toHaveText('61 more characters expected');
    await keyInput.fill('sk-ant-123');
    await expect(hint).toHaveText('OpenRouter keys start with sk-or-v1-');
    await keyInput.fill(managementKey.slice(0, -10));
    await expect(hint).toHaveText('10 more characters expected');
    // A truncated key is refused before anything is sent.
    await page.locator('#openrouter-submit').click();
    await expect(openrouter.locator('.row-result p.error')).toHaveText('10 more characters expected');
    await expect(openrouter.locator('.row-result p.error')).toHaveAttribute('role', 'alert');

    // A real key, but an inference key: the server asks OpenRouter and refuses it.
    await keyInput.fill(inferenceKey);
    await expect(hint).toHaveText('');
    await page.locator('#openrouter-submit').click();
    await expect(openrouter.locator('.row-result p.error')).toContainText('not a management key');
    await expect(openrouter).toHaveAttribute('data-connected', 'false');

    // A well-formed key OpenRouter does not know.
    await keyInput.fill(`sk-or-v1-${'0123456789abcdef'.repeat(4)}`);
    await page.locator('#openrouter-submit').click();
    await expect(openrouter.locator('.row-result p.error')).toContainText('does not accept this key');
    await expect(openrouter).toHaveAttribute('data-connected', 'false');
    await snap(page, 'providers-openrouter-refused', testInfo);
  });

  await test.step('OpenRouter: a management key connects and becomes the default', async () => {
    await keyInput.fill(managementKey);
    await page.locator('#openrouter-submit').click();
    await expect(openrouter).toHaveAttribute('data-connected', 'true');
    // The confirmation must still be there once the row shows the new state.
    await expect(openrouter.locator('.row-result p.ok')).toHaveText(`Connected OpenRouter (${maskedKey}).`);
    await expect(openrouter.locator('.row-result p.ok')).toHaveAttribute('role', 'status');
    // Whether it can pay a run, read from OpenRouter as the row appears.
    await expect(page.locator('#openrouter-balance')).toHaveText('Balance: $50.00 at OpenRouter.');
    await expect(openrouter.locator('.provider-state')).toContainText('Connected since');
    await expect(openrouter.locator('.credential-label')).toContainText(maskedKey);
    await expect(openrouter).not.toContainText(managementKey); // never shown back
    await expect(page.locator('#openrouter-default')).toHaveAttribute('aria-pressed', 'true');
    await expect(page.locator('#openrouter-default')).toHaveText('Default ✓');
    await expect(page.locator('#openrouter-default')).toBeDisabled();
    await expect(page.locator('#no-provider-notice')).toHaveCount(0);
    await expect(page.locator('#openrouter-disconnect')).toBeVisible();
  });

  await test.step('Chutes: consent on the Chutes page, back on the landing page', async () => {
    const result = await consentOnChutes(page, 'approve', chutesUser);
    await expect(result.locator('p.ok')).toContainText('Chutes is connected');
    await expect(result.locator('p.ok')).toHaveAttribute('role', 'status');
    await snap(page, 'providers-chutes-callback-ok', testInfo);
    // The single-use code is gone from the address bar (and so from the history)...
    await expect(page).toHaveURL(/\/oauth\/chutes\/callback$/);
    // ...and a reload tells the truth: connected, not "already used".
    await page.reload();
    await waitForHydration(page);
    await expect(page.locator('#oauth-result p.ok')).toContainText('Chutes is connected');
    await expect(page.locator('#oauth-result p.error')).toHaveCount(0);
    await page.locator('#back-to-dashboard').click();
    await expect(page).toHaveURL(/\/dashboard$/);
    await waitForHydration(page);
  });

  const chutes = row(page, 'chutes');

  await test.step('Chutes reports no balance: a 1-token call says whether it can pay', async () => {
    await page.locator('#chutes-check-balance').click();
    await expect(page.locator('#chutes-balance')).toContainText('the account can pay');
  });

  await test.step('both connected; switch the default to Chutes', async () => {
    await expect(chutes).toHaveAttribute('data-connected', 'true');
    await expect(openrouter).toHaveAttribute('data-connected', 'true');
    await expect(chutes.locator('.provider-state')).toContainText('Connected since');
    await expect(chutes.locator('.credential-label')).toContainText(chutesUser);
    await expect(page.locator('#openrouter-default')).toHaveAttribute('aria-pressed', 'true');
    await expect(page.locator('#chutes-default')).toHaveAttribute('aria-pressed', 'false');
    await expect(page.locator('#chutes-default')).toBeEnabled();

    await page.locator('#chutes-default').click();
    await expect(page.locator('#chutes-default')).toHaveAttribute('aria-pressed', 'true');
    await expect(page.locator('#chutes-default')).toHaveText('Default ✓');
    await expect(page.locator('#openrouter-default')).toHaveAttribute('aria-pressed', 'false');
    await expect(page.locator('#openrouter-default')).toHaveText('Make default');
    await expect(page.locator('#openrouter-default')).toBeEnabled();

    const file = await snap(page, 'dashboard-both-connected', testInfo);
    fs.copyFileSync(file, path.resolve(__dirname, '..', 'dashboard.png'));
  });

  await test.step('disconnect OpenRouter, with confirmation', async () => {
    const dialog = openrouter.locator('div[role=alertdialog]');
    await expect(dialog).toBeHidden();
    await page.locator('#openrouter-disconnect').click();
    await expect(dialog).toBeVisible();
    await expect(dialog).toContainText('Disconnect OpenRouter?');
    await expect(dialog).toContainText('disabled, not deleted');
    // Said for the case at hand: OpenRouter is not the default here.
    await expect(dialog).toContainText('Your default provider does not change.');
    await snap(page, 'providers-disconnect-confirm', testInfo);

    await dialog.getByRole('button', { name: 'Cancel' }).click();
    await expect(dialog).toBeHidden();
    await expect(openrouter).toHaveAttribute('data-connected', 'true');

    await page.locator('#openrouter-disconnect').click();
    await expect(dialog).toBeVisible();
    await page.locator('#openrouter-confirm-disconnect').click();
    await expect(openrouter).toHaveAttribute('data-connected', 'false');
    await expect(openrouter.locator('.provider-state')).toHaveText('Not connected');
    await expect(page.locator('#openrouter-disconnect')).toHaveCount(0);
    await expect(page.locator('#openrouter-default')).toHaveAttribute('aria-pressed', 'false');
    await expect(page.locator('#openrouter-default')).toBeDisabled();
    await expect(page.locator('#chutes-default')).toHaveAttribute('aria-pressed', 'true');
  });

  await test.step('the last provider: its question says what that means', async () => {
    await page.locator('#chutes-disconnect').click();
    await expect(chutes.locator('div[role=alertdialog]')).toContainText('It is your only provider: your next submission will need one connected first.');
    await page.keyboard.press('Escape');
    await expect(chutes.locator('div[role=alertdialog]')).toBeHidden();
  });

  await test.step('a reload shows the same state, and the activity log', async () => {
    await page.reload();
    await waitForHydration(page);
    await expect(page.locator('#signed-in-hotkey')).toHaveText(wallet.address);
    await expect(chutes).toHaveAttribute('data-connected', 'true');
    await expect(page.locator('#chutes-default')).toHaveAttribute('aria-pressed', 'true');
    await expect(openrouter).toHaveAttribute('data-connected', 'false');
    await expect(page.locator('#openrouter-default')).toHaveAttribute('aria-pressed', 'false');
    await expect(page.locator('#no-provider-notice')).toHaveCount(0);

    const activity = page.locator('table.audit tbody tr');
    // Connected OpenRouter, connected Chutes, default to Chutes, disconnected OpenRouter.
    await expect.poll(() => activity.count()).toBeGreaterThanOrEqual(4);
    await expect(page.locator('table.audit')).toContainText('OpenRouter');
    await expect(page.locator('table.audit')).toContainText('Chutes');
    await snap(page, 'providers-after-reload', testInfo);
  });
});

test('declining on the Chutes consent page connects nothing and says why', async ({ page }, testInfo) => {
  const wallet = await installWallet(page);
  await signInOnDashboard(page, wallet);
  await expect(page.locator('#no-provider-notice')).toBeVisible();

  const result = await consentOnChutes(page, 'deny');
  const error = result.locator('p.error');
  await expect(error).toHaveAttribute('role', 'alert');
  await expect(error).toContainText('Chutes was not connected');
  await expect(error).toContainText('you declined on the Chutes consent page');
  await expect(result.locator('p.ok')).toHaveCount(0);
  await snap(page, 'providers-chutes-declined', testInfo);

  await page.locator('#back-to-dashboard').click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(row(page, 'chutes')).toHaveAttribute('data-connected', 'false');
  await expect(row(page, 'openrouter')).toHaveAttribute('data-connected', 'false');
  await expect(page.locator('#no-provider-notice')).toBeVisible();
});
