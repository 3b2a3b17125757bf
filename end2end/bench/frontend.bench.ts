// Figures for bench/frontend.sh, printed as `BENCH | what | value |` lines.
import { test, waitForHydration, signInOnDashboard } from '../tests/fixtures/test';
import { installWallet } from '../tests/fixtures/wallet';
import { BASE_URL } from '../tests/fixtures/env';

const ROUNDS = 10;

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.round((sorted.length - 1) * p)];
  return `median ${at(0.5).toFixed(0)} ms, p90 ${at(0.9).toFixed(0)} ms (${samples.length} loads)`;
}

test('time to hydrated on /dashboard, signed in', async ({ page }) => {
  const wallet = await installWallet(page, { name: 'Bench miner' });
  await signInOnDashboard(page, wallet);
  const samples: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    await page.goto(`${BASE_URL}/dashboard`);
    await waitForHydration(page);
    samples.push(await page.evaluate(() => (window as any).__oroE2EHydratedAt as number));
  }
  console.log(`BENCH | time to hydrated, /dashboard (navigation start to hydrate(), cache warm) | ${stats(samples)} |`);
});

test('server-side render time of /models', async ({ request }) => {
  for (let i = 0; i < 20; i++) await request.get(`${BASE_URL}/models`);
  const samples: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t = performance.now();
    const response = await request.get(`${BASE_URL}/models`);
    await response.body();
    samples.push(performance.now() - t);
  }
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.round((sorted.length - 1) * p)];
  console.log(`BENCH | server render of /models (full response, loopback, sequential) | median ${at(0.5).toFixed(2)} ms, p99 ${at(0.99).toFixed(2)} ms (200 requests) |`);
});
