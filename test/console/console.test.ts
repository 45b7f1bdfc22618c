// The browser console end to end (issue 7): Debian's chromium, headless, against a real cluster of
// separate processes (test/harness/demo.ts). A wrong token is refused and nothing else is shown;
// signed in, the overview shows three nodes and the demo workload protected; a killed node makes
// the workload show as failing over, then protected elsewhere with the failover's step times on
// its timeline; an invalid spec shows its problem at its path; maintenance moves the instances
// off a node. Screenshots go to test-artifacts/console/.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { startDemo, type Demo } from '../harness/demo.js';
import { contextOptions, launchBrowser, screenshot, signIn } from './browser.js';

/** Detection, decision, start and the first healthy probe, with room for a loaded machine. */
const failoverTimeoutMs = 45_000;
const viewTimeoutMs = 20_000;

// In-page scripts are strings: this file is type-checked for Node, without the DOM's types.
/**
 * Records every state the workload heading shows as it changes: the failing-over state may last
 * under a second, shorter than a poll from here could be sure to catch.
 */
const recordHeadingStates = `(() => {
  const seen = [document.querySelector('h1 .state')?.textContent ?? ''];
  window.seen = seen;
  new MutationObserver(() => {
    const text = document.querySelector('h1 .state')?.textContent ?? '';
    if (seen.at(-1) !== text) seen.push(text);
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
})()`;

function protectedAwayFrom(node: string): string {
  return `document.querySelector('[data-testid=workload-node] .figure-value')?.textContent !== ${JSON.stringify(node)}
    && document.querySelector('h1 .state')?.textContent === 'protected'`;
}

describe('browser console', () => {
  let demo: Demo | undefined;
  let browser: Browser | undefined;
  let context: BrowserContext;
  let page: Page;

  before(async () => {
    demo = await startDemo();
    browser = await launchBrowser();
    context = await browser.newContext(contextOptions);
    page = await context.newPage();
  });
  after(async () => {
    // Both, even when one of them fails: a browser or cluster left behind would outlive the test.
    await browser?.close().catch(() => undefined);
    await demo?.cluster.close();
  });

  it('refuses a wrong token with a clear message and shows nothing else', async () => {
    const fresh = await browser!.newContext(contextOptions);
    try {
      const visitor = await fresh.newPage();
      const asked: string[] = [];
      visitor.on('request', (r) => asked.push(new URL(r.url()).pathname));
      await visitor.goto(demo!.cluster.url);
      await visitor.getByLabel('API token').fill('not-the-token-0123456789');
      await visitor.getByRole('button', { name: 'Sign in' }).click();
      const alert = visitor.getByTestId('sign-in-error');
      await alert.waitFor({ timeout: viewTimeoutMs });
      assert.match(await alert.innerText(), /refused this token/);
      assert.equal(await visitor.locator('nav, header, [data-testid=workloads-table]').count(), 0);
      assert.doesNotMatch(await visitor.locator('body').innerText(), /node-1|spare-1|kv/);
      assert.deepEqual(
        asked.filter((p) => p.startsWith('/v1/')),
        ['/v1/cluster'],
        'only the token check reached the API',
      );
      assert.equal(await visitor.evaluate('sessionStorage.length'), 0, 'nothing was stored');
    } finally {
      await fresh.close();
    }
  });

  it('signs in and shows three nodes and the demo workload protected', async () => {
    await signIn(page, demo!.cluster.url, demo!.cluster.apiToken());
    const nodes = page.getByTestId('nodes-table');
    for (const name of ['node-1', 'node-2', 'spare-1'])
      await nodes.getByRole('link', { name, exact: true }).waitFor({ timeout: viewTimeoutMs });
    assert.equal(await nodes.getByRole('row').count(), 4, 'a header and three nodes');
    const kvRow = page.getByTestId('workloads-table').getByRole('row').filter({ hasText: 'kv' });
    await kvRow.getByText('protected', { exact: true }).waitFor({ timeout: viewTimeoutMs });
    assert.equal(
      await page.getByTestId('count-protected').locator('.figure-value').innerText(),
      '1',
    );
    assert.equal(await page.getByTestId('link-status').innerText(), 'Live');
    await screenshot(page, 'overview');
  });

  it('shows an invalid spec’s problem at the path it names, and applies nothing', async () => {
    await page.getByRole('link', { name: 'Apply a spec' }).click();
    await page
      .getByLabel('Spec (YAML or JSON)')
      .fill(
        'nodes:\n  - name: node-9\n    site: local\n    capacity: { cpu: -1, memoryMiB: 512 }\n',
      );
    await page.getByRole('button', { name: 'Apply…' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Apply', exact: true }).click();
    const problems = page.getByTestId('spec-problems');
    await problems.waitFor({ timeout: viewTimeoutMs });
    assert.match(
      await problems.innerText(),
      /nodes\[0\]\.capacity\.cpu: expected a positive number/,
    );
    assert.equal((await demo!.cluster.node('node-9')) ?? 'absent', 'absent');
  });

  it('shows the killed node’s workload failing over, then protected elsewhere with its step times', async () => {
    const before = await demo!.cluster.workload('kv');
    await page.goto(`${demo!.cluster.url}/#/workload/kv`);
    const badge = page.getByRole('heading', { name: /^Workload kv/ }).locator('.state');
    await badge.waitFor({ timeout: viewTimeoutMs });
    await page.evaluate(recordHeadingStates);
    // The node crashes as in test/failures.test.ts: its whole process group, agent and workload.
    demo!.cluster.signalGroup(before.node!, 'SIGKILL');
    await page.waitForFunction(protectedAwayFrom(before.node!), undefined, {
      timeout: failoverTimeoutMs,
    });
    const seen = await page.evaluate<string[]>('window.seen');
    const movedAt = seen.indexOf('failing over');
    assert.ok(movedAt > 0, `the console showed "failing over": ${seen.join(' → ')}`);
    assert.equal(seen.at(-1), 'protected');
    // The timeline is loaded on its own and may still hold only the first placement when the
    // heading says protected: wait for the failover's entry itself.
    const entry = page.locator('[data-testid="timeline-failover"][data-kind="failover"]').first();
    await entry.waitFor({ timeout: viewTimeoutMs });
    const text = await entry.innerText();
    assert.match(text, new RegExp(`failover ${before.node} → \\S+ at epoch \\d+`));
    for (const step of ['detect', 'decide', 'start', 'healthy'])
      assert.match(
        text,
        new RegExp(`${step}\\s+\\d\\d:\\d\\d:\\d\\d\\.\\d{3}\\s+[\\d.]+ m?s`, 'i'),
        text,
      );
    assert.match(text, /service restored in [\d.]+ m?s/);
    // Its recent output, read on the node it runs on now: the new instance's start line.
    const after = await demo!.cluster.workload('kv');
    const output = page.getByTestId('recent-output');
    await page.waitForFunction(
      `/kv-service listening on .* epoch=${after.epoch}/.test(document.querySelector('[data-testid="recent-output"]')?.textContent ?? '')`,
      undefined,
      { timeout: viewTimeoutMs },
    );
    assert.match(await output.innerText(), /kv-service listening on/);
    // The old instance's last report said healthy; its node is down, and the table says so.
    await page
      .getByTestId('instances')
      .getByRole('row', { name: new RegExp(`^${before.node} `) })
      .getByText('node down')
      .waitFor({ timeout: viewTimeoutMs });
    // Its response-time chart reads the metrics history (samples or, early on, "no samples yet";
    // a refused query would show "not available" instead and no chart).
    await page.getByTestId('chart-workload_response_seconds').waitFor({ timeout: viewTimeoutMs });
    await screenshot(page, 'workload-timeline');
  });

  it('moves the instances off a node put in maintenance', async () => {
    const before = await demo!.cluster.workload('kv');
    const node = before.node!;
    await page.goto(`${demo!.cluster.url}/#/node/${node}`);
    const instances = page.getByTestId('node-instances');
    await instances.getByRole('link', { name: 'kv' }).waitFor({ timeout: viewTimeoutMs });
    for (const series of ['node_cpu_usage_ratio', 'node_memory_used_bytes'])
      await page.getByTestId(`chart-${series}`).waitFor({ timeout: viewTimeoutMs });
    await page.getByRole('button', { name: 'Start maintenance…' }).click();
    const dialog = page.getByRole('dialog');
    assert.match(await dialog.innerText(), /moves to another node/);
    await dialog.getByRole('button', { name: 'Start maintenance' }).click();
    await page
      .getByTestId('node-maintenance')
      .getByText('on', { exact: true })
      .waitFor({ timeout: viewTimeoutMs });
    await instances.getByText('No instances on this node.').waitFor({ timeout: failoverTimeoutMs });
    const after = await demo!.cluster.workload('kv');
    assert.notEqual(after.node, node, 'the workload left the node');
    const events = await demo!.cluster.events('node.maintenance.on');
    assert.ok(
      events.some((e) => e.subject.name === node && /by console/.test(e.message)),
      `the journal says the console did it: ${JSON.stringify(events)}`,
    );
  });

  // The demo keeps its data on its node: no replicated volume. test/console/volumes.test.ts shows
  // the view with one (and writes volumes.png); this is the view of a cluster without any.
  it('shows the volumes view of a cluster without replicated volumes', async () => {
    await page.goto(`${demo!.cluster.url}/#/volumes`);
    await page
      .getByRole('heading', { name: 'Volumes', exact: true })
      .waitFor({ timeout: viewTimeoutMs });
    await page.getByTestId('volumes-table').waitFor({ timeout: viewTimeoutMs });
    await page
      .getByRole('heading', { name: 'Replicated volumes (0)' })
      .waitFor({ timeout: viewTimeoutMs });
    await screenshot(page, 'volumes-none');
  });
});
