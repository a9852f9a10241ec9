// Plays a daemon that powers one qemu VM on and then exits (or crashes):
//   node --import tsx test/power/power-on-and-exit.ts STATE_DIR NETNS MACHINE MAC
import { createPowerDrivers } from "../../reconciler/power/index.js";

const [stateDir, netns, machine, mac] = process.argv.slice(2);
const quiet = () => undefined;
const drivers = createPowerDrivers({ stateDir, netns, logger: { info: quiet, warn: quiet, error: quiet } });
await drivers.get("qemu")!.powerOn({ machine, macs: [mac], spec: { driver: "qemu", bridge: "br0", memoryMB: 128 } });
process.exit(0);
