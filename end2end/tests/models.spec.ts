import type { Locator, Page } from '@playwright/test';
import { BASE_URL } from './fixtures/env';
import { expect, gotoHydrated, snap, test } from './fixtures/test';

/** The exact text (line breaks included) of an element, retried until it matches. */
const exactText = (locator: Locator) => expect.poll(async () => (await locator.textContent()) ?? '');

const readClipboard = (page: Page) => page.evaluate(() => navigator.clipboard.readText());

test.describe('the public model list', () => {
  test.beforeEach(async ({ page }) => {
    await gotoHydrated(page, '/models');
  });

  test('a visitor without a wallet sees the 13 models and can filter them', async ({ page }, testInfo) => {
    await expect(page.getByRole('heading', { level: 1 })).toHaveText('Allowlisted models');
    const rows = page.locator('#models-table tr.model-row');
    await expect(rows).toHaveCount(13);
    await expect(page.locator('#model-count')).toHaveText('13 of 13 models');
    const defaultRow = rows.filter({ hasText: 'deepseek-ai/DeepSeek-V3.2-TEE' });
    await expect(defaultRow).toHaveCount(1);
    await expect(defaultRow.locator('.badge')).toHaveText('default');
    await expect(page.locator('#switch-chutes')).toBeChecked();
    await expect(page.locator('#switch-openrouter')).not.toBeChecked();
    await exactText(page.locator('#sandbox-snippet')).toBe('INFERENCE_PROVIDER=chutes\nSANDBOX_MODEL=deepseek-ai/DeepSeek-V3.2-TEE');
    await snap(page, 'models-all', testInfo);

    const filter = page.locator('#model-filter');
    await expect(filter).toHaveAttribute('type', 'search');
    await filter.fill('qwen');
    await expect(rows).toHaveCount(3);
    await expect(page.locator('#model-count')).toHaveText('3 of 13 models');
    for (const row of await rows.all()) await expect(row).toContainText(/qwen/i);
    await snap(page, 'models-filtered-qwen', testInfo);

    // Case-insensitive; matches either provider's name; no match shows none.
    await filter.fill('QWEN');
    await expect(rows).toHaveCount(3);
    await filter.fill('no-such-model-xyz');
    await expect(rows).toHaveCount(0);
    await expect(page.locator('#model-count')).toHaveText('No model matches “no-such-model-xyz” (0 of 13 models). Clear the filter to see them all.');
    await filter.fill('');
    await expect(rows).toHaveCount(13);
    await expect(page.locator('#model-count')).toHaveText('13 of 13 models');
  });

  test('the provider switch and "Show" set the sandbox lines', async ({ page }, testInfo) => {
    const snippet = page.locator('#sandbox-snippet');
    await page.locator('#switch-openrouter').check();
    await expect(page.locator('#switch-openrouter')).toBeChecked();
    await exactText(snippet).toBe('INFERENCE_PROVIDER=openrouter\nSANDBOX_MODEL=deepseek/deepseek-v3.2');
    // The chosen provider's column is the marked one, in the header and in every row.
    await expect(page.locator('#models-table th.active')).toHaveText('OpenRouter name');
    await expect(page.locator('#models-table td.active')).toHaveCount(13);
    for (const cell of await page.locator('#models-table td.active').all()) await expect(cell).toHaveAttribute('data-label', 'OpenRouter');

    // "Show" on another model: its name under the chosen provider.
    await page.locator('#model-filter').fill('qwen');
    const row = page.locator('#models-table tr.model-row').first();
    const [chutesName, openrouterName] = await row.locator('code').allTextContents();
    expect(chutesName).not.toBe('deepseek-ai/DeepSeek-V3.2-TEE');
    await row.getByRole('button', { name: `Show sandbox lines for ${chutesName}` }).click();
    await exactText(snippet).toBe(`INFERENCE_PROVIDER=openrouter\nSANDBOX_MODEL=${openrouterName}`);
    await page.locator('#switch-chutes').check();
    await exactText(snippet).toBe(`INFERENCE_PROVIDER=chutes\nSANDBOX_MODEL=${chutesName}`);
    // The lines were brought into view, and the row they belong to is marked.
    await expect(snippet).toBeInViewport();
    await expect(row).toHaveAttribute('aria-current', 'true');
    await expect(page.locator('#models-table tr[aria-current]')).toHaveCount(1);
    await snap(page, 'models-show-snippet', testInfo);
  });

  test('the filter and the provider are in the URL, both ways', async ({ page }) => {
    await page.locator('#model-filter').fill('qwen');
    await page.locator('#switch-openrouter').check();
    await expect(page).toHaveURL(/\/models\?q=qwen&provider=openrouter$/);
    await gotoHydrated(page, '/models?q=qwen&provider=openrouter');
    await expect(page.locator('#model-filter')).toHaveValue('qwen');
    await expect(page.locator('#switch-openrouter')).toBeChecked();
    await expect(page.locator('#models-table tr.model-row')).toHaveCount(3);
    await expect(page.locator('#models-table td.active').first()).toHaveAttribute('data-label', 'OpenRouter');
    await page.locator('#model-filter').fill('');
    await page.locator('#switch-chutes').check();
    await expect(page).toHaveURL(/\/models$/);
  });

  test('Copy puts a model name on the clipboard', async ({ page, context }, testInfo) => {
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE_URL });
    const row = page.locator('#models-table tr.model-row').filter({ hasText: 'deepseek-ai/DeepSeek-V3.2-TEE' });

    const copyChutes = row.getByRole('button', { name: 'Copy deepseek-ai/DeepSeek-V3.2-TEE' });
    await expect(copyChutes).toHaveText('Copy');
    await copyChutes.click();
    await expect(copyChutes).toHaveText('Copied ✓');
    expect(await readClipboard(page)).toBe('deepseek-ai/DeepSeek-V3.2-TEE');

    const copyOpenRouter = row.getByRole('button', { name: 'Copy deepseek/deepseek-v3.2' });
    await copyOpenRouter.click();
    await expect(copyOpenRouter).toHaveText('Copied ✓');
    expect(await readClipboard(page)).toBe('deepseek/deepseek-v3.2');
    await snap(page, 'models-copied', testInfo);

    // The sandbox lines copy as they are shown, line break included.
    const copySnippet = page.getByRole('button', { name: 'Copy the sandbox lines' });
    await copySnippet.click();
    await expect(copySnippet).toHaveText('Copied ✓');
    expect(await readClipboard(page)).toBe('INFERENCE_PROVIDER=chutes\nSANDBOX_MODEL=deepseek-ai/DeepSeek-V3.2-TEE');
  });
});
