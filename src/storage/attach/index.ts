// Volume attach for `process` instances (docs/volume-attach.md): what the agent imports. Detect
// the methods once at start, attach when an instance starts, detach when it stops, recover after
// an agent restart.
export { attachVolume, type AttachVolumeRequest } from './attach.js';
export { detachVolume } from './detach.js';
export { inspectAttachment, recoverAttachment, type AttachInspection } from './recover.js';
export {
  chooseAttachMethod,
  describeAttachDetection,
  detectAttachMethods,
  evaluateAttachMethods,
  type AttachDetection,
  type MethodAvailability,
} from './detect.js';
export { handlePath, readHandle as readAttachHandle } from './handle-store.js';
export type { HostFacts, ToolPaths } from './host-facts.js';
export type { StepOptions as AttachOptions } from './context.js';
export type { CommandRunner, CommandOutcome } from './command-runner.js';
export {
  attachLimitDefaults,
  attachMethods,
  type AttachHandle,
  type AttachLimits,
  type AttachMethod,
  type AttachRequest,
  type NbdTarget,
} from './types.js';
