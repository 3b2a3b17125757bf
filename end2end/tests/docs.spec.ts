import AxeBuilder from '@axe-core/playwright';
import { expect, gotoHydrated, test } from './fixtures/test';

/**
 * /docs, the API reference: reached from the site's header by keyboard, every operation of
 * /openapi.json on it, nothing fetched from elsewhere, no script, nothing the page's CSP blocks
 * (the fixture fails on any violation), operations opened by keyboard, axe clean in both schemes.
 */
test.describe('API reference', () => {
  test('from the header, by keyboard, with every operation and nothing from elsewhere', async ({ page, request, baseURL }) => {
    const origins = new Set<string>();
    page.on('request', (r) => origins.add(new URL(r.url()).origin));

    await gotoHydrated(page, '/');
    const link = page.locator('header nav a[href="/docs"]');
    await expect(link).toHaveText('API');
    await link.focus();
    await page.keyboard.press('Enter');
    await expect(page).toHaveURL(/\/docs$/);
    await expect(page.locator('h1')).toHaveText('API reference');

    const doc = await (await request.get('/openapi.json')).json();
    const ids: string[] = [];
    for (const item of Object.values(doc.paths) as Record<string, { operationId?: string }>[]) {
      for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
        if (item[method]?.operationId) ids.push(item[method].operationId as string);
      }
    }
    expect(ids.length).toBeGreaterThanOrEqual(30);
    for (const id of ids) await expect(page.locator(`#op-${id}`)).toHaveCount(1);
    await expect(page.locator('script')).toHaveCount(0);
    // The stylesheet applied: the page is styled by our own CSS, not a CDN's.
    await expect(page.locator('.site-header')).toHaveCSS('border-bottom-style', 'solid');
    expect([...origins]).toEqual([new URL(baseURL!).origin]);

    // An operation opens from the keyboard and shows its answers.
    const claim = page.locator('#op-claim_work');
    await claim.locator('summary').focus();
    await page.keyboard.press('Enter');
    await expect(claim).toHaveAttribute('open', '');
    await expect(claim.getByRole('cell', { name: '409', exact: true })).toBeVisible();
    await expect(claim.getByText('Authentication:')).toContainText('X-Signature');
  });

  for (const scheme of ['light', 'dark'] as const) {
    test(`axe clean (${scheme})`, async ({ page }) => {
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto('/docs');
      await page.locator('#op-store_inference_credential summary').click();
      const results = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa']).analyze();
      const blocking = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
      expect(blocking.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)).toEqual([]);
    });
  }
});
