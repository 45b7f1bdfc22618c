// Controller tunables with their defaults. Defaults are chosen so a crashed node's workloads serve
// again within about two seconds (ARCHITECTURE.md section 4); each value is validated on entry.

export interface DetectionConfig {
  /** How often agents send a heartbeat. */
  heartbeatIntervalMs: number;
  /** A node without a heartbeat for this long is suspect (nothing moves yet). */
  suspectAfterMs: number;
  /** A node without a heartbeat for this long is down: its workloads fail over. */
  downAfterMs: number;
  /** How long a workload avoids a node where its remediation ladder gave up. */
  avoidNodeMs: number;
  /**
   * A newly elected leader (several controllers) judges no node suspect or down until agents have
   * had this long to find it: an agent notices a vanished leader by its keep-alive timeout (3 s)
   * and then walks its list of controller addresses (up to 1 s of handshake per vanished one).
   */
  takeoverGraceMs: number;
}

export interface ControllerConfig extends DetectionConfig {
  /** Period of the level-based reconcile loop (it also runs on every change). */
  reconcileIntervalMs: number;
  /** Conditional-write attempts for one decision before it waits for the next pass. */
  writeAttemptsMax: number;
  /** Largest request body the API accepts. */
  requestBodyBytesMax: number;
  /** Largest number of push-channel subscribers (events and routes) at once. */
  subscribersMax: number;
  /** A resync without progress for this long is journaled as stalled (volume.resync-stalled). */
  resyncStallMs: number;
  /** How often the metrics history (metrics/history.ts) samples its series. */
  metricsSampleIntervalMs: number;
  /** How far back the metrics history reaches; older samples are dropped. */
  metricsHistoryMs: number;
  /** Most series the metrics history keeps; samples of further series are dropped and counted. */
  metricsSeriesMax: number;
}

/** Samples one history series may hold (metricsHistoryMs / metricsSampleIntervalMs): 24 h at 1 s. */
export const metricsSamplesPerSeriesMax = 86_400;

export const defaultControllerConfig: ControllerConfig = {
  heartbeatIntervalMs: 200,
  suspectAfterMs: 600,
  downAfterMs: 1200,
  avoidNodeMs: 300_000,
  takeoverGraceMs: 6000,
  reconcileIntervalMs: 100,
  writeAttemptsMax: 5,
  requestBodyBytesMax: 1_048_576,
  subscribersMax: 1000,
  resyncStallMs: 60_000,
  metricsSampleIntervalMs: 15_000,
  metricsHistoryMs: 6 * 3_600_000,
  metricsSeriesMax: 1000,
};

export function controllerConfig(overrides: Partial<ControllerConfig> = {}): ControllerConfig {
  const config = { ...defaultControllerConfig, ...overrides };
  for (const [name, value] of Object.entries(config)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new RangeError(
        `controller config ${name}: expected a positive whole number, got ${String(value)}`,
      );
    }
  }
  if (config.suspectAfterMs < config.heartbeatIntervalMs * 2) {
    throw new RangeError(
      `controller config suspectAfterMs: expected at least two heartbeat intervals (${config.heartbeatIntervalMs * 2} ms), got ${config.suspectAfterMs}`,
    );
  }
  if (config.downAfterMs <= config.suspectAfterMs) {
    throw new RangeError(
      `controller config downAfterMs: expected more than suspectAfterMs (${config.suspectAfterMs} ms), got ${config.downAfterMs}`,
    );
  }
  const samples = Math.floor(config.metricsHistoryMs / config.metricsSampleIntervalMs);
  if (samples < 1 || samples > metricsSamplesPerSeriesMax) {
    throw new RangeError(
      `controller config metricsHistoryMs: expected from one to ${metricsSamplesPerSeriesMax} sample intervals (${config.metricsSampleIntervalMs} ms each), got ${config.metricsHistoryMs}`,
    );
  }
  return config;
}
