/**
 * The receive half of a session: srtsrc → tsdemux → decoder → TV (with the on-screen
 * text), a tap that counts received frames, and Opus → echo probe → speaker. Also the
 * PNG snapshot branches of both halves.
 */
import { decoderChain } from './codecs.js';
import { AUDIO_CAPS, clamp, type SessionChoice } from './choose.js';
import { osdOverlay, type Endpoints } from './endpoints.js';
import { sessionBadgesOverlay } from './standby.js';
import { snapshotBranch } from './snapshot.js';
import { ELEMENT_NAMES } from './names.js';
import { branches, chain } from './launch.js';
import type { Capabilities, MediaSettings } from '../types.js';

export interface ReceiveRole {
  /** Interval of the program-audio level reports (1000 ms; the test hub uses 100 to see audio breaks). */
  speakerLevelMs?: number;
  /**
   * The test hub: also hand every received TS packet to the worker (a FIFO, like the send
   * side), which audits it (mpegts/audit.ts: each Opus frame and video frame, whole or not).
   */
  auditReceive?: boolean;
}

export function receiveBranches(
  c: SessionChoice,
  caps: Capabilities,
  settings: MediaSettings,
  ends: Pick<Endpoints, 'display' | 'speaker'>,
  srtSrc: string,
  role: ReceiveRole,
): string {
  const n = ELEMENT_NAMES;
  return branches(
    chain(srtSrc, role.auditReceive ? 'tee name=rxts' : null, role.auditReceive ? 'queue max-size-time=500000000' : null, 'tsdemux name=demux'),
    // Never leaky: a dropped buffer here would read as audio the link lost. 2000 buffers
    // (~10 s at this rate) of slack for the worker's reads.
    role.auditReceive ? chain('rxts.', 'queue max-size-buffers=2000 max-size-bytes=0 max-size-time=0', `fdsink name=${n.rxTsOut} sync=false async=false`) : null,
    chain(
      'demux.',
      'queue max-size-time=500000000',
      // AU alignment declared: otherwise h264parse waits for the next frame (docs/platform-facts.md, "MPEG-TS latency").
      'video/x-h264,alignment=au',
      'h264parse',
      'tee name=rxtee',
      'queue max-size-time=500000000',
      decoderChain(c.decoder),
      caps.elements.textoverlay ? osdOverlay() : null,
      caps.elements.textoverlay ? sessionBadgesOverlay() : null,
      c.snap ? 'tee name=displaytee' : null,
      'queue max-size-buffers=3 leaky=downstream',
      ends.display.sink,
    ),
    // Received frames are counted here. A box reads the fakesink's `rendered` count a few
    // times a second (no per-frame work in Node); the test hub's audit pulls every frame
    // through an appsink for exact arrival times (freeze lengths to the millisecond).
    chain(
      'rxtee.',
      'queue leaky=downstream max-size-buffers=60',
      role.auditReceive
        ? `appsink name=${n.rxVideoTap} sync=false async=false max-buffers=60 drop=true`
        : `fakesink name=${n.rxVideoTap} sync=false async=false`,
    ),
    chain(
      'demux.',
      'queue max-size-time=500000000',
      'opusdec plc=true',
      'audioconvert',
      'audioresample',
      AUDIO_CAPS,
      `level name=${n.speakerLevel} interval=${Math.round(clamp(role.speakerLevelMs ?? 1000, 20, 10_000)) * 1_000_000}`,
      c.aec ? `webrtcechoprobe name=${n.echoProbe}` : null,
      `volume name=${n.speakerVolume} volume=${clamp(settings.volume, 0, 1.5).toFixed(2)}`,
      'audioconvert',
      ends.speaker.sink,
    ),
  );
}

/** PNGs of the sent picture (after the camera) and the displayed one (after the decoder), one a second at most. */
export function snapshotBranches(c: SessionChoice): string {
  return c.snap ? branches(snapshotBranch('sendtee', ELEMENT_NAMES.snapshotSend), snapshotBranch('displaytee', ELEMENT_NAMES.snapshotReceive)) : '';
}

