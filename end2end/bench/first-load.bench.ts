// What a miner's browser fetches on a first visit, and how soon the page answers on a slow
// connection (issue 15). Printed as `BENCH | what | value |` lines for bench/frontend.sh.
//
// Bytes: every script and WebAssembly file the first load of a page fetches, as sent over the
// wire (Chromium's encoded body size, so a compressed answer counts compressed) and as the
// browser had them after decoding (raw). A fresh browser context per load: a cold cache.
//
// Time: Chromium's own network emulation (1.6 Mbit/s down, 750 kbit/s up, 150 ms round trip),
// from navigation start to the moment the page's Connect button works (the app has hydrated
// and a click on it does what it says); cold cache (a new context), then warm (the same
// context, loaded again).
import type { Browser, BrowserContext, Page } from '@playwright/test';
import { expect, hydrationMarker, signInOnDashboard, test, waitForHydration } from '../tests/fixtures/test';
import { installWallet } from '../tests/fixtures/wallet';
import { BASE_URL } from '../tests/fixtures/env';

const ROUNDS = 5;
const SLOW = { offline: false, latency: 150, downloadThroughput: 1_600_000 / 8, uploadThroughput: 750_000 / 8 };

type Fetched = { url: string; wire: number; raw: number };

/** Loads `path` in `page` and lists the scripts and wasm it fetched. */
async function scriptsOf(page: Page, path: string): Promise<Fetched[]> {
  const seen: Promise<Fetched | null>[] = [];
  page.on('requestfinished', (request) => {
    const url = request.url();
    if (!/\.(m?js|wasm)(\?|$)/.test(new URL(url).pathname)) return;
    seen.push(
      (async () => {
        const response = await request.response();
        if (!response) return null;
        const sizes = await request.sizes();
        const raw = (await response.body()).length;
        return { url: new URL(url).pathname, wire: sizes.responseBodySize, raw };
      })(),
    );
  });
  await page.goto(`${BASE_URL}${path}`);
  await waitForHydration(page);
  await page.waitForLoadState('networkidle');
  return (await Promise.all(seen)).filter((f): f is Fetched => f !== null);
}

const kb = (bytes: number) => `${(bytes / 1000).toFixed(1)} KB`;

function stats(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.round((sorted.length - 1) * p)];
  return `median ${at(0.5).toFixed(0)} ms, worst ${sorted[sorted.length - 1].toFixed(0)} ms (${samples.length} loads)`;
}

/** A new context (an empty cache) that knows when the app has hydrated. */
async function fresh(browser: Browser, storageState?: Awaited<ReturnType<BrowserContext['storageState']>>) {
  const context = await browser.newContext(storageState ? { storageState } : {});
  await context.addInitScript(hydrationMarker);
  return context;
}

/** A signed-in session's cookies, to start fresh contexts with. */
async function signedInState(browser: Browser) {
  const context = await fresh(browser);
  const page = await context.newPage();
  const wallet = await installWallet(page, { name: 'Bench miner' });
  await signInOnDashboard(page, wallet);
  const state = await context.storageState();
  await context.close();
  return state;
}

async function throttle(context: BrowserContext, page: Page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', SLOW);
}

/** Navigation start to a working Connect button: `button` opens what it controls. */
async function timeToConnect(page: Page, path: string, button: string, opens: string): Promise<number> {
  await page.goto(`${BASE_URL}${path}`, { waitUntil: 'commit' });
  await waitForHydration(page);
  const at = await page.evaluate(() => (window as any).__oroE2EHydratedAt as number);
  await page.locator(button).click();
  await expect(page.locator(opens)).toBeVisible();
  return at;
}

test('first-load bytes of each page', async ({ browser }) => {
  test.setTimeout(120_000);
  const state = await signedInState(browser);
  for (const [label, path, signedIn] of [
    ['/', '/', false],
    ['/models', '/models', false],
    ['/dashboard, signed out', '/dashboard', false],
    ['/dashboard, signed in', '/dashboard', true],
  ] as const) {
    const context = await fresh(browser, signedIn ? state : undefined);
    const page = await context.newPage();
    const files = await scriptsOf(page, path);
    await context.close();
    const wire = files.reduce((n, f) => n + f.wire, 0);
    const raw = files.reduce((n, f) => n + f.raw, 0);
    const list = files.map((f) => `${f.url.split('/').pop()} ${kb(f.wire)}`).join(', ');
    console.log(`BENCH | first load of ${label}: scripts and wasm, raw / over the wire | ${kb(raw)} / ${kb(wire)} (${files.length} files: ${list}) |`);
  }
});

test('time to a working Connect button on a slow connection', async ({ browser }) => {
  test.setTimeout(600_000);
  const state = await signedInState(browser);
  const cases = [
    ['/dashboard, signed in (Connect OpenRouter)', true, '#openrouter-connect', '#openrouter-paste'],
    ['/dashboard, signed out (Connect wallet)', false, '#connect-wallet', '#no-wallet'],
  ] as const;
  for (const [label, signedIn, button, opens] of cases) {
    const cold: number[] = [];
    const warm: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const context = await fresh(browser, signedIn ? state : undefined);
      const page = await context.newPage();
      await throttle(context, page);
      cold.push(await timeToConnect(page, '/dashboard', button, opens));
      warm.push(await timeToConnect(page, '/dashboard', button, opens));
      await context.close();
    }
    console.log(`BENCH | time to a working Connect, ${label}, 1.6 Mbit/s and 150 ms RTT, cold cache | ${stats(cold)} |`);
    console.log(`BENCH | time to a working Connect, ${label}, 1.6 Mbit/s and 150 ms RTT, warm cache | ${stats(warm)} |`);
  }
});
