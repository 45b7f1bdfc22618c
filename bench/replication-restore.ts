// Time to restore the demo's service after a node crash with its keys on a replicated volume
// (issue 5, "Measure"): the kv service on a 2-copy volume (test/harness/replicated-kv.ts), a client
// writing keys through the endpoint, SIGKILL of the primary's node at a random moment; restore is
// the time from the kill to the first write sent after it that the new primary acknowledges, and
// every round counts the acknowledged keys that do not read back (must be 0). The killed node then
// returns and is resynced before the next round.
import { randomInt } from 'node:crypto';
import { TestCluster } from '../test/harness/cluster.js';
import { ReplicatedKv, replicatedKvSkip, threeNodes } from '../test/harness/replicated-kv.js';

export interface ReplicatedRestoreResult {
  runs: number;
  restoreMs: { median: number; p90: number; max: number; min: number };
  keysAcknowledged: number;
  keysLost: number;
  samples: number[];
}

/** How long one round may wait for the first acknowledged write after the kill. */
const restoreTimeoutMs = 60_000;

function quantiles(values: number[]): ReplicatedRestoreResult['restoreMs'] {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return { median: at(0.5), p90: at(0.9), max: sorted.at(-1)!, min: sorted[0]! };
}

export async function benchReplicatedRestore(runs: number): Promise<ReplicatedRestoreResult> {
  const skip = await replicatedKvSkip();
  if (skip !== false) throw new Error(`replicated restore benchmark cannot run here: ${skip}`);
  const cluster = new TestCluster();
  const nodes = threeNodes;
  const kv = new ReplicatedKv(cluster, nodes);
  const samples: number[] = [];
  let keysLost = 0;
  try {
    await kv.start();
    for (let run = 1; run <= runs; run++) {
      const before = await cluster.workload('kv');
      const victim = before.node!;
      kv.startWriting(`run${run}`);
      await kv.waitAcked(`run ${run}: keys to flow`, 1, 30_000);
      await new Promise((r) => setTimeout(r, randomInt(200, 1500)));
      const killedAt = Date.now();
      cluster.signalGroup(victim, 'SIGKILL');
      await cluster.waitExit(victim);
      const deadline = killedAt + restoreTimeoutMs;
      let restoredAt: number | undefined;
      while (restoredAt === undefined && Date.now() < deadline) {
        restoredAt = kv.ackTimes.find((t) => t.sentAt >= killedAt)?.ackedAt;
        if (restoredAt === undefined) await new Promise((r) => setTimeout(r, 5));
      }
      await kv.stopWriting();
      if (restoredAt === undefined)
        throw new Error(`run ${run}: no write acknowledged ${restoreTimeoutMs} ms after the kill`);
      samples.push(restoredAt - killedAt);
      keysLost += (await kv.readBack()).length;
      process.stdout.write(
        `replicated restore run ${run}/${runs}: ${restoredAt - killedAt} ms, ${keysLost} keys lost so far\n`,
      );
      await cluster.startAgent(nodes.find((n) => n.name === victim)!);
      await kv.waitInSync(`run ${run}: two copies in sync again`, 90_000);
      kv.ackTimes.length = 0;
    }
  } finally {
    await cluster.close();
  }
  return {
    runs,
    restoreMs: quantiles(samples),
    keysAcknowledged: kv.acked.size,
    keysLost,
    samples,
  };
}
