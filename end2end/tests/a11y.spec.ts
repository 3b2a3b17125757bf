import AxeBuilder from '@axe-core/playwright';
import type { Page } from '@playwright/test';
import { createChutesUser, uniqueName } from './fixtures/simulator';
import { connectChutes, expect, gotoHydrated, signInOnDashboard, snap, test, waitForHydration } from './fixtures/test';
import { installWallet } from './fixtures/wallet';

type Violation = Awaited<ReturnType<AxeBuilder['analyze']>>['violations'][number];

function describe(violations: Violation[]): string {
  return violations
    .map((v) =>
      [
        `[${v.impact}] ${v.id}: ${v.help} (${v.helpUrl})`,
        ...v.nodes.map((n) => `    at ${n.target.join(' ')}\n      ${(n.failureSummary ?? '').replace(/\n/g, '\n      ')}`),
      ].join('\n'),
    )
    .join('\n');
}

/** axe-core with the WCAG 2 A and AA rules; serious and critical violations fail the test. */
async function expectNoSeriousViolations(page: Page, what: string) {
  const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
  const blocking = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const minor = results.violations.filter((v) => !blocking.includes(v));
  if (minor.length) console.log(`axe, ${what}: minor or moderate findings (not failing):\n${describe(minor)}`);
  expect(blocking, `axe found serious/critical WCAG 2 A/AA violations on ${what}:\n${describe(blocking)}`).toEqual([]);
}

test.describe('accessibility (axe-core, WCAG 2 A/AA)', () => {
  test('home page, also with the no-wallet notice', async ({ page }) => {
    await gotoHydrated(page, '/');
    await expectNoSeriousViolations(page, '/');
    await page.locator('#connect-wallet').click();
    await expect(page.locator('#no-wallet')).toBeVisible();
    await expectNoSeriousViolations(page, '/ with the no-wallet notice');
  });

  test('models page', async ({ page }) => {
    await gotoHydrated(page, '/models');
    await expect(page.locator('#models-table tr.model-row')).toHaveCount(13);
    await expectNoSeriousViolations(page, '/models');
  });

  test('home and models pages in dark mode', async ({ page }) => {
    await page.emulateMedia({ colorScheme: 'dark' });
    await gotoHydrated(page, '/');
    await expectNoSeriousViolations(page, '/ (dark)');
    await gotoHydrated(page, '/models');
    await expect(page.locator('#models-table tr.model-row')).toHaveCount(13);
    await expectNoSeriousViolations(page, '/models (dark)');
  });

  test('signed-out dashboard', async ({ page }) => {
    await gotoHydrated(page, '/dashboard');
    await expect(page.locator('#connect-wallet')).toBeVisible();
    await expectNoSeriousViolations(page, '/dashboard (signed out)');
  });

  test('Chutes landing page after connecting, and the signed-in dashboard', async ({ page, request }, testInfo) => {
    const wallet = await installWallet(page);
    const username = uniqueName('e2e-a11y');
    await createChutesUser(request, username);
    await signInOnDashboard(page, wallet);
    await expect(page.locator('#no-provider-notice')).toBeVisible();
    await expectNoSeriousViolations(page, '/dashboard (signed in, nothing connected)');

    await connectChutes(page, username);
    await expectNoSeriousViolations(page, '/oauth/chutes/callback (connected)');

    await page.locator('#back-to-dashboard').click();
    await waitForHydration(page);
    await expect(page.locator('#provider-chutes')).toHaveAttribute('data-connected', 'true');
    await expect(page.locator('table.audit')).toBeVisible();
    // With the OpenRouter paste form open, a key hint showing, and the disconnect dialog open.
    await page.locator('#openrouter-connect').click();
    await page.locator('#openrouter-key').fill('sk-or-v1-abc');
    await expect(page.locator('#provider-openrouter .key-hint')).toHaveText('61 more characters expected');
    await page.locator('#chutes-disconnect').click();
    await expect(page.locator('#provider-chutes div[role=alertdialog]')).toBeVisible();
    await snap(page, 'a11y-dashboard', testInfo);
    await expectNoSeriousViolations(page, '/dashboard (signed in, Chutes connected, forms open)');
  });

  test('Chutes landing page without an answer from Chutes', async ({ page }) => {
    await gotoHydrated(page, '/oauth/chutes/callback');
    await expect(page.locator('#oauth-result p.error')).toContainText('Chutes was not connected');
    await expectNoSeriousViolations(page, '/oauth/chutes/callback (error)');
  });
});
