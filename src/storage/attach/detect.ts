// Which attach methods work on this host, and why the others do not. The agent logs this once at
// start and refuses volume workloads when no method works. `evaluateAttachMethods` is pure: the
// same facts always give the same answer, and tests feed it facts of hosts we do not have.
import { ContinuumError } from '../../core/errors.js';
import { probeHostFacts, type HostFacts, type ToolName } from './host-facts.js';
import type { CommandRunner } from './command-runner.js';
import { attachMethods, type AttachMethod } from './types.js';

/** Tools each method runs, from connect to detach. */
export const methodTools: Readonly<Record<AttachMethod, readonly ToolName[]>> = {
  'nbd-client': ['nbd-client', 'blkid', 'mkfs.ext4', 'mount', 'umount', 'sync'],
  'nbdfuse-loop': [
    'nbdfuse',
    'fusermount3',
    'losetup',
    'blkid',
    'mkfs.ext4',
    'mount',
    'umount',
    'sync',
  ],
  'nbdfuse-fuse2fs': ['nbdfuse', 'fusermount3', 'fuse2fs', 'blkid', 'mkfs.ext4', 'e2fsck', 'sync'],
};

export interface MethodAvailability {
  method: AttachMethod;
  available: boolean;
  /** Why it is not available; empty when it is. */
  reasons: string[];
}

export interface AttachDetection {
  /** Every method, in order of preference. */
  methods: MethodAvailability[];
  /** What `auto` picks: the first available method; null when none works here. */
  preferred: AttachMethod | null;
  facts: HostFacts;
}

function missingTools(facts: HostFacts, method: AttachMethod): string[] {
  const missing = methodTools[method].filter((tool) => facts.tools[tool] === undefined);
  return missing.length === 0
    ? []
    : [`not found on PATH or in /usr/sbin, /sbin: ${missing.join(', ')}`];
}

/** What FUSE needs for both nbdfuse methods, for root and for an unprivileged agent alike. */
function fuseReasons(facts: HostFacts): string[] {
  const reasons: string[] = [];
  if (!facts.fuseFileSystem) {
    reasons.push('the kernel lists no fuse file system (/proc/filesystems)');
  }
  if (facts.devFuse === 'absent') reasons.push('/dev/fuse does not exist');
  // libfuse opens /dev/fuse itself, as the calling user, and only then lets the setuid helper
  // do the mount(2); a /dev/fuse closed to us (mode 0600, as in some containers) is final.
  if (facts.devFuse === 'no-access') {
    reasons.push(`/dev/fuse cannot be opened for reading and writing by uid ${facts.uid}`);
  }
  return reasons;
}

function reasonsAgainst(facts: HostFacts, method: AttachMethod): string[] {
  const reasons: string[] = [];
  switch (method) {
    case 'nbd-client':
      if (!facts.isRoot) reasons.push('needs root (kernel NBD devices and mount)');
      if (facts.nbdModule === 'absent' || facts.nbdModule === 'unknown') {
        reasons.push(`kernel nbd module: ${facts.nbdModuleDetail}`);
      }
      if (facts.nbdModule === 'loadable' && facts.tools.modprobe === undefined) {
        reasons.push('modprobe not found to load the nbd module');
      }
      break;
    case 'nbdfuse-loop':
      if (!facts.isRoot) reasons.push('needs root (loop devices and mount)');
      reasons.push(...fuseReasons(facts));
      if (!facts.loopControl) reasons.push('/dev/loop-control does not exist (no loop driver)');
      break;
    case 'nbdfuse-fuse2fs':
      reasons.push(...fuseReasons(facts));
      // An unprivileged user's mount(2) fails with EPERM; libfuse then asks the setuid helper.
      if (!facts.isRoot && !facts.fusermountSetuidRoot) {
        reasons.push('fusermount3 is not setuid root, so an unprivileged user cannot mount FUSE');
      }
      break;
  }
  return [...reasons, ...missingTools(facts, method)];
}

export function evaluateAttachMethods(facts: HostFacts): AttachDetection {
  const methods = attachMethods.map((method) => {
    const reasons = reasonsAgainst(facts, method);
    return { method, available: reasons.length === 0, reasons };
  });
  return { methods, preferred: methods.find((m) => m.available)?.method ?? null, facts };
}

/** Probes this host (a few stat calls, at most one `modprobe --dry-run`) and evaluates it. */
export async function detectAttachMethods(
  options: { runner?: CommandRunner; timeoutMs?: number; searchPath?: string } = {},
): Promise<AttachDetection> {
  return evaluateAttachMethods(await probeHostFacts(options));
}

/** One line for the agent's start-up log. */
export function describeAttachDetection(detection: AttachDetection): string {
  const parts = detection.methods.map((m) =>
    m.available ? `${m.method}: available` : `${m.method}: unavailable (${m.reasons.join('; ')})`,
  );
  const verdict =
    detection.preferred === null
      ? 'no volume attach method works on this node; volume workloads will be refused'
      : `volumes attach with ${detection.preferred}`;
  return `${verdict}; ${parts.join('; ')}`;
}

/** The method to use for a request; throws CONTINUUM_ERR_ATTACH_UNSUPPORTED with the reasons. */
export function chooseAttachMethod(
  detection: AttachDetection,
  requested: 'auto' | AttachMethod = 'auto',
): AttachMethod {
  if (requested === 'auto') {
    if (detection.preferred !== null) return detection.preferred;
    throw new ContinuumError(
      'CONTINUUM_ERR_ATTACH_UNSUPPORTED',
      describeAttachDetection(detection),
      { details: { methods: detection.methods } },
    );
  }
  const entry = detection.methods.find((m) => m.method === requested);
  if (entry?.available === true) return requested;
  throw new ContinuumError(
    'CONTINUUM_ERR_ATTACH_UNSUPPORTED',
    `attach method ${requested} does not work on this node: ${entry?.reasons.join('; ') ?? 'unknown method'}`,
    { details: { method: requested, reasons: entry?.reasons ?? [] } },
  );
}
