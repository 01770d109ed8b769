/**
 * A district hub on this machine, for the demo, the tests and the benchmarks: an SRT
 * listener that receives a box's stream (decoded, counted, snapshotted) and an SRT
 * listener that serves a program (test picture + tone). It is an ordinary media
 * session in listener mode, run by the same supervised worker as the box's own media.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { planSession } from '../plan/index.js';
import { MediaSupervisor } from '../supervisor/index.js';
import { forkSpawner } from '../supervisor/index.js';
import type { Logger } from '../../lib/index.js';
import type { Capabilities, MediaJoinSpec } from '../types.js';

export interface LocalHubOptions {
  caps: Capabilities;
  host?: string;
  ingestPort?: number;
  programPort?: number;
  passphrase?: string;
  latencyMs?: number;
  snapshotDir?: string;
  logger?: Logger;
  video?: { width: number; height: number; fps: number; bitrateKbps: number };
  title?: string;
  /** Program-audio level interval at the hub (ms): short to see audio breaks (adapt tests). */
  speakerLevelMs?: number;
  /** Audit every received TS packet (WorkerStats.receive.audit): which Opus and video frames arrived whole. */
  audit?: boolean;
}

/**
 * A port free for both TCP and UDP on the host (SRT uses UDP), for a listener that binds
 * it next. Chosen outside the kernel's ephemeral range: a port from that range can be
 * given to anyone's bind(0) — every SRT caller's socket — between this probe and the
 * listener's bind (seen once in a full test run); one outside it only to another explicit
 * choice. Falls back to a kernel-chosen port when there is no room outside the range.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const range = outsideEphemeral();
  for (let i = 0; range && i < 50; i++) {
    const port = range[0] + Math.floor(Math.random() * (range[1] - range[0]));
    if ((await tcpFree(port, host)) && (await udpFree(port, host))) return port;
  }
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, host, () => {
        const addr = srv.address();
        srv.close(() => resolve(typeof addr === 'object' && addr ? addr.port : 0));
      });
    });
    if (await udpFree(port, host)) return port;
  }
}

/** Ports freePort needs outside the ephemeral range to pick from there. */
const MIN_OUTSIDE = 500;

/**
 * [low, high): where freePort picks, outside /proc's ip_local_port_range (Linux default
 * 32768–60999): up to 12 768 unprivileged ports below it, else those above it; null when
 * neither side has MIN_OUTSIDE ports (e.g. a range of 1024–65535).
 */
export function outsideEphemeral(rangeFile = '/proc/sys/net/ipv4/ip_local_port_range'): [number, number] | null {
  let [first, last] = [32768, 60999];
  try {
    const [a, b] = readFileSync(rangeFile, 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(a) && Number.isInteger(b) && a! > 0 && b! >= a!) [first, last] = [a!, b!];
  } catch {
    // not Linux, or no /proc: the Linux default
  }
  const below: [number, number] = [Math.max(1024, first - 12_768), first];
  const above: [number, number] = [last + 1, 65536];
  if (below[1] - below[0] >= MIN_OUTSIDE) return below;
  if (above[1] - above[0] >= MIN_OUTSIDE) return above;
  return null;
}

async function tcpFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

async function udpFree(port: number, host: string): Promise<boolean> {
  const { createSocket } = await import('node:dgram');
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => resolve(false));
    s.bind(port, host, () => s.close(() => resolve(true)));
  });
}

export class LocalHub {
  readonly supervisor: MediaSupervisor;
  private constructor(
    readonly host: string,
    readonly ingestPort: number,
    readonly programPort: number,
    private readonly spec: MediaJoinSpec,
    private readonly opts: LocalHubOptions,
  ) {
    this.supervisor = new MediaSupervisor({
      spawner: forkSpawner({ stderr: 'ignore' }),
      ...(opts.logger ? { logger: opts.logger.child({ module: 'hub' }) } : {}),
      ...(opts.snapshotDir ? { snapshotDir: opts.snapshotDir } : {}),
      // A hub waits for boxes for as long as it takes: no stall rebuilds.
      stallMs: 1e9,
      backoffBaseMs: 100,
      backoffCapMs: 1000,
      statsPeriodMs: 1000,
    });
  }

  static async create(opts: LocalHubOptions): Promise<LocalHub> {
    const host = opts.host ?? '127.0.0.1';
    const ingestPort = opts.ingestPort ?? (await freePort(host));
    let programPort = opts.programPort ?? (await freePort(host));
    while (programPort === ingestPort) programPort = await freePort(host);
    const spec: MediaJoinSpec = {
      meetingId: 'local-hub',
      send: { url: `srt://${host}:${programPort}`, video: opts.video ?? { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }, audio: { bitrateKbps: 32 } },
      receive: { url: `srt://${host}:${ingestPort}` },
      srt: { latencyMs: opts.latencyMs ?? 120, ...(opts.passphrase ? { passphrase: opts.passphrase, pbkeylen: 16 as const } : {}) },
    };
    return new LocalHub(host, ingestPort, programPort, spec, opts);
  }

  /** The join spec a box uses to reach this hub (caller side). */
  joinSpec(meetingId = 'loopback', extra: Partial<MediaJoinSpec> = {}): MediaJoinSpec {
    return {
      meetingId,
      title: 'Loopback meeting',
      send: { url: `srt://${this.host}:${this.ingestPort}`, streamId: `publish:${meetingId}/box`, video: { width: 1280, height: 720, fps: 30, bitrateKbps: 1500 }, audio: { bitrateKbps: 32 } },
      receive: { url: `srt://${this.host}:${this.programPort}`, streamId: `read:${meetingId}/program` },
      srt: { latencyMs: this.spec.srt?.latencyMs ?? 120, ...(this.opts.passphrase ? { passphrase: this.opts.passphrase, pbkeylen: 16 as const } : {}) },
      ...extra,
    };
  }

  async start(): Promise<void> {
    const plan = planSession(
      this.spec,
      this.opts.caps,
      {
        source: 'test',
        volume: 1,
        micMuted: false,
        aec: false,
        statsPeriodS: 1,
        // Not the boxes' 440 Hz: their echo cancellers must not take their mic for our echo.
        testToneHz: 1000,
        standbyTitle: this.opts.title ?? 'District hub — program',
        ...(this.opts.snapshotDir ? { snapshotDir: this.opts.snapshotDir } : {}),
      },
      { srtMode: 'listener', ...(this.opts.speakerLevelMs ? { speakerLevelMs: this.opts.speakerLevelMs } : {}), ...(this.opts.audit ? { auditReceive: true } : {}) },
    );
    await this.supervisor.start(plan, this.opts.passphrase ? { passphrase: this.opts.passphrase } : {});
  }

  async stop(): Promise<void> {
    await this.supervisor.close();
  }
}
