/**
 * A TCP relay between a box and its broker (node:net), for network faults this kernel's
 * missing netem cannot make: every client connection is paired with one to the target and
 * bytes are copied both ways, until the test says otherwise.
 *
 * - `blackhole`: the link is down without anyone saying so. Bytes read from either side
 *   are discarded, never forwarded nor kept (a later `pass` replays nothing), and nothing
 *   is closed: no FIN, no RST, a half-close (`end`) is neither passed on nor answered (a
 *   client that ends its side waits for the peer's FIN forever, as behind a dead path). The relay's
 *   kernel still acknowledges what it reads, so TCP itself never times out: only the
 *   application's own keepalive can notice (MQTT's PINGREQ/PINGRESP).
 *   A pair blackholed once stays so for its life, also after `pass` (a dead path does not
 *   come back for a connection the peers have given up on); each side of it is closed
 *   when that side closes, nothing crossing to the other.
 * - Connections accepted during a blackhole are accepted and swallowed (the box's TCP
 *   handshake completes, as when a path dies after the SYN-ACK or a middlebox answers):
 *   no connection to the target is opened for them, and they stay dead after `pass`.
 * - `pass` again: new connections are forwarded.
 * - `resetAll()`: every open connection reset on both sides (RST).
 */
import net, { type Socket } from 'node:net';

export type TcpRelayMode = 'pass' | 'blackhole';

interface Pair {
  client: Socket;
  /** null for a connection accepted during a blackhole (never connected to the target). */
  upstream: Socket | null;
  dead: boolean;
  /** The client sent its FIN (or closed): it has given up on this connection. */
  clientDone: boolean;
}

export class TcpRelay {
  private current: TcpRelayMode = 'pass';
  private readonly pairs = new Set<Pair>();
  private accepted = 0;
  private bytesUp = 0;
  private bytesDown = 0;
  private bytesDropped = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  /** Listens on 127.0.0.1, an ephemeral port. */
  static async start(target: { host: string; port: number }): Promise<TcpRelay> {
    const server = net.createServer({ allowHalfOpen: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const relay = new TcpRelay(server, (server.address() as net.AddressInfo).port, target);
    server.on('connection', (s) => relay.accept(s));
    return relay;
  }

  get mode(): TcpRelayMode {
    return this.current;
  }

  /**
   * 'blackhole': every byte both ways on existing AND new connections vanishes; nothing
   * is closed (half-open / link down). 'pass': forward again (connections that were
   * blackholed stay blackholed-and-open until the peer gives up; new ones pass).
   */
  setMode(m: TcpRelayMode): void {
    this.current = m;
    if (m === 'blackhole') for (const p of this.pairs) p.dead = true;
  }

  /** RST every open connection both sides (socket.resetAndDestroy()). */
  resetAll(): void {
    for (const p of [...this.pairs]) {
      this.pairs.delete(p);
      for (const s of [p.client, p.upstream]) if (s && !s.destroyed) s.resetAndDestroy();
    }
  }

  /**
   * Open client connections now (the client has sent neither FIN nor RST: a dead pair's
   * relay side stays half-open, unanswered), and accepted in total; bytes forwarded each
   * way, and discarded in a blackhole.
   */
  stats(): { open: number; accepted: number; bytesUp: number; bytesDown: number; bytesDropped: number } {
    const open = [...this.pairs].filter((p) => !p.clientDone && !p.client.destroyed).length;
    return { open, accepted: this.accepted, bytesUp: this.bytesUp, bytesDown: this.bytesDown, bytesDropped: this.bytesDropped };
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const p of this.pairs) for (const s of [p.client, p.upstream]) s?.destroy();
    this.pairs.clear();
    await closed;
  }

  private accept(client: Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    const dead = this.current === 'blackhole';
    const upstream = dead ? null : net.connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    const p: Pair = { client, upstream, dead, clientDone: false };
    this.pairs.add(p);
    // A side that fails or closes is closed; the other follows only while the pair passes.
    client.on('error', () => this.closePair(p, 'client'));
    client.on('end', () => {
      p.clientDone = true;
      if (!p.dead) upstream?.end();
    });
    client.on('close', () => this.closePair(p, 'client'));
    this.copy(p, client, upstream, 'up');
    if (!upstream) return;
    upstream.on('error', () => this.closePair(p, 'upstream'));
    upstream.on('end', () => (p.dead ? undefined : client.end()));
    upstream.on('close', () => this.closePair(p, 'upstream'));
    this.copy(p, upstream, client, 'down');
  }

  /** Copies `from` → `to` while the pair passes (with backpressure); discards once it is dead. */
  private copy(p: Pair, from: Socket, to: Socket | null, dir: 'up' | 'down'): void {
    from.on('data', (d: Buffer) => {
      if (p.dead || !to || to.destroyed) {
        this.bytesDropped += d.length;
        return;
      }
      if (dir === 'up') this.bytesUp += d.length;
      else this.bytesDown += d.length;
      if (!to.write(d)) {
        from.pause();
        to.once('drain', () => from.resume());
      }
    });
  }

  /** One side closed or failed: destroy it; a passing pair's other side too (a blackholed one keeps it open). */
  private closePair(p: Pair, side: 'client' | 'upstream'): void {
    const self = side === 'client' ? p.client : p.upstream;
    const other = side === 'client' ? p.upstream : p.client;
    self?.destroy();
    if (!p.dead) other?.destroy();
    if (p.client.destroyed && (!p.upstream || p.upstream.destroyed)) this.pairs.delete(p);
  }
}
