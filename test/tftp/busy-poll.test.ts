// BusyPoll on its own: how long it keeps the event loop turning and when it
// backs off. No timing is asserted: the windows are waited out, then the
// state they left is checked.
import { describe, expect, it } from "vitest";
import { BusyPoll } from "../../reconciler/services/tftp/busy-poll.js";

/** Resolves once the poll has stopped (checked on timers, which still run while it polls). */
async function stopped(poll: BusyPoll): Promise<void> {
  for (let i = 0; i < 1000 && poll.isPolling; i++) await new Promise((r) => setTimeout(r, 2));
  expect(poll.isPolling).toBe(false);
}

describe("BusyPoll", () => {
  it("keeps the event loop turning for the window, asking each turn whether polling is still wanted", async () => {
    let turns = 0;
    const poll = new BusyPoll(20_000, () => {
      turns++;
      return true;
    });
    poll.expectAnswer();
    expect(poll.isPolling).toBe(true);
    // Timers still fire while it polls: the loop is turning, not blocked.
    await new Promise((r) => setTimeout(r, 5));
    expect(poll.isPolling).toBe(true);
    await stopped(poll);
    expect(turns).toBeGreaterThan(10);
  });

  it("stops at the next turn when nothing needs polling any more", async () => {
    let wanted = true;
    const poll = new BusyPoll(10_000_000, () => wanted);
    poll.expectAnswer();
    wanted = false;
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    expect(poll.isPolling).toBe(false);
  });

  it("pauses for 32 sends after 4 windows in a row with nothing heard, then polls again", async () => {
    const poll = new BusyPoll(80, () => true);
    for (let i = 0; i < 4; i++) {
      expect(poll.isPaused).toBe(false);
      poll.expectAnswer();
      expect(poll.isPolling).toBe(true);
      await stopped(poll);
    }
    expect(poll.isPaused).toBe(true);
    for (let i = 0; i < 32; i++) {
      poll.expectAnswer();
      expect(poll.isPolling).toBe(false);
    }
    expect(poll.isPaused).toBe(false);
    poll.expectAnswer();
    expect(poll.isPolling).toBe(true);
    await stopped(poll);
  });

  it("does not pause while answers keep arriving inside the window", async () => {
    const poll = new BusyPoll(80, () => true);
    for (let i = 0; i < 12; i++) {
      poll.expectAnswer();
      // Three unanswered windows, then an answer: the count starts again.
      if (i % 4 === 3) poll.heard();
      await stopped(poll);
      expect(poll.isPaused).toBe(false);
    }
  });

  it("pauses when the process did not get most of the CPU since the previous send (another task wanted it)", async () => {
    let cpu = 0; // a CPU clock that stands still: the process was kept off the CPU
    const poll = new BusyPoll(50_000, () => true, () => cpu);
    poll.expectAnswer();
    await new Promise((r) => setTimeout(r, 3));
    poll.heard();
    poll.expectAnswer(); // the next send, 3 ms later, with no CPU used
    expect(poll.isPaused).toBe(true);
    await stopped(poll);
    cpu = 1; // unused from here on: paused sends do not read it
    for (let i = 0; i < 32; i++) poll.expectAnswer();
    expect(poll.isPaused).toBe(false);
  });

  it("keeps polling when the process had the CPU since the previous send", async () => {
    const poll = new BusyPoll(50_000, () => true, () => performance.now() * 1000); // CPU advances with the wall clock
    for (let i = 0; i < 3; i++) {
      poll.expectAnswer();
      await new Promise((r) => setTimeout(r, 3));
      poll.heard();
    }
    poll.expectAnswer();
    expect(poll.isPaused).toBe(false);
    expect(poll.isPolling).toBe(true);
    poll.heard();
  });

  it("does nothing with a width of 0", () => {
    let asked = 0;
    const poll = new BusyPoll(0, () => {
      asked++;
      return true;
    });
    poll.expectAnswer();
    poll.heard();
    expect(poll.isPolling).toBe(false);
    expect(poll.isPaused).toBe(false);
    expect(asked).toBe(0);
  });

  it("ignores a datagram heard while not polling", async () => {
    const poll = new BusyPoll(80, () => true);
    for (let i = 0; i < 4; i++) {
      poll.heard(); // before the window opens: does not count as an answer
      poll.expectAnswer();
      await stopped(poll);
    }
    expect(poll.isPaused).toBe(true);
  });
});
