// The console's volume view end to end (issue 7: "volume: replicas with their state"), in Debian's
// chromium against a real cluster whose workload keeps its data on a replicated volume: the demo
// key-value service with a 2-copy volume on node-1 and node-2 (test/harness/replicated-kv.ts; ext4
// over nbdfuse and a loop device, so it needs root and is skipped, with the reason, where no
// volume can be attached). The view shows both copies in sync, the primary named; the replica's
// node is killed while keys are written, and the view shows its copy outdated with why; the node
// returns, and the view shows the copy in sync again after its resync. The screenshot of the view
// with both copies in sync is test-artifacts/console/volumes.png.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, Locator, Page } from 'playwright-core';
import { TestCluster, waitFor } from '../harness/cluster.js';
import { ReplicatedKv, replicatedKvSkip } from '../harness/replicated-kv.js';
import { contextOptions, launchBrowser, screenshot, signIn } from './browser.js';

const skip = await replicatedKvSkip();
const viewTimeoutMs = 20_000;
/** The primary notices an unresponsive copy and the controller drops it (as in the resync tests). */
const outdatedTimeoutMs = 60_000;
/** A returning node is resynced by delta and rejoins the in-sync set (as in the resync tests). */
const resyncTimeoutMs = 90_000;

/** Written while the copy is away: 24 MiB for the resync to copy back. */
const bulkValues = 24;
const bulkValueBytes = 1_000_000;

// In-page scripts are strings: this file is type-checked for Node, without the DOM's types.
/** Records every state a copy's row shows, in order: a resync may last under a second. */
function recordReplicaStates(node: string): string {
  return `(() => {
    const state = () => [...document.querySelectorAll('[data-testid=volume-replicas] tbody tr')]
      .find((tr) => tr.querySelector('td a')?.textContent === ${JSON.stringify(node)})
      ?.querySelector('td:nth-child(2)')?.textContent ?? '';
    const seen = [state()];
    window.replicaStates = seen;
    new MutationObserver(() => {
      const text = state();
      if (seen.at(-1) !== text) seen.push(text);
    }).observe(document.body, { subtree: true, childList: true, characterData: true });
  })()`;
}

/** The copies table of the volume's own view, as rows of node, state and detail. */
async function copiesShown(
  table: Locator,
): Promise<{ node: string; state: string; detail: string }[]> {
  const rows = table.locator('tbody tr');
  const out = [];
  for (let index = 0; index < (await rows.count()); index++) {
    const cells = rows.nth(index).locator('td');
    out.push({
      node: (await cells.nth(0).innerText()).trim(),
      state: (await cells.nth(1).innerText()).trim(),
      detail: (await cells.nth(2).innerText()).trim(),
    });
  }
  return out;
}

describe('browser console: a replicated volume', { skip }, () => {
  const cluster = new TestCluster();
  const nodes = [
    { name: 'node-1', role: 'production' as const },
    { name: 'node-2', role: 'production' as const },
  ];
  const kv = new ReplicatedKv(cluster, nodes);
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    await kv.start();
    browser = await launchBrowser();
    page = await (await browser.newContext(contextOptions)).newPage();
    await signIn(page, cluster.url, cluster.apiToken());
  });
  after(async () => {
    await kv.stopWriting().catch(() => undefined);
    await browser?.close().catch(() => undefined);
    await cluster.close();
  });

  it('shows both copies in sync, the primary named, and each node’s volume server holding one', async () => {
    const primary = (await cluster.workload('kv')).node!;
    const replica = nodes.map((n) => n.name).find((n) => n !== primary)!;
    await page.goto(`${cluster.url}/#/volumes/kv/kvdata`);
    const copies = page.getByRole('table', { name: 'Copies of kvdata' });
    await copies.locator('tbody tr').nth(1).waitFor({ timeout: viewTimeoutMs });
    assert.deepEqual(await copiesShown(copies), [
      { node: `${primary} (primary)`, state: 'in sync', detail: 'primary' },
      { node: replica, state: 'in sync', detail: 'acknowledges every write' },
    ]);
    assert.match(await copies.locator('caption').innerText(), /kvdata: 64(\.0)? MiB/);

    const list = page.getByTestId('volumes-table');
    const row = list.getByRole('row').filter({ hasText: 'kv/kvdata' });
    await row.waitFor({ timeout: viewTimeoutMs });
    const cells = await row.getByRole('cell').allInnerTexts();
    assert.deepEqual(
      cells.slice(1, 3),
      ['2', '2'],
      `two copies, two in sync: ${cells.join(' | ')}`,
    );
    assert.equal(await row.getByText('in sync', { exact: true }).count(), 2);

    // Asked of each node's volume server: each holds a copy, attached only where kv runs.
    const held = page.getByTestId('node-volumes-table');
    for (const node of [primary, replica]) {
      const line = held.getByRole('row').filter({ hasText: node });
      await line.waitFor({ timeout: viewTimeoutMs });
      const texts = await line.getByRole('cell').allInnerTexts();
      assert.equal(texts[1], 'kvdata', texts.join(' | '));
      assert.equal(texts[5], node === primary ? 'yes' : 'no', `attached on ${node}`);
    }
    await screenshot(page, 'volumes');
  });

  it('shows the copy of a killed node outdated, then in sync again once the node returns', async (t) => {
    const primary = (await cluster.workload('kv')).node!;
    const replica = nodes.find((n) => n.name !== primary)!;
    const copies = page.getByRole('table', { name: 'Copies of kvdata' });
    const replicaRow = copies.locator('tbody tr').filter({
      has: page.getByRole('link', { name: replica.name, exact: true }),
    });
    await replicaRow.getByText('in sync', { exact: true }).waitFor({ timeout: viewTimeoutMs });
    await page.evaluate(recordReplicaStates(replica.name));

    // Writes keep flowing, so the primary finds the copy unresponsive and the controller drops it.
    kv.startWriting('console');
    await kv.waitAcked('keys to flow', 3, 30_000);
    cluster.signalGroup(replica.name, 'SIGKILL');
    await cluster.waitExit(replica.name);
    await replicaRow
      .getByText('outdated', { exact: true })
      .waitFor({ timeout: outdatedTimeoutMs })
      .catch((error: Error) => kv.logTail(error));
    const outdated = await copiesShown(copies);
    assert.deepEqual(
      outdated.map((c) => [c.node, c.state]),
      [
        [`${primary} (primary)`, 'in sync'],
        [replica.name, 'outdated'],
      ],
    );
    assert.match(
      outdated[1]!.detail,
      /^since \d\d:\d\d:\d\d\.\d{3}: \S.*/,
      'says since when and why',
    );
    const row = page.getByTestId('volumes-table').getByRole('row').filter({ hasText: 'kv/kvdata' });
    assert.deepEqual((await row.getByRole('cell').allInnerTexts()).slice(1, 3), ['2', '1']);
    await screenshot(page, 'volumes-outdated');

    // Meanwhile the primary takes more than the writer's small keys, so the resync has something
    // to copy (at most 64 MiB/s, docs/replication.md) and is more likely to be seen in progress.
    const bulk = 'x'.repeat(bulkValueBytes);
    let bulkStored = 0;
    for (let index = 0; index < bulkValues; index++)
      if (await kv.put(`console-bulk-${index}`, bulk)) bulkStored++;
    assert.ok(bulkStored > 0, 'bulk values were stored while the copy was outdated');

    // The node returns: its copy is resynced and joins the in-sync set again.
    const returnedAt = Date.now();
    await cluster.startAgent(replica);
    await replicaRow
      .getByText('in sync', { exact: true })
      .waitFor({ timeout: resyncTimeoutMs })
      .catch((error: Error) => kv.logTail(error));
    await kv.stopWriting();
    assert.deepEqual(
      (await copiesShown(copies)).map((c) => c.state),
      ['in sync', 'in sync'],
    );
    // The view follows what the controller says, not an idea of its own.
    await waitFor('the controller to count two copies in sync', viewTimeoutMs, async () =>
      (await kv.copies())?.isr.length === 2 ? true : undefined,
    );
    const resynced = (await cluster.events('volume.resynced')).at(-1);
    t.diagnostic(
      `${resynced?.message ?? 'no volume.resynced event'}, ` +
        `${((resynced?.at ?? NaN) - returnedAt) / 1000} s after the agent was started again`,
    );
    const seen = await page.evaluate<string[]>('window.replicaStates');
    t.diagnostic(`states the console showed for ${replica.name}'s copy: ${seen.join(' → ')}`);
    assert.ok(
      seen.indexOf('outdated') > 0 && seen.lastIndexOf('in sync') > seen.indexOf('outdated'),
      `in sync, then outdated, then in sync: ${seen.join(' → ')}`,
    );
  });
});
