// A raw DHCP client for tests, run inside a client namespace: sends the
// given packets (hex) from UDP port --port (default 68) to --to ADDR:PORT
// and prints every datagram it receives within --wait ms as a JSON line
// {"from","port","hex"}. Plain JavaScript so that it starts in ~50 ms.
//   node probe.mjs --to 255.255.255.255:67 [--port 68] [--wait 1500] [--gap 0]
//                  [--garbage N] [--expect N] HEX...
// --expect N stops as soon as N replies have arrived.
// --garbage N first sends N malformed datagrams: random bytes, truncated and
// bit-flipped copies of the first HEX packet.
import dgram from "node:dgram";

const args = process.argv.slice(2);
let to = "255.255.255.255:67";
let port = 68;
let wait = 1500;
let gap = 0;
let garbage = 0;
let expect = 0;
let received = 0;
const packets = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === "--to") to = args[++i];
  else if (a === "--port") port = Number(args[++i]);
  else if (a === "--wait") wait = Number(args[++i]);
  else if (a === "--gap") gap = Number(args[++i]);
  else if (a === "--garbage") garbage = Number(args[++i]);
  else if (a === "--expect") expect = Number(args[++i]);
  else packets.push(Buffer.from(a, "hex"));
}
const [host, dport] = to.split(":");
const sock = dgram.createSocket({ type: "udp4", reuseAddr: true });
sock.on("message", (msg, rinfo) => {
  process.stdout.write(JSON.stringify({ from: rinfo.address, port: rinfo.port, hex: msg.toString("hex") }) + "\n");
  if (expect > 0 && ++received >= expect) sock.close();
});
sock.on("error", (err) => {
  process.stderr.write(`probe: ${err.message}\n`);
});
sock.bind(port, "0.0.0.0", async () => {
  sock.setBroadcast(true);
  const junk = [];
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < garbage; i++) {
    const base = packets[0] ?? Buffer.alloc(300);
    let b;
    if (i % 3 === 0) b = Buffer.from(Array.from({ length: rnd() % 600 }, () => rnd() & 255));
    else if (i % 3 === 1) b = Buffer.from(base.subarray(0, rnd() % base.length));
    else {
      b = Buffer.from(base);
      for (let j = 0; j < 6; j++) b[236 + (rnd() % (b.length - 236))] = rnd() & 255;
    }
    junk.push(b);
  }
  for (const p of [...junk, ...packets]) {
    await new Promise((r) => sock.send(p, Number(dport), host, (err) => {
      if (err) process.stderr.write(`probe send: ${err.message}\n`);
      r();
    }));
    if (gap) await new Promise((r) => setTimeout(r, gap));
  }
  setTimeout(() => {
    try {
      sock.close();
    } catch {
      /* closed early by --expect */
    }
  }, wait).unref();
});
