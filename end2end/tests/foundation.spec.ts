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

  // Only the hydrated app reacts to the click: no wallet is injected, so it says how to get one.
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

test('the bundle is fetched under content-hashed names, cached for good', async ({ page }) => {
  const fetched: { url: string; cacheControl: string; encoding: string }[] = [];
  page.on('response', (response) => {
    const path = new URL(response.url()).pathname;
    if (/\.(js|wasm|css)$/.test(path)) {
      const headers = response.headers();
      fetched.push({ url: path, cacheControl: headers['cache-control'] ?? '', encoding: headers['content-encoding'] ?? '' });
    }
  });
  await gotoHydrated(page, '/');
  await page.waitForLoadState('networkidle');
  const names = fetched.map((f) => f.url);
  expect(names).toContainEqual(expect.stringMatching(/^\/pkg\/oro\.[0-9a-f]{16}\.wasm$/));
  expect(names).toContainEqual(expect.stringMatching(/^\/pkg\/oro\.[0-9a-f]{16}\.js$/));
  expect(names).toContainEqual(expect.stringMatching(/^\/pkg\/oro\.[0-9a-f]{16}\.css$/));
  expect(names).toContainEqual(expect.stringMatching(/^\/pkg\/wallet\.[0-9a-f]{16}\.js$/));
  for (const file of fetched) expect(file.cacheControl, file.url).toBe('public, max-age=31536000, immutable');
  // A second visit asks the server for none of them.
  fetched.length = 0;
  await gotoHydrated(page, '/models');
  await page.waitForLoadState('networkidle');
  const fromNetwork = await page.evaluate(() =>
    performance
      .getEntriesByType('resource')
      .filter((e) => /\.(js|wasm|css)$/.test(new URL(e.name).pathname))
      .filter((e) => (e as PerformanceResourceTiming).transferSize > 0)
      .map((e) => e.name),
  );
  expect(fromNetwork, 'served from the browser cache').toEqual([]);
});
