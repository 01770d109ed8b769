/**
 * Plans one media session (send + receive + AEC) for the given capabilities: ONE
 * top-level pipeline, because webrtcdsp (mic path) must see its webrtcechoprobe
 * (speaker path) in the same pipeline and at the same rate. Each step is a pure
 * function of its own file: choose (numbers, codecs, checks), endpoints, send, receive,
 * SRT, adaptation settings.
 */
import { adaptLadder, adaptPlan, topRungCaps } from './adapt-settings.js';
import { chooseSession, type SessionChoice } from './choose.js';
import { pickEndpoints, sinkEnv, type Endpoints } from './endpoints.js';
import { ELEMENT_NAMES } from './names.js';
import { branches } from './launch.js';
import { receiveBranches, snapshotBranches, type ReceiveRole } from './receive.js';
import { audioSendBranch, sessionPipelines, videoSendBranch } from './send.js';
import { srtCommon, srtSinkElement, srtSrcElement, type SrtMode } from './srt.js';
import type { Capabilities, MediaJoinSpec, MediaSettings, PlanChoices, SessionPlan } from '../types.js';

export interface SessionRole extends ReceiveRole {
  /** `caller` for a box (CONTRACT.md); `listener` for the local test hub, which binds the ports. */
  srtMode: SrtMode;
}

export function planSession(spec: MediaJoinSpec, caps: Capabilities, settings: MediaSettings, role: SessionRole = { srtMode: 'caller' }): SessionPlan {
  const c = chooseSession(spec, caps, settings);
  const ends = pickEndpoints(caps, settings, c.video, settings.standbyTitle ?? spec.title ?? spec.meetingId);
  const ladder = adaptLadder(spec, c.video);
  const common = srtCommon(spec, c.latencyMs);
  const receive = branches(
    receiveBranches(c, caps, settings, ends, srtSrcElement(c.recvUri, role.srtMode, common, spec.receive.streamId), role),
    snapshotBranches(c),
  );
  const { pipeline, direct } = sessionPipelines(
    c.framer,
    videoSendBranch(c, ends.camera.chain, topRungCaps(ladder, c.video)),
    audioSendBranch(c, ends.mic.chain, settings),
    srtSinkElement(c.sendUri, role.srtMode, common, spec.send.streamId),
    receive,
  );
  return {
    kind: 'session',
    pipeline,
    direct,
    choices: sessionChoices(c, ends),
    env: sinkEnv(ends.display.sink),
    names: sessionNames(c, role),
    video: c.video,
    audio: { bitrateKbps: c.audioKbps },
    adapt: adaptPlan(spec, c, ladder),
  };
}

function sessionChoices(c: SessionChoice, ends: Endpoints): PlanChoices {
  return {
    encoder: c.encoder,
    decoder: c.decoder,
    camera: ends.camera.label,
    display: ends.display.label,
    mic: ends.mic.label,
    speaker: ends.speaker.label,
    aec: c.aec,
  };
}

/** The elements the worker reads at run time, by the plan's shape. */
function sessionNames(c: SessionChoice, role: SessionRole): SessionPlan['names'] {
  const n = ELEMENT_NAMES;
  return {
    ...(c.framer ? { framer: n.framer } : { tsOut: n.tsOut, tsAudioOut: n.tsAudioOut, tsIn: n.tsIn }),
    srtSink: n.srtSink,
    srtSrc: n.srtSrc,
    rxVideoTap: n.rxVideoTap,
    ...(role.auditReceive ? { rxTsOut: n.rxTsOut } : {}),
    encoder: n.encoder,
    snapshotSend: c.snap ? n.snapshotSend : null,
    snapshotReceive: c.snap ? n.snapshotReceive : null,
  };
}
