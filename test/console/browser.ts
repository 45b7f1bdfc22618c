// Debian's chromium driven by playwright-core for the console's end-to-end tests and benchmark:
// headless, never downloading a browser, and with screenshots written to test-artifacts/console/
// (git-ignored) for a person to look at.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from '../harness/cluster.js';

export const chromiumPath = process.env.CONTINUUM_CHROMIUM ?? '/usr/bin/chromium';
export const artifactsDir = join(repoRoot, 'test-artifacts', 'console');
/** A laptop screen: the console must read well at this size (issue 7). */
export const viewport = { width: 1366, height: 768 };
/**
 * Options of every browser context: a laptop screen; and the console's content security policy
 * (no eval) set aside for playwright's in-page predicates, which are strings evaluated there (the
 * policy itself is tested in src/controller/api/console-static.test.ts).
 */
export const contextOptions = { viewport, bypassCSP: true };

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    // Chromium's sandbox needs user namespaces that a root test runner or a container lacks;
    // the pages it opens are our own console on loopback.
    args: process.getuid?.() === 0 ? ['--no-sandbox'] : [],
  });
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(artifactsDir, { recursive: true });
  const path = join(artifactsDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

/** Signs in through the form and waits until the overview has rendered. */
export async function signIn(
  page: Page,
  url: string,
  token: string,
  timeoutMs = 20_000,
): Promise<void> {
  await page.goto(url);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: timeoutMs });
}
