// The console's connection banner end to end (issue 7: "shows plainly when the connection is lost
// and when it is back"), in Debian's chromium against a real demo cluster. The controller process
// is killed, as a crashed controller is in an incident: the kernel closes its sockets, so the
// browser's event stream really ends (a SIGSTOP would leave the TCP connection open and silent,
// and the console would only notice after its 40 s silence limit). The header must say the
// connection is lost, with the time and a reason, while the last known state stays on screen; once
// the controller is started again on the same data directory and port, the header must say the
// connection is back and for how long it was lost, and a maintenance change made through the API
// after that must reach the page through the new stream.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { startDemo, type Demo } from '../harness/demo.js';
import { contextOptions, launchBrowser, screenshot, signIn } from './browser.js';

const viewTimeoutMs = 20_000;
/**
 * A killed controller ends the stream at once; this bound stays well under the console's 40 s
 * silence limit (console/src/live.ts), so the test shows the end of the stream was seen as such.
 */
const lostNoticedTimeoutMs = 15_000;
/** The reconnection backoff reaches 10 s (plus jitter) at most; with room for a loaded machine. */
const backTimeoutMs = 30_000;
const node = 'spare-1';

// In-page scripts are strings: this file is type-checked for Node, without the DOM's types.
/** Records every text the link status shows, in order, so the test can read what was said. */
const recordLinkTexts = `(() => {
  const status = () => document.querySelector('[data-testid=link-status]')?.textContent ?? '';
  const seen = [status()];
  window.linkTexts = seen;
  new MutationObserver(() => {
    const text = status();
    if (seen.at(-1) !== text) seen.push(text);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
})()`;

const lostText =
  /^Connection to the controller lost at \d\d:\d\d:\d\d\.\d{3}: reconnecting… \((.+)\)$/;
const backText = /^Live: connection back at \d\d:\d\d:\d\d\.\d{3} \(lost for [\d.]+ (ms|s)\)$/;

describe('browser console: the connection to the controller', () => {
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    page = await (await browser.newContext(contextOptions)).newPage();
    await signIn(page, demo.cluster.url, demo.cluster.apiToken());
  });
  after(async () => {
    // Both, even when one fails; the cluster's close also ends a controller started again here.
    await browser?.close().catch(() => undefined);
    await demo?.cluster.close();
  });

  it('says plainly when the controller is lost and when it is back, and follows live again', async () => {
    const cluster = demo!.cluster;
    const status = page.getByTestId('link-status');
    await page.goto(`${cluster.url}/#/node/${node}`);
    const maintenance = page.getByTestId('node-maintenance').locator('.figure-value');
    await maintenance.getByText('off', { exact: true }).waitFor({ timeout: viewTimeoutMs });
    await page.waitForFunction(
      `document.querySelector('[data-testid=link-status]')?.textContent === 'Live'`,
      undefined,
      { timeout: viewTimeoutMs },
    );
    await page.evaluate(recordLinkTexts);

    // The controller crashes.
    cluster.signalProcess('controller', 'SIGKILL');
    await cluster.waitExit('controller');
    await page.waitForFunction(
      `document.querySelector('[data-testid=link-status]')?.textContent?.startsWith('Connection to the controller lost at ')`,
      undefined,
      { timeout: lostNoticedTimeoutMs },
    );
    assert.match(await status.innerText(), lostText);
    assert.equal(await status.getAttribute('role'), 'status', 'announced to screen readers');
    assert.match((await status.getAttribute('class')) ?? '', /\blink-lost\b/);
    // What was known stays on screen: the operator still sees the node while the link is down.
    assert.equal(await maintenance.innerText(), 'off');
    assert.equal(await page.getByRole('heading', { level: 1, name: new RegExp(node) }).count(), 1);
    await screenshot(page, 'connection-lost');

    // It comes back on the same port and data directory.
    await cluster.startController();
    await page.waitForFunction(
      `document.querySelector('[data-testid=link-status]')?.textContent?.startsWith('Live: connection back at ')`,
      undefined,
      { timeout: backTimeoutMs },
    );
    assert.match(await status.innerText(), backText);
    assert.match((await status.getAttribute('class')) ?? '', /\blink-live\b/);

    // Every lost text the header showed on the way named a reason, not an internal step.
    const seen = await page.evaluate<string[]>('window.linkTexts');
    const reasons = seen.flatMap((text) => lostText.exec(text)?.[1] ?? []);
    assert.ok(reasons.length > 0, `the header said the link was lost: ${seen.join(' → ')}`);
    assert.deepEqual(
      reasons.filter((reason) => reason === 'connecting'),
      [],
      `each lost text gives the reason the link was lost: ${seen.join(' → ')}`,
    );

    // A change made after the reconnection reaches the page through the new stream.
    const lastSeq = Number(
      await page.evaluate(
        `Math.max(0, ...[...document.querySelectorAll('[data-seq]')].map((li) => Number(li.dataset.seq)))`,
      ),
    );
    const toggled = await cluster.api('POST', `/v1/nodes/${node}/maintenance`, { on: true });
    assert.equal(toggled.status, 200, JSON.stringify(toggled.body));
    await maintenance.getByText('on', { exact: true }).waitFor({ timeout: viewTimeoutMs });
    const line = page
      .getByRole('list', { name: `Events of ${node}` })
      .locator('li', { hasText: 'node.maintenance.on' })
      .first();
    await line.waitFor({ timeout: viewTimeoutMs });
    assert.ok(
      Number(await line.getAttribute('data-seq')) > lastSeq,
      'the maintenance event is a new one, delivered after the reconnection',
    );
    // The refresh that failed while the controller was away is not left on screen as an error.
    await page
      .getByRole('alert')
      .filter({ hasText: 'Last refresh failed' })
      .waitFor({ state: 'detached', timeout: viewTimeoutMs });
    assert.match(await status.innerText(), backText);
    await screenshot(page, 'connection-back');
  });
});
