// Bounded, adaptive busy-polling of the event loop for stop-and-wait TFTP.
//
// Stop-and-wait costs one round trip per block. When the server's event loop
// sleeps between a DATA and its ACK, every block pays for the CPU going idle
// and being woken again; on the 2-vCPU VM the benches run on that wake-up is
// most of the round trip. After sending, the server therefore keeps the loop
// turning (setImmediate: libuv polls its sockets without blocking) for a
// short window. An ACK that arrives inside the window is handled at once.
//
// It costs CPU only while transfers are active, and backs off, pausing for
// PAUSE_WINDOWS windows before trying again:
// - after MISSES_BEFORE_PAUSE windows in a row in which nothing arrived, so a
//   client slower than the window (firmware across a long wire) costs a small
//   share of the window per block, not all of it;
// - when the process got less than SHARED_CPU_RATIO of the wall-clock time
//   since the previous send: another task wanted this CPU (a client on the
//   same CPU, say), and polling would only keep it from running. This is the
//   userspace counterpart of the kernel's busy-poll loop stopping on
//   need_resched().

const MISSES_BEFORE_PAUSE = 4;
const PAUSE_WINDOWS = 32;
const SHARED_CPU_RATIO = 0.5;

export class BusyPoll {
  private until = 0;
  private polling = false;
  private heardDatagram = false;
  private misses = 0;
  private paused = 0;
  /** Wall-clock (ms) and process CPU (µs) at the previous send while polling; wall 0 = none. */
  private lastWall = 0;
  private lastCpu = 0;

  /**
   * @param windowUs how long to poll after each send, in microseconds; 0 turns polling off
   * @param wanted whether anything still needs polling (e.g. transfers are active)
   * @param cpuMicros CPU time this process has used, in microseconds (tests pass their own clock)
   */
  constructor(
    private readonly windowUs: number,
    private readonly wanted: () => boolean,
    private readonly cpuMicros: () => number = processCpuMicros,
  ) {}

  /** Whether the event loop is being kept turning now. */
  get isPolling(): boolean {
    return this.polling;
  }

  /** Whether the next sends will not poll (after too many windows in a row went unanswered). */
  get isPaused(): boolean {
    return this.paused > 0;
  }

  /** Something was sent that an answer will follow: poll for one window. */
  expectAnswer(): void {
    if (this.windowUs <= 0) return;
    if (this.paused > 0) {
      this.paused--;
      return;
    }
    const now = performance.now();
    if (this.polling && this.lastWall > 0) {
      // Still polling since the previous send: did this process have the CPU meanwhile?
      const cpu = this.cpuMicros();
      const wallUs = (now - this.lastWall) * 1000;
      const share = wallUs > 0 ? (cpu - this.lastCpu) / wallUs : 1;
      this.lastWall = now;
      this.lastCpu = cpu;
      if (share < SHARED_CPU_RATIO) {
        this.pause();
        return;
      }
    } else {
      this.lastWall = now;
      this.lastCpu = this.cpuMicros();
    }
    this.until = now + this.windowUs / 1000;
    this.heardDatagram = false;
    if (!this.polling) {
      this.polling = true;
      setImmediate(this.turn);
    }
  }

  /** A datagram arrived: when polling, the window paid off. */
  heard(): void {
    if (this.polling) this.heardDatagram = true;
  }

  private readonly turn = (): void => {
    if (this.wanted() && performance.now() < this.until) {
      setImmediate(this.turn);
      return;
    }
    this.polling = false;
    this.lastWall = 0;
    if (this.heardDatagram) {
      this.misses = 0;
      return;
    }
    if (++this.misses >= MISSES_BEFORE_PAUSE) this.pause();
  };

  private pause(): void {
    this.misses = 0;
    this.paused = PAUSE_WINDOWS;
    this.until = 0; // a window still open ends at its next turn
  }
}

function processCpuMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}
