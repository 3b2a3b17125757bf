// The dashboard works with the keyboard alone, and the pages fit a phone's width.
import { claimRun, submitAgent } from './fixtures/api';
import { createOpenRouterAccount, createOpenRouterInferenceKey } from './fixtures/simulator';
import { expect, gotoHydrated, signInOnDashboard, snap, test, waitForHydration } from './fixtures/test';
import { installWallet } from './fixtures/wallet';
import { BASE_URL } from './fixtures/env';

/** Tabs until `selector` has the focus (at most `limit` presses). */
async function tabTo(page: import('@playwright/test').Page, selector: string, limit = 40) {
  for (let i = 0; i < limit; i++) {
    if (await page.locator(selector).evaluate((el) => el === document.activeElement).catch(() => false)) return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`never reached ${selector} with Tab`);
}

/** The id of the focused element. */
const focused = (page: import('@playwright/test').Page) => page.evaluate(() => document.activeElement?.id ?? '');

test('sign in and connect OpenRouter with the keyboard alone; focus follows what changed', async ({ page, request }) => {
  const wallet = await installWallet(page);
  const key = (await createOpenRouterAccount(request)).management_key;
  await gotoHydrated(page, `${BASE_URL}/dashboard`);

  await tabTo(page, '#connect-wallet');
  await page.keyboard.press('Enter');
  await tabTo(page, 'button.account');
  await page.keyboard.press('Enter');
  await expect(page.locator('#signed-in-hotkey')).toHaveText(wallet.address);
  await expect.poll(() => focused(page), { message: 'focus moves to the signed-in line, not <body>' }).toBe('signed-in');

  await tabTo(page, '#openrouter-connect');
  await page.keyboard.press('Enter');
  await tabTo(page, '#openrouter-key');
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
  await expect(page.locator('#provider-openrouter')).toHaveAttribute('data-connected', 'true');
  await expect(page.locator('#provider-openrouter p.ok')).toContainText('Connected OpenRouter');
  await expect.poll(() => focused(page), { message: 'after connecting, the panel heading' }).toBe('providers-heading');

  // Focus is visible where it lands.
  await tabTo(page, '#openrouter-disconnect');
  const outline = await page.locator('#openrouter-disconnect').evaluate((el) => getComputedStyle(el).outlineStyle);
  expect(outline).not.toBe('none');

  // The question takes the focus, keeps it on its two buttons, and Escape cancels.
  await page.keyboard.press('Enter');
  await expect.poll(() => focused(page)).toBe('openrouter-confirm-disconnect');
  await page.keyboard.press('Tab');
  expect(await focused(page)).toBe('openrouter-cancel-disconnect');
  await page.keyboard.press('Tab');
  expect(await focused(page)).toBe('openrouter-confirm-disconnect');
  await page.keyboard.press('Shift+Tab');
  expect(await focused(page)).toBe('openrouter-cancel-disconnect');
  await page.keyboard.press('Escape');
  await expect(page.locator('#provider-openrouter div[role=alertdialog]')).toBeHidden();
  await expect.poll(() => focused(page)).toBe('openrouter-disconnect');
  await expect(page.locator('#provider-openrouter')).toHaveAttribute('data-connected', 'true');

  // Answered: disconnected, and the focus is on the panel, not lost.
  await page.keyboard.press('Enter');
  await expect.poll(() => focused(page)).toBe('openrouter-confirm-disconnect');
  await page.keyboard.press('Enter');
  await expect(page.locator('#provider-openrouter')).toHaveAttribute('data-connected', 'false');
  await expect.poll(() => focused(page)).toBe('providers-heading');
});

test.describe('on a phone', () => {
  test.use({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });

  // The landing page without an answer from Chutes shows its longest error.
  for (const path of ['/', '/models', '/dashboard', '/oauth/chutes/callback']) {
    test(`${path} fits the screen`, async ({ page }, testInfo) => {
      await gotoHydrated(page, `${BASE_URL}${path}`);
      if (path.startsWith('/oauth')) await expect(page.locator('#oauth-result p.error')).toBeVisible();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      expect(overflow, 'no sideways scrolling').toBeLessThanOrEqual(0);
      await snap(page, `phone${path === '/' ? '-home' : path.replaceAll('/', '-')}`, testInfo);
    });
  }

  test('/dashboard fits with runs listed and an error carrying a long address', async ({ page, request }, testInfo) => {
    const wallet = await installWallet(page);
    await signInOnDashboard(page, wallet);
    const key = (await createOpenRouterAccount(request)).management_key;
    await page.locator('#openrouter-connect').click();
    await page.locator('#openrouter-key').fill(key);
    await page.locator('#openrouter-submit').click();
    await expect(page.locator('#provider-openrouter')).toHaveAttribute('data-connected', 'true');
    await submitAgent(request, wallet.pair, 'phone-width');
    const work = await claimRun(request);
    await page.reload();
    await waitForHydration(page);
    const run = page.locator(`tr[data-run="${work.eval_run_id}"]`);
    await expect(run.locator('.run-status')).toHaveText('running');

    // An inference key where the management key belongs: the answer names a page to visit.
    const inferenceKey = (await createOpenRouterInferenceKey(request)).key;
    await page.locator('#openrouter-connect').click();
    await page.locator('#openrouter-key').fill(inferenceKey);
    await page.locator('#openrouter-submit').click();
    const error = page.locator('#provider-openrouter p.error');
    await expect(error).toContainText('management key');
    await expect(error.locator('a[href^="https://openrouter.ai/"]')).toBeVisible();

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow, 'no sideways scrolling').toBeLessThanOrEqual(0);
    const cardOverflow = await run.evaluate((row) => row.scrollWidth - row.clientWidth);
    expect(cardOverflow, 'the run fits its card').toBeLessThanOrEqual(0);
    await snap(page, 'phone-dashboard-runs-and-error', testInfo);
  });
});
