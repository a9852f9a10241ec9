// A minimal hand-driven TFTP peer on node:dgram, for protocol behaviour the
// stock clients cannot provoke (foreign TIDs, repeated ACKs, aborts after OACK).
import dgram from "node:dgram";
import { decodePacket, type TftpPacket } from "../../reconciler/services/tftp/packet.js";

export interface Received {
  packet: TftpPacket;
  from: { address: string; port: number };
}

export class RawPeer {
  readonly socket = dgram.createSocket("udp4");
  private readonly queue: Received[] = [];
  private waiter: (() => void) | undefined;

  static async open(): Promise<RawPeer> {
    const p = new RawPeer();
    await new Promise<void>((r) => p.socket.bind(0, "127.0.0.1", () => r()));
    p.socket.on("message", (msg, rinfo) => {
      let packet: TftpPacket;
      try {
        packet = decodePacket(msg);
      } catch {
        return;
      }
      p.queue.push({ packet, from: { address: rinfo.address, port: rinfo.port } });
      p.waiter?.();
    });
    return p;
  }

  private readonly pending = new Set<Promise<void>>();

  /** Sends a datagram; close() waits until it has left. */
  send(buf: Buffer, port: number, address = "127.0.0.1"): void {
    const sent = new Promise<void>((resolve) => this.socket.send(buf, port, address, () => resolve()));
    this.pending.add(sent);
    void sent.then(() => this.pending.delete(sent));
  }

  /** Next packet, or undefined when nothing arrives within ms. */
  async next(ms = 3000): Promise<Received | undefined> {
    const deadline = Date.now() + ms;
    while (this.queue.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift();
  }

  /** Everything that arrives within ms. */
  async drain(ms: number): Promise<Received[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.queue.splice(0);
  }

  async close(): Promise<void> {
    await Promise.all(this.pending);
    await new Promise<void>((resolve) => this.socket.close(() => resolve()));
  }
}
