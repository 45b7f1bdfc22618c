// Workload: where it runs, its protection state, its instances with their epochs, the health of
// each probe (with its verdict and response time), its volumes, the timeline of failovers and
// restarts with step times, its recent output and recent events; switchover to a chosen node and
// restart, each confirmed first.
import { useEffect, useState } from 'preact/hooks';
import { get } from '../api.js';
import { actions, useAction } from '../actions.js';
import { Badge, EventList, Figure, Section } from '../components/bits.js';
import { Confirm } from '../components/confirm.js';
import { HistoryChart } from '../components/history-chart.js';
import { clock } from '../format.js';
import { useData } from '../use-data.js';
import type { InstanceRecord, WorkloadView as Workload } from '../types.js';
import { RecentOutput } from './recent-output.js';
import { Timeline } from './timeline.js';
import { VolumeReplicas } from './volumes.js';

export const workloadEventsMax = 40;
const restartKinds = /^(workload\.restart|instance\.restarting)/;

function useInstances(workload: Workload | undefined): InstanceRecord[] {
  const [instances, setInstances] = useState<InstanceRecord[]>([]);
  useEffect(() => {
    // Refetched whenever the workload's record changes (the data layer swaps it on its events).
    if (workload === undefined) return;
    let current = true;
    get<{ items: InstanceRecord[] }>('/v1/instances')
      .then(
        ({ items }) => current && setInstances(items.filter((i) => i.workload === workload.name)),
      )
      .catch(() => undefined);
    return () => {
      current = false;
    };
  }, [workload]);
  return instances;
}

export function WorkloadView(props: { name: string }) {
  const { snap } = useData();
  const w = snap.workloads.find((x) => x.name === props.name);
  const instances = useInstances(w);
  const action = useAction();
  const [asking, setAsking] = useState<'switchover' | 'restart' | undefined>();
  const targets = snap.nodes.filter((n) => n.name !== w?.node && n.state === 'up');
  const [target, setTarget] = useState('');
  if (w === undefined)
    return (
      <p class="error" role="alert">
        No workload named “{props.name}”.
      </p>
    );
  const mine = (name: string) => name === w.name || name.startsWith(`${w.name}/`);
  const events = snap.events.filter((e) => mine(e.subject.name));
  const protection = snap.derived.protection.get(w.name) ?? 'down';
  const downNodes = new Set(snap.nodes.filter((n) => n.state === 'down').map((n) => n.name));
  const chosen = targets.some((n) => n.name === target) ? target : '';
  return (
    <div class="workload-view">
      <h1>
        Workload {w.name} <Badge state={protection} />
      </h1>
      <div class="figures">
        <Figure
          label="node"
          value={w.node === null ? '—' : <a href={`#/node/${w.node}`}>{w.node}</a>}
          testId="workload-node"
        />
        <Figure label="phase" value={w.phase} testId="workload-phase" />
        <Figure label="epoch" value={w.epoch} />
        <Figure
          label="availability"
          value={`${w.spec.availability.mode}, priority ${w.spec.availability.priority}`}
        />
        <Figure
          label="resources"
          value={`${w.spec.resources.cpu} CPU · ${w.spec.resources.memoryMiB} MiB`}
        />
      </div>
      {w.blockedReason !== undefined && <p class="error">Cannot be placed: {w.blockedReason}</p>}
      <div class="buttons" role="group" aria-label="Actions">
        <label for="switchover-target">Switch over to</label>
        <select
          id="switchover-target"
          value={chosen}
          onChange={(e) => setTarget(e.currentTarget.value)}
        >
          <option value="">the controller's choice</option>
          {targets.map((n) => (
            <option key={n.name} value={n.name}>
              {n.name} ({n.role})
            </option>
          ))}
        </select>
        <button type="button" disabled={action.busy} onClick={() => setAsking('switchover')}>
          Switch over…
        </button>
        <button type="button" disabled={action.busy} onClick={() => setAsking('restart')}>
          Restart…
        </button>
      </div>
      {action.outcome !== undefined && (
        <p class={action.outcome.ok ? 'ok' : 'error'} role="status">
          {action.outcome.message}
        </p>
      )}
      {asking !== undefined && (
        <Confirm
          title={asking === 'restart' ? `Restart ${w.name}?` : `Switch ${w.name} over?`}
          confirmLabel={asking === 'restart' ? 'Restart' : 'Switch over'}
          onCancel={() => setAsking(undefined)}
          onConfirm={() => {
            const what = asking;
            setAsking(undefined);
            if (what === 'restart') void action.run('Restart', () => actions.restart(w.name));
            else
              void action.run('Switchover', () =>
                actions.switchover(w.name, chosen === '' ? undefined : chosen),
              );
          }}
        >
          {asking === 'restart'
            ? `The instance on ${w.node ?? 'its node'} stops and starts again in place; its service is down meanwhile.`
            : `${w.name} stops on ${w.node ?? 'its node'} and starts on ${chosen === '' ? 'a node the controller picks' : chosen}, at a new epoch.`}
        </Confirm>
      )}
      <Section title="Timeline">
        <Timeline
          failovers={snap.failovers.filter((f) => f.workload === w.name)}
          transition={w.transition}
          restarts={events.filter((e) => restartKinds.test(e.kind))}
        />
      </Section>
      <div class="columns">
        <Section title="Instances">
          <table class="plain" data-testid="instances">
            <thead>
              <tr>
                <th scope="col">Node</th>
                <th scope="col">Epoch</th>
                <th scope="col">State</th>
                <th scope="col">Since</th>
                <th scope="col">Restarts</th>
                <th scope="col">Probes</th>
              </tr>
            </thead>
            <tbody>
              {instances.map((i) => (
                <tr
                  key={i.node}
                  class={i.epoch === w.epoch && i.node === w.node ? 'current' : 'stale'}
                >
                  <td>
                    <a href={`#/node/${i.node}`}>{i.node}</a>
                  </td>
                  <td>
                    {i.epoch}
                    {i.epoch === w.epoch && i.node === w.node ? ' (current)' : ''}
                  </td>
                  <td>
                    {/* An instance's last report outlives its node: a dead node's instance is not
                        running whatever it last said. */}
                    {downNodes.has(i.node) && i.state !== 'stopped' ? (
                      <span title={`last reported ${i.state}`}>
                        <Badge state="down" /> node down
                      </span>
                    ) : (
                      <Badge state={i.state} />
                    )}
                  </td>
                  <td>{clock(i.stateSince)}</td>
                  <td>{i.restarts}</td>
                  <td>
                    {Object.entries(i.probes).map(([name, p]) => (
                      <span
                        key={name}
                        class={p.ok && p.failing !== true ? 'probe ok' : 'probe failing'}
                        title={[p.reason, p.lastError].filter(Boolean).join(': ')}
                      >
                        {name}:{' '}
                        {p.failing === true
                          ? `failing (${p.reason ?? 'threshold crossed'}; ${p.action ?? 'restart'})`
                          : p.ok
                            ? 'ok'
                            : p.consecutiveFailures === 0
                              ? 'not yet passed'
                              : `failing ×${p.consecutiveFailures}`}
                        {p.lastDurationMs === undefined ? '' : ` · ${p.lastDurationMs} ms`}
                      </span>
                    ))}
                    {Object.keys(i.probes).length === 0 && '—'}
                  </td>
                </tr>
              ))}
              {instances.length === 0 && (
                <tr>
                  <td colSpan={6} class="empty">
                    No instance reported.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </Section>
        <Section title="Volumes">
          <VolumeReplicas workload={w} />
        </Section>
      </div>
      <Section title="Response time">
        <HistoryChart
          title="Slowest probe response"
          series="workload_response_seconds"
          labels={{ workload: w.name }}
          scale={1000}
          unit="ms"
        />
      </Section>
      <Section title="Recent output">
        <RecentOutput workload={w} />
      </Section>
      <Section title="Recent events">
        <EventList
          label={`Events of ${w.name}`}
          events={events.slice(-workloadEventsMax).reverse()}
        />
      </Section>
    </div>
  );
}
