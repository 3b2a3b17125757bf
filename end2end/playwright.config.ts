import { defineConfig } from '@playwright/test';
import path from 'node:path';

// Browser tests for the ORO inference dashboard, in Debian's Chromium against one server
// started by Playwright (the provider simulator runs inside it).
//
// The server and site default to the repo's build (`cargo leptos build` leaves them in
// ../target); override with ORO_E2E_SERVER (the server binary) and ORO_E2E_SITE_ROOT
// (the directory holding pkg/oro.js, pkg/oro.wasm, pkg/oro.css and oro.js).

const here = __dirname;
const serverBinary = path.resolve(here, process.env.ORO_E2E_SERVER ?? '../target/debug/server');
const siteRoot = path.resolve(here, process.env.ORO_E2E_SITE_ROOT ?? '../target/site');
const outputDir = path.join(here, 'test-results');

// The config is evaluated in the runner and again in each worker; the run id is fixed once in
// the runner and inherited by the workers through the environment. Playwright empties
// test-results before starting the server, so every run gets a fresh database and master key.
process.env.ORO_E2E_RUN_ID ??= new Date().toISOString().replace(/[:.]/g, '-');
const runId = process.env.ORO_E2E_RUN_ID;

const BASE_URL = 'http://127.0.0.1:3100'; // also in tests/fixtures/env.ts
const serverLog = path.join(outputDir, 'server.log');
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// With LEPTOS_OUTPUT_NAME set (e.g. inherited from cargo-leptos) the server would expect
// every other LEPTOS_* variable too; only LEPTOS_SITE_ROOT is passed on.
const unsetLeptos: Record<string, string> = Object.fromEntries(
  Object.keys(process.env)
    .filter((k) => k.startsWith('LEPTOS_') && k !== 'LEPTOS_SITE_ROOT')
    .map((k) => [k, undefined as unknown as string]), // undefined: left out of the child's environment
);

export default defineConfig({
  testDir: './tests',
  outputDir: 'test-results',
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  reporter: 'list',
  timeout: 60_000,
  expect: { timeout: 10_000 },
  use: {
    baseURL: BASE_URL,
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [{ name: 'chromium', use: { browserName: 'chromium' } }],
  webServer: {
    // The server's own log goes to test-results/server.log.
    command: [
      `test -x ${shellQuote(serverBinary)} || { echo "No server binary at ${serverBinary}: build it or set ORO_E2E_SERVER" >&2; exit 1; }`,
      `test -f ${shellQuote(path.join(siteRoot, 'pkg', 'oro.wasm'))} || { echo "No site at ${siteRoot} (pkg/oro.wasm missing): build it or set ORO_E2E_SITE_ROOT" >&2; exit 1; }`,
      `mkdir -p ${shellQuote(outputDir)}`,
      `exec ${shellQuote(serverBinary)} >${shellQuote(serverLog)} 2>&1`,
    ].join('; '),
    url: `${BASE_URL}/health`,
    reuseExistingServer: false,
    timeout: 60_000,
    env: {
      ...unsetLeptos,
      ORO_BIND: '127.0.0.1:3100',
      ORO_GATEWAY_BIND: '127.0.0.1:3102',
      DATABASE_URL: `sqlite://${path.join(outputDir, `e2e-${runId}.db`)}`,
      ORO_MASTER_KEY_FILE: path.join(outputDir, `e2e-${runId}.master.key`),
      ORO_SIMULATE_PROVIDERS: '1',
      ORO_SIMULATOR_BIND: '127.0.0.1:3101',
      LEPTOS_SITE_ROOT: siteRoot,
      // Every spec signs in from 127.0.0.1 against this one server, within a minute or two:
      // the per-address limits are raised (the Rust suite tests the limits themselves).
      ORO_RATE_LIMIT_SIGN_IN_PER_IP: '1000/min',
      ORO_RATE_LIMIT_CONNECT_PER_IP: '1000/min',
      ORO_RATE_LIMIT_SUBMIT_PER_IP: '1000/min',
      // The validator of runs.spec.ts (//Alice, tests/fixtures/api.ts); no cool-down between
      // one miner's submissions.
      ORO_VALIDATOR_HOTKEYS: '5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY',
      ORO_SUBMIT_COOLDOWN_SECS: '0',
    },
  },
});
