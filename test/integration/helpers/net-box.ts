/**
 * A box in a meeting over an impaired link, for the network-fault tests (issue [proof]):
 * a real Mosquitto, the real agent (TestBox), a LocalHub that audits every TS packet it
 * receives, and a BottleneckRelay on each SRT connection (the box's send leg to the hub's
 * ingest, its receive leg to the hub's program) whose impairments (impair.ts) the test
 * sets. The hub's audit counts the box's frames at the hub exactly, by PTS: frames that
 * arrived whole, broken ones, and holes — what a viewer at the hub gets.
 */
import type { TsAuditSnapshot } from '../../../gst-pipelines/mpegts/index.js';
import type { LocalHub } from '../../../gst-pipelines/hub/local-hub.js';
import type { Capabilities } from '../../../gst-pipelines/types.js';
import { BottleneckRelay } from './bottleneck.js';
import type { ImpairOptions } from './impair.js';
import { HubClient, TestBox, type BoxOptions } from './hub-client.js';
import { MediaLog, SMALL, capabilities, hubSpec, startHub, type Resources, type Sample } from './media.js';
import { Mosquitto } from './mosquitto.js';

/** Far above what a SMALL session sends: the relays impair, they do not narrow. */
const UNLIMITED_KBPS = 1_000_000;

export interface NetBox {
  broker: Mosquitto;
  hub: HubClient;
  srtHub: LocalHub;
  box: TestBox;
  /** box → hub ingest (the box's video and audio), and box → hub program (the hub's program to the box). */
  sendLink: BottleneckRelay;
  receiveLink: BottleneckRelay;
  hubLog: MediaLog;
  boxLog: MediaLog;
}

export interface NetBoxOptions {
  deviceId: string;
  groupId: string;
  srtLatencyMs: number;
  mqtt?: BoxOptions['mqtt'];
  /**
   * Impairs the box's uplink from the start (the box joins over that link): every packet the
   * box sends on either SRT connection (its media; its ACKs and NAKs for the program), as
   * netem on the box's interface impairs what leaves it. `impairBothWays`: the hub's
   * packets to the box too.
   */
  impair?: ImpairOptions;
  impairBothWays?: boolean;
  /** Puts something in front of the broker (a TcpRelay) and gives the box its url; default the broker itself. */
  mqttVia?: (broker: Mosquitto) => Promise<string>;
}

/** Starts broker, hub, relays and box; the box joins the meeting and the hub decodes it. */
export async function startNetBox(res: Resources, o: NetBoxOptions): Promise<NetBox> {
  const caps: Capabilities = await capabilities();
  const broker = await Mosquitto.start({ devices: { [o.deviceId]: o.groupId } });
  res.add('mosquitto', () => broker.stop());
  const hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  const srtHub = await startHub(res, { video: SMALL, latencyMs: o.srtLatencyMs, audit: true, speakerLevelMs: 100 });
  const relay = async (port: number): Promise<BottleneckRelay> => {
    const impair = o.impair ? { forward: { ...o.impair, seed: port }, ...(o.impairBothWays ? { reverse: { ...o.impair, seed: port + 1 } } : {}) } : undefined;
    const r = await BottleneckRelay.start({ target: { host: '127.0.0.1', port }, capacityKbps: UNLIMITED_KBPS, queueBytes: 16 * 1024 * 1024, ...(impair ? { impair } : {}) });
    res.add(`relay → ${port}`, () => r.close());
    return r;
  };
  const sendLink = await relay(srtHub.ingestPort);
  const receiveLink = await relay(srtHub.programPort);
  const mqttUrl = o.mqttVia ? await o.mqttVia(broker) : undefined;
  const box = await TestBox.start({ deviceId: o.deviceId, groupId: o.groupId, broker, caps, ...(o.mqtt ? { mqtt: o.mqtt } : {}), ...(mqttUrl ? { via: { mqttUrl } } : {}) });
  res.add(o.deviceId, () => box.dispose());
  await hub.waitState(o.deviceId, (s) => s.state === 'idle', 20_000);
  const hubLog = new MediaLog(srtHub.supervisor);
  const boxLog = new MediaLog(box.agent.media);
  const spec = hubSpec(srtHub, SMALL, { meetingId: `net-${o.deviceId}`, srt: { latencyMs: o.srtLatencyMs } });
  spec.send = { ...spec.send, url: `srt://127.0.0.1:${sendLink.port}` };
  spec.receive = { ...spec.receive, url: `srt://127.0.0.1:${receiveLink.port}` };
  const id = await hub.send({ device: o.deviceId }, 'join', spec as unknown as Record<string, unknown>);
  const reply = await hub.reply(id, 20_000, o.deviceId);
  if (!reply.ok) throw new Error(`join refused: ${JSON.stringify(reply)}`);
  await hub.waitState(o.deviceId, (s) => s.state === 'in_meeting', 30_000);
  await hubLog.nextSample((s) => (s.stats.receive.audit?.videoFrames ?? 0) > 0 && (s.stats.receive.audit?.audioFrames ?? 0) > 0, 30_000, "the hub to receive the box's video and audio");
  await boxLog.nextSample((s) => s.stats.receive.frames > 0, 30_000, "the box to decode the hub's program");
  return { broker, hub, srtHub, box, sendLink, receiveLink, hubLog, boxLog };
}

export interface HubAudit {
  /** Video frames (access units) received whole; broken; missing as PTS holes, in frames. */
  videoWhole: number;
  videoBroken: number;
  videoMissingFrames: number;
  /** Whole ÷ (whole + broken + missing), percent. */
  videoPct: number;
  /** (Whole + broken) ÷ all, percent: frames that reached the hub, a broken one with a packet lost that the decoder conceals. */
  videoArrivedPct: number;
  /** Longest run of video missing by PTS (a hole), and the longest wall-clock wait between two video frames' arrivals. */
  videoLongestHoleMs: number;
  videoArrivalMaxGapMs: number;
  audioFrames: number;
  audioMissingMs: number;
  audioBroken: number;
  audioLongestHoleMs: number;
  audioArrivalMaxGapMs: number;
  audioPtsBackwards: number;
  reports: number;
}

/** The hub's audit of the box's stream over the samples taken in (from, to] (test clock, ms). */
export function hubAudit(samples: Sample[], from: number, to: number): HubAudit {
  const audits: TsAuditSnapshot[] = samples.filter((s) => s.at > from && s.at <= to && s.stats.receive.audit).map((s) => s.stats.receive.audit!);
  const sum = (f: (a: TsAuditSnapshot) => number): number => audits.reduce((t, a) => t + f(a), 0);
  const max = (f: (a: TsAuditSnapshot) => number): number => audits.reduce((m, a) => Math.max(m, f(a)), 0);
  const frameMs = audits.find((a) => a.videoFrameMs)?.videoFrameMs ?? 1000 / SMALL.fps;
  const videoWhole = sum((a) => a.videoFrames);
  const videoBroken = sum((a) => a.videoBroken);
  // MissingMs counts holes plus one frame per broken PES.
  const videoMissingFrames = Math.max(0, Math.round(sum((a) => a.videoMissingMs) / frameMs) - videoBroken);
  const expected = videoWhole + videoBroken + videoMissingFrames;
  return {
    videoWhole,
    videoBroken,
    videoMissingFrames,
    videoPct: expected > 0 ? Math.round((1000 * videoWhole) / expected) / 10 : 0,
    videoArrivedPct: expected > 0 ? Math.round((1000 * (videoWhole + videoBroken)) / expected) / 10 : 0,
    videoLongestHoleMs: max((a) => a.videoLongestGapMs),
    videoArrivalMaxGapMs: max((a) => a.videoArrivalMaxGapMs),
    audioFrames: sum((a) => a.audioFrames),
    audioMissingMs: Math.round(sum((a) => a.audioMissingMs)),
    audioBroken: sum((a) => a.audioBroken),
    audioLongestHoleMs: max((a) => a.audioLongestGapMs),
    audioArrivalMaxGapMs: max((a) => a.audioArrivalMaxGapMs),
    audioPtsBackwards: sum((a) => a.audioPtsBackwards),
    reports: audits.length,
  };
}
