// The frontend benchmark (bench/frontend.sh): the same server set-up as the test suite, but
// only the bench spec, against the release build.
import base from './playwright.config';
import { defineConfig } from '@playwright/test';

export default defineConfig({ ...base, testDir: './bench', testMatch: /.*\.bench\.ts/ });
