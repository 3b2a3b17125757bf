import { expect, gotoHydrated, snap, test } from './fixtures/test';

test('home page renders on the server and hydrates in Chromium', async ({ page }, testInfo) => {
  const response = await page.goto('/');
  expect(response?.status()).toBe(200);
  // Server-rendered: the content is in the HTML before any wasm runs.
  await expect(page).toHaveTitle('ORO inference providers');
  await expect(page.getByRole('heading', { level: 1 })).toContainText('Pay for your agent');
  const nav = page.getByRole('navigation', { name: 'Main' });
  await expect(nav.getByRole('link', { name: 'Dashboard' })).toHaveAttribute('href', '/dashboard');
  await expect(nav.getByRole('link', { name: 'Models' })).toHaveAttribute('href', '/models');

  await gotoHydrated(page, '/');
  const connect = page.locator('#connect-wallet');
  await expect(connect).toHaveText('Connect wallet');
  await expect(page.locator('#no-wallet')).toHaveCount(0);

  // Only the hydrated app reacts to the click: no wallet is injected, so it lists wallets.
  await connect.click();
  const noWallet = page.locator('#no-wallet');
  await expect(noWallet).toBeVisible();
  await expect(noWallet).toHaveAttribute('role', 'status');
  await expect(noWallet).toContainText('No wallet extension found');
  const links = noWallet.getByRole('link');
  await expect(links).toHaveText(['polkadot{.js}', 'Talisman', 'SubWallet']);
  await expect(noWallet.getByRole('link', { name: 'polkadot{.js}' })).toHaveAttribute('href', /polkadot\.js\.org/);
  await expect(noWallet.getByRole('link', { name: 'Talisman' })).toHaveAttribute('href', /talisman\.xyz/);
  await expect(noWallet.getByRole('link', { name: 'SubWallet' })).toHaveAttribute('href', /subwallet\.app/);
  for (const link of await links.all()) {
    await expect(link).toHaveAttribute('target', '_blank');
    await expect(link).toHaveAttribute('rel', /noopener/);
  }
  await snap(page, 'foundation-no-wallet', testInfo);
});

test('the health endpoint answers', async ({ request }) => {
  const response = await request.get('/health');
  expect(response.ok()).toBeTruthy();
  expect(await response.json()).toMatchObject({ status: 'ok' });
});
