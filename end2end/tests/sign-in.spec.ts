import { expect, gotoHydrated, signInOnDashboard, snap, test } from './fixtures/test';
import { installWallet } from './fixtures/wallet';

test('sign in with a polkadot{.js}-style wallet, stay signed in across a reload, sign out', async ({ page }, testInfo) => {
  const wallet = await installWallet(page, { name: 'Test miner' });
  expect(wallet.address).toMatch(/^5[1-9A-HJ-NP-Za-km-z]{47}$/); // SS58, prefix 42

  await gotoHydrated(page, '/dashboard');
  await expect(page.getByRole('heading', { level: 1, name: 'Dashboard' })).toBeVisible();
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
  await page.locator('#connect-wallet').click();

  // The one injected wallet is enabled and its account offered.
  const account = page.locator('button.account');
  await expect(account).toHaveCount(1);
  await expect(account.locator('.account-name')).toHaveText('Test miner');
  await expect(account.locator('code')).toHaveText(wallet.address);
  await account.click();

  await expect(page.locator('#signed-in-hotkey')).toHaveText(wallet.address);
  expect(wallet.signatures()).toBe(1);
  await expect(page.locator('#sign-out')).toBeVisible();
  await expect(page.locator('#connect-wallet')).toHaveCount(0);
  await expect(page.locator('#provider-chutes')).toBeVisible();
  await snap(page, 'sign-in-signed-in', testInfo);

  // The session is a cookie: a reload renders the signed-in dashboard on the server.
  await page.reload();
  await expect(page.locator('#signed-in-hotkey')).toHaveText(wallet.address);
  await expect(page.locator('#connect-wallet')).toHaveCount(0);

  await gotoHydrated(page, '/dashboard');
  await page.locator('#sign-out').click();
  await expect(page.locator('#connect-wallet')).toBeVisible();
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);

  // And it stays signed out after a reload.
  await page.reload();
  await expect(page.locator('#connect-wallet')).toBeVisible();
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
  await snap(page, 'sign-in-signed-out', testInfo);
});

test('signing in from the home page lands on the dashboard', async ({ page }) => {
  const wallet = await installWallet(page);
  await gotoHydrated(page, '/');
  await page.locator('#connect-wallet').click();
  await page.locator('button.account', { hasText: wallet.address }).click();
  await expect(page).toHaveURL(/\/dashboard$/);
  await expect(page.locator('#signed-in-hotkey')).toHaveText(wallet.address);

  // Back home, signed in: the way to the dashboard, not a second sign-in.
  await gotoHydrated(page, '/');
  await expect(page.locator('#open-dashboard')).toHaveText('Open dashboard');
  await expect(page.locator('#connect-wallet')).toHaveCount(0);
  await page.locator('#open-dashboard').click();
  await expect(page).toHaveURL(/\/dashboard$/);
});

test('a refused signature shows an error and does not sign in', async ({ page }, testInfo) => {
  const wallet = await installWallet(page, { refuseToSign: true });
  await gotoHydrated(page, '/dashboard');
  await page.locator('#connect-wallet').click();
  await page.locator('button.account', { hasText: wallet.address }).click();

  const error = page.locator('.wallet-sign-in p.error');
  await expect(error).toBeVisible();
  await expect(error).toHaveAttribute('role', 'alert');
  await expect(error).toContainText('The wallet did not sign');
  await expect(error).toContainText('Cancelled');
  expect(wallet.signatures()).toBe(1);
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
  await expect(page.locator('#sign-out')).toHaveCount(0);
  await expect(page.locator('#connect-wallet')).toBeEnabled();
  await snap(page, 'sign-in-refused', testInfo);

  // Nothing was stored server-side either.
  await page.reload();
  await expect(page.locator('#connect-wallet')).toBeVisible();
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
});

test('a signature by another key than the account is rejected by the server', async ({ page }) => {
  // The wallet offers one account but signs with a different key: the server must refuse.
  const wallet = await installWallet(page, { signWithUri: '//E2EImpostor' });
  await gotoHydrated(page, '/dashboard');
  await page.locator('#connect-wallet').click();
  await page.locator('button.account', { hasText: wallet.address }).click();
  const error = page.locator('.wallet-sign-in p.error');
  await expect(error).toBeVisible();
  await expect(error).toHaveAttribute('role', 'alert');
  expect(wallet.signatures()).toBe(1);
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
  await page.reload();
  await expect(page.locator('#signed-in-hotkey')).toHaveCount(0);
});
