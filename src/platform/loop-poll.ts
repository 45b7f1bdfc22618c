// Busy-polls the event loop for a short window after the process has answered a peer, so that the
// peer's next message finds the loop awake rather than asleep in epoll_wait.
//
// Why: at queue depth 1 a request and its reply cross between two processes, and on a virtual
// machine an idle vCPU halts; waking it goes through the hypervisor. On the benchmark VM
// (docs/nbd-server.md, "Depth 1") those wake-ups were half of the NBD server's CPU at 4 KiB reads,
// and the server's placement relative to fio decided its figures more than its code did. The
// kernel's haltpoll driver answers the same problem by polling before a vCPU halts (200 us by
// default; this VM sets it to 0). A process that keeps its loop turning for a few tens of
// microseconds after it sent a reply or a replication frame receives the answer without a wake-up.
//
// How: while the window is open a chain of setImmediate callbacks keeps the loop busy, and libuv
// polls for I/O with a zero timeout between them instead of blocking. Each send extends the window;
// once it passes with nothing sent, the chain ends and the loop sleeps as before. The price is CPU:
// at most one window of a core after each batch of replies, and nothing while the process is idle.
//
// Where the answer comes later than the window (an idle client, a replica whose next frame waits
// for the client's whole round trip), the window is spent for nothing; so only the sends that expect
// an answer soon kick it: an NBD server's replies and a primary's replication frames, not a replica's
// acks (agent/volume-replication.ts). And only after a small batch: a client with many requests in
// flight has its next ones coming anyway, and where processes fill the cores a spinning loop takes
// time from them (4 KiB writes at depth 32 lost a quarter of their IOPS when every batch kicked). A
// window of 0 turns polling off.
//
// The same wake-up is paid when the process hands a request to libuv's thread pool (a flush's
// fdatasync, a write in `threadpool` mode) and sleeps until the pool signals it done. While few
// requests are in flight the NBD server holds the poll over each one (hold/release): the loop keeps
// turning until the work completes, for at most loopPollHoldUsMax, and then the reply's kick takes
// over. 4 KiB writes with a flush each at depth 1: 1.19 to 1.40 times as many per second with it
// (docs/nbd-server.md).

/** The default window: about one loopback round trip between two processes on the bench VM. */
export const loopPollWindowUsDefault = 50;
/** The longest window accepted: beyond it the poll costs more than the halt it avoids. */
export const loopPollWindowUsMax = 1000;
/** Replies or frames in one batch above which the sender does not poll: a busy peer. */
export const loopPollBatchMessagesMax = 2;
/**
 * The longest a hold keeps the loop turning: about twice the slowest usual fdatasync on the bench
 * VM (130-250 us). Work that takes longer costs a sleep and a wake-up, as without the poll.
 */
export const loopPollHoldUsMax = 500;

export interface LoopPollOptions {
  /** How long the loop keeps turning after the last kick, in microseconds (0: never). */
  readonly windowUs: number;
  /** Monotonic time in milliseconds (default performance.now; tests pass their own). */
  readonly nowMs?: () => number;
}

/** Checks a window given by an operator or a caller; the message names the option. */
export function checkLoopPollWindowUs(windowUs: number, name = 'loopPollWindowUs'): number {
  if (!Number.isInteger(windowUs) || windowUs < 0 || windowUs > loopPollWindowUsMax) {
    throw new RangeError(
      `${name}: expected a whole number of microseconds from 0 to ${loopPollWindowUsMax}, got ${windowUs}`,
    );
  }
  return windowUs;
}

/** A window given as text on a command line (`--loop-poll-us 50`); the message names the flag. */
export function parseLoopPollWindowUs(text: string, flag: string): number {
  if (!/^\d{1,7}$/.test(text)) {
    throw new RangeError(
      `${flag}: expected a whole number of microseconds from 0 to ${loopPollWindowUsMax}, got "${text}"`,
    );
  }
  return checkLoopPollWindowUs(Number(text), flag);
}

export class LoopPoll {
  readonly windowUs: number;
  private readonly windowMs: number;
  private readonly nowMs: () => number;
  private untilMs = 0;
  /** Holds not yet released, and when the last one began plus loopPollHoldUsMax. */
  private holds = 0;
  private holdUntilMs = 0;
  private turning = false;
  private stepsTaken = 0;
  private readonly step = (): void => {
    this.stepsTaken++;
    const nowMs = this.nowMs();
    if (nowMs < this.untilMs || (this.holds > 0 && nowMs < this.holdUntilMs)) {
      setImmediate(this.step);
    } else this.turning = false;
  };

  constructor(options: LoopPollOptions) {
    this.windowUs = checkLoopPollWindowUs(options.windowUs);
    this.windowMs = this.windowUs / 1000;
    this.nowMs = options.nowMs ?? (() => performance.now());
  }

  /** Turns of the loop spent polling since the start. */
  get turns(): number {
    return this.stepsTaken;
  }

  /** Whether the loop is being kept awake now. */
  get active(): boolean {
    return this.turning;
  }

  /**
   * A batch of `batchMessages` replies or frames left, which a peer will answer soon: keep the
   * loop turning for one window, unless the batch was large (loopPollBatchMessagesMax).
   */
  kick(batchMessages: number): void {
    if (this.windowMs === 0 || batchMessages > loopPollBatchMessagesMax) return;
    this.untilMs = this.nowMs() + this.windowMs;
    this.turn();
  }

  /**
   * A request was handed to work that signals the loop when done (the thread pool), and the
   * process answers it then: keep the loop turning until release(), for at most
   * loopPollHoldUsMax, unless more than loopPollBatchMessagesMax requests are in flight (a busy
   * peer, as for kick). Returns whether it holds; pass that to release().
   */
  hold(requestsInFlight: number): boolean {
    if (this.windowMs === 0 || requestsInFlight > loopPollBatchMessagesMax) return false;
    this.holds++;
    this.holdUntilMs = this.nowMs() + loopPollHoldUsMax / 1000;
    this.turn();
    return true;
  }

  /** The work of a hold is done (`held`: what hold() returned). */
  release(held: boolean): void {
    if (held) this.holds--;
  }

  /** Holds not yet released. */
  get holding(): number {
    return this.holds;
  }

  private turn(): void {
    if (this.turning) return;
    this.turning = true;
    setImmediate(this.step);
  }
}

/** A poll that never turns the loop: for servers and links made without one. */
export const noLoopPoll = new LoopPoll({ windowUs: 0 });
