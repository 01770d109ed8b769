/**
 * PNG snapshots of the sent and the displayed picture (demo, selftest): the latest of
 * each kept from the plan's snapshot appsinks, written on the supervisor's request. The
 * standby screen has only the displayed picture (`receive`: what the TV shows).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { GstPipeline } from './gst.js';
import type { SessionScope } from './scope.js';

export class Snapshots {
  private png: { send: Buffer | null; receive: Buffer | null } = { send: null, receive: null };

  constructor(
    private readonly dir: string | undefined,
    private readonly scope: SessionScope,
  ) {}

  /** After play: keeps pulling each snapshot appsink's latest PNG. */
  wire(p: GstPipeline, plan: { names?: { snapshotSend?: string | null; snapshotReceive?: string | null } }): void {
    for (const side of ['send', 'receive'] as const) {
      const name = side === 'send' ? plan.names?.snapshotSend : plan.names?.snapshotReceive;
      const sink = name ? p.findChild(name) : undefined;
      if (!sink?.pull) continue;
      const pull = sink.pull.bind(sink);
      const onPng = (buf: Buffer | null): void => {
        if (this.scope.stopping) return;
        if (!buf) return this.scope.retryPull(() => pull(onPng));
        this.png[side] = Buffer.from(buf);
        pull(onPng);
      };
      pull(onPng);
    }
  }

  /** Writes `sent.png` and `received.png` (those there are) and reports each. */
  async write(): Promise<void> {
    if (!this.dir) return;
    for (const side of ['send', 'receive'] as const) {
      const png = this.png[side];
      if (!png) continue;
      const file = path.join(this.dir, `${side === 'send' ? 'sent' : 'received'}.png`);
      await writeFile(file, png);
      this.scope.send({ type: 'snapshot', side, path: file, bytes: png.length });
    }
  }
}
