/**
 * Chromium's WebRTC loopback, the DIY Pi kiosk's media path, for the bench's side-by-side
 * comparison (compare.ts): Debian's `chromium`, headless, its fake camera fed a 720p30
 * y4m clip (the same frames as ours: compare.ts makes it), one page with two
 * RTCPeerConnections (getUserMedia → pc1 → pc2 → a playing <video>). Measured: the CPU of
 * the whole Chromium process tree (/proc utime+stime) over a window, and the megapixels
 * its encoder and decoder handled in it (getStats: frames × frame size, both ends).
 */
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { childPids, MeasurementError, monoMs, procCpuSeconds, round1, round3, sleep } from './machine.js';

export const CHROMIUM = '/usr/bin/chromium';

/** Every process below `root` (children, grandchildren, …). */
export function descendants(root: number): number[] {
  const out: number[] = [];
  const todo = [root];
  while (todo.length > 0 && out.length < 1000) {
    for (const c of childPids(todo.pop()!)) {
      out.push(c);
      todo.push(c);
    }
  }
  return out;
}

export interface ChromiumWindow {
  windowSeconds: number;
  cpuSeconds: number;
  processes: number;
  codec: string;
  framesEncoded: number;
  framesDecoded: number;
  encodedSize: string;
  decodedSize: string;
  /** The fake camera's size, and why the encoder sent less (qualityLimitationReason: none, cpu, bandwidth). */
  captureSize: string;
  qualityLimitation: string;
  /** Megapixels through the encoder plus megapixels through the decoder, over the window. */
  megapixels: number;
  decodedFps: number;
  /** CPU milliseconds per megapixel coded (encoder + decoder). */
  cpuMsPerMpx: number;
}

interface RtcSnapshot {
  codec: string;
  framesEncoded: number;
  framesDecoded: number;
  encW: number;
  encH: number;
  decW: number;
  decH: number;
  limitation: string;
  captureSize: string;
}

const PAGE = `<!doctype html><html><body><video id="v" autoplay muted playsinline></video><script>
window.startLoopback = async () => {
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 1280, height: 720, frameRate: 30 }, audio: false });
  const pc1 = new RTCPeerConnection(), pc2 = new RTCPeerConnection();
  pc1.onicecandidate = (e) => e.candidate && pc2.addIceCandidate(e.candidate);
  pc2.onicecandidate = (e) => e.candidate && pc1.addIceCandidate(e.candidate);
  pc2.ontrack = (e) => { document.getElementById('v').srcObject = e.streams[0]; };
  const track = stream.getVideoTracks()[0];
  // The box's bitrate cap (1.5 Mbit/s); Chromium's own degradation preference (balanced,
  // a camera's default: it scales the size down rather than drop frames), as a kiosk runs.
  const sender = pc1.addTrack(track, stream);
  const p = sender.getParameters();
  if (p.encodings && p.encodings[0]) p.encodings[0].maxBitrate = 1500000;
  await sender.setParameters(p);
  window.captureSize = track.getSettings().width + 'x' + track.getSettings().height;
  const offer = await pc1.createOffer(); await pc1.setLocalDescription(offer); await pc2.setRemoteDescription(offer);
  const answer = await pc2.createAnswer(); await pc2.setLocalDescription(answer); await pc1.setRemoteDescription(answer);
  window.pcs = [pc1, pc2];
};
window.snapshot = async () => {
  const [pc1, pc2] = window.pcs;
  const out = { codec: '', framesEncoded: 0, framesDecoded: 0, encW: 0, encH: 0, decW: 0, decH: 0, limitation: '', captureSize: window.captureSize };
  const s1 = await pc1.getStats(), s2 = await pc2.getStats();
  s1.forEach((r) => { if (r.type === 'outbound-rtp' && r.kind === 'video') { out.framesEncoded = r.framesEncoded || 0; out.encW = r.frameWidth || 0; out.encH = r.frameHeight || 0; out.limitation = r.qualityLimitationReason || ''; } });
  s2.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      out.framesDecoded = r.framesDecoded || 0; out.decW = r.frameWidth || 0; out.decH = r.frameHeight || 0;
      const c = s2.get(r.codecId); if (c) out.codec = c.mimeType;
    }
  });
  return out;
};
</script></body></html>`;

/** A running loopback page: `measure` a window, then `close`. */
export class ChromiumLoopback {
  private constructor(
    private readonly browser: Browser,
    private readonly page: Page,
    private readonly server: Server,
  ) {}

  static async start(y4m: string, log: (l: string) => void): Promise<ChromiumLoopback> {
    if (!existsSync(CHROMIUM)) throw new MeasurementError(`compare chromium: ${CHROMIUM} not found (Debian package chromium)`);
    // getUserMedia needs a secure context: the page comes from a loopback HTTP server.
    const server = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--headless=new', '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${y4m}`, '--use-fake-ui-for-media-stream', '--autoplay-policy=no-user-gesture-required'],
    });
    try {
      const page = await browser.newPage();
      await page.goto(url);
      await page.evaluate('window.startLoopback()');
      log(`compare: chromium ${await browser.version()} loopback started`);
      return new ChromiumLoopback(browser, page, server);
    } catch (e) {
      await browser.close();
      server.close();
      throw e;
    }
  }

  get pid(): number | undefined {
    return this.browser.process()?.pid;
  }

  private snapshot(): Promise<RtcSnapshot> {
    return this.page.evaluate('window.snapshot()') as Promise<RtcSnapshot>;
  }

  /** CPU of the browser's process tree and the frames it coded over `seconds`. */
  async measure(seconds: number): Promise<ChromiumWindow> {
    const root = this.pid;
    if (root === undefined) throw new MeasurementError('compare chromium: no browser process');
    const cpuOf = (pids: number[]): Map<number, number> => new Map(pids.flatMap((p) => (procCpuSeconds(p) === null ? [] : [[p, procCpuSeconds(p)!] as [number, number]])));
    const s0 = await this.snapshot();
    const c0 = cpuOf([root, ...descendants(root)]);
    const t0 = monoMs();
    await sleep(seconds * 1000);
    const c1 = cpuOf([root, ...descendants(root)]);
    const windowSeconds = (monoMs() - t0) / 1000;
    const s1 = await this.snapshot();
    let cpu = 0;
    // A renderer or utility process started inside the window counts from zero.
    for (const [pid, c] of c1) cpu += c - (c0.get(pid) ?? 0);
    const enc = s1.framesEncoded - s0.framesEncoded;
    const dec = s1.framesDecoded - s0.framesDecoded;
    if (dec < windowSeconds * 5) throw new MeasurementError(`compare chromium: ${dec} frames decoded in ${round1(windowSeconds)} s; the loopback did not run (codec ${s1.codec || 'none'})`);
    // Sizes at the window's end (Chromium scales down under CPU load): the frame counts
    // are what the size is multiplied with, so a change of size mid-window is approximated.
    const megapixels = (enc * s1.encW * s1.encH + dec * s1.decW * s1.decH) / 1e6;
    return {
      windowSeconds: round3(windowSeconds),
      cpuSeconds: round3(cpu),
      processes: c1.size,
      codec: s1.codec,
      framesEncoded: enc,
      framesDecoded: dec,
      encodedSize: `${s1.encW}x${s1.encH}`,
      decodedSize: `${s1.decW}x${s1.decH}`,
      captureSize: s1.captureSize,
      qualityLimitation: s1.limitation,
      megapixels: round3(megapixels),
      decodedFps: round1(dec / windowSeconds),
      cpuMsPerMpx: round3((cpu * 1000) / megapixels),
    };
  }

  async close(): Promise<void> {
    await this.browser.close();
    this.server.close();
  }
}
