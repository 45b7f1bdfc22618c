// Node: inventory, usage (with charts of its CPU and memory), role, state and maintenance, and
// the instances it runs; maintenance on and off with a confirmation (it moves every workload off
// the node).
import { useState } from 'preact/hooks';
import { Badge, EventList, Figure, Section } from '../components/bits.js';
import { Confirm } from '../components/confirm.js';
import { HistoryChart } from '../components/history-chart.js';
import { actions, useAction } from '../actions.js';
import { cpus, durationMs, mebibytes } from '../format.js';
import { useData } from '../use-data.js';

export const nodeEventsMax = 30;

export function NodeView(props: { name: string }) {
  const { snap } = useData();
  const [asking, setAsking] = useState<boolean | undefined>();
  const action = useAction();
  const node = snap.nodes.find((n) => n.name === props.name);
  if (node === undefined)
    return (
      <p class="error" role="alert">
        No node named “{props.name}”.
      </p>
    );
  const owned = new Set(snap.derived.byNode.get(node.name) ?? []);
  const workloads = snap.workloads.filter((w) => owned.has(w.name));
  const free = snap.derived.free.get(node.name);
  const events = snap.events
    .filter((e) => e.subject.name === node.name || e.subject.name.endsWith(`/${node.name}`))
    .slice(-nodeEventsMax)
    .reverse();
  const setTo = !node.maintenance;
  return (
    <div class="node-view">
      <h1>
        Node {node.name} <Badge state={node.state} />
      </h1>
      <div class="figures">
        <Figure label="role" value={node.role} testId="node-role" />
        <Figure label="site" value={node.site} />
        <Figure
          label="maintenance"
          value={node.maintenance ? 'on' : 'off'}
          testId="node-maintenance"
        />
        <Figure label="agent" value={node.connected ? 'connected' : 'not connected'} />
        <Figure
          label="last heartbeat"
          value={
            node.lastHeartbeatAgoMs === undefined
              ? '—'
              : `${durationMs(node.lastHeartbeatAgoMs)} ago`
          }
        />
      </div>
      <div class="buttons">
        <button type="button" disabled={action.busy} onClick={() => setAsking(setTo)}>
          {setTo ? 'Start maintenance…' : 'End maintenance…'}
        </button>
      </div>
      {action.outcome !== undefined && (
        <p class={action.outcome.ok ? 'ok' : 'error'} role="status">
          {action.outcome.message}
        </p>
      )}
      {asking !== undefined && (
        <Confirm
          title={asking ? `Put ${node.name} in maintenance?` : `End maintenance of ${node.name}?`}
          confirmLabel={asking ? 'Start maintenance' : 'End maintenance'}
          onCancel={() => setAsking(undefined)}
          onConfirm={() => {
            const on = asking;
            setAsking(undefined);
            void action.run(on ? 'Maintenance on' : 'Maintenance off', () =>
              actions.maintenance(node.name, on),
            );
          }}
        >
          {asking
            ? `Every workload on ${node.name} (${workloads.length}) moves to another node, and nothing new is placed here until maintenance ends.`
            : `${node.name} takes work again.`}
        </Confirm>
      )}
      <div class="columns">
        <Section title="Inventory and usage">
          <dl class="facts">
            <dt>Capacity</dt>
            <dd>
              {cpus(node.capacity.cpu)} CPU, {mebibytes(node.capacity.memoryMiB)}
              {node.capacity.diskGiB === undefined ? '' : `, ${node.capacity.diskGiB} GiB disk`}
            </dd>
            <dt>Free</dt>
            <dd>
              {free === undefined ? '—' : `${cpus(free.cpu)} CPU, ${mebibytes(free.memoryMiB)}`}
            </dd>
            <dt>Usage</dt>
            <dd>
              {node.usage === undefined
                ? 'not reported'
                : `${node.usage.cpuPercent.toFixed(0)} % CPU, ${mebibytes(node.usage.memoryUsedMiB)} memory, load ${node.usage.load1.toFixed(2)}`}
            </dd>
            <dt>Host</dt>
            <dd>
              {node.inventory === undefined
                ? 'not reported'
                : `${node.inventory.hostname}: ${node.inventory.cpuCount} CPU, ${mebibytes(node.inventory.memoryMiB)}, agent ${node.inventory.agentVersion} (pid ${node.inventory.agentPid})`}
            </dd>
            <dt>Address</dt>
            <dd>{node.address}</dd>
            <dt>Labels</dt>
            <dd>
              {Object.entries(node.labels)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ') || '—'}
            </dd>
          </dl>
          <HistoryChart
            title="CPU"
            series="node_cpu_usage_ratio"
            labels={{ node: node.name }}
            scale={100}
            unit="%"
          />
          <HistoryChart
            title="Memory used"
            series="node_memory_used_bytes"
            labels={{ node: node.name }}
            scale={1 / (1024 * 1024)}
            unit="MiB"
          />
        </Section>
        <Section title={`Instances (${workloads.length})`}>
          <table class="plain" data-testid="node-instances">
            <thead>
              <tr>
                <th scope="col">Workload</th>
                <th scope="col">Protection</th>
                <th scope="col">Instance</th>
                <th scope="col">Epoch</th>
              </tr>
            </thead>
            <tbody>
              {workloads.map((w) => (
                <tr key={w.name}>
                  <td>
                    <a href={`#/workload/${w.name}`}>{w.name}</a>
                  </td>
                  <td>
                    <Badge state={snap.derived.protection.get(w.name) ?? 'down'} />
                  </td>
                  <td>{w.instance?.state ?? '—'}</td>
                  <td>{w.epoch}</td>
                </tr>
              ))}
              {workloads.length === 0 && (
                <tr>
                  <td colSpan={4} class="empty">
                    No instances on this node.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </Section>
      </div>
      <Section title="Recent events">
        <EventList label={`Events of ${node.name}`} events={events} />
      </Section>
    </div>
  );
}
