// The environment an instance starts with: who and what it is, and where each endpoint listens.
// PORT (first endpoint) and CONTINUUM_PORT_<NAME> give the port on the node; for a VIP endpoint
// that is the endpoint's own port, and CONTINUUM_VIP_<NAME> gives the VIP (docs/vip.md).
import type { Assignment } from '../core/protocol.js';
import { vipIp } from '../core/spec.js';

/** An endpoint name as an environment variable suffix: upper case, "-" as "_". */
function envName(endpoint: string): string {
  return endpoint.toUpperCase().replace(/-/g, '_');
}

export function instanceEnv(
  node: string,
  workload: string,
  epoch: number,
  spec: Assignment['spec'],
  ports: Record<string, number>,
): Record<string, string> {
  const env: Record<string, string> = {
    CONTINUUM_NODE: node,
    CONTINUUM_WORKLOAD: workload,
    CONTINUUM_EPOCH: String(epoch),
  };
  spec.endpoints.forEach((endpoint, i) => {
    const port = ports[endpoint.name];
    if (port === undefined) return;
    env[`CONTINUUM_PORT_${envName(endpoint.name)}`] = String(port);
    if (i === 0) env.PORT = String(port);
    const vip = vipIp(endpoint.vip);
    if (vip !== undefined) env[`CONTINUUM_VIP_${envName(endpoint.name)}`] = vip;
  });
  return env;
}
