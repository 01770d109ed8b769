/**
 * The names the planner gives the elements the worker, the link adaptation and the
 * supervisor's intentions (volume, mute, on-screen text) act on at run time. Only the
 * media side reads them: the agent asks for an intention, never for an element.
 */
export const ELEMENT_NAMES = {
  tsOut: 'tsout',
  tsAudioOut: 'tsaout',
  audioMux: 'amux',
  tsIn: 'tsin',
  /** epframer (native/plugin.ts): merges the two muxers and frames SRT messages in GStreamer. */
  framer: 'framer',
  srtSink: 'srtout',
  srtSrc: 'srtin',
  rxVideoTap: 'rxvtap',
  /** The hub's raw receive tap (SessionRole.auditReceive): every TS packet, for TsAudit. */
  rxTsOut: 'rxtsout',
  encoder: 'venc',
  snapshotSend: 'snapsend',
  snapshotReceive: 'snaprecv',
  echoProbe: 'echoprobe',
  micLevel: 'txlevel',
  speakerLevel: 'rxlevel',
  micVolume: 'micvol',
  speakerVolume: 'spkvol',
  testVideoValve: 'testvalve',
  /** Link adaptation (adapt/): audio-only gate, rung caps, and the parser for forced keyframes. */
  videoGate: 'vgate',
  videoRate: 'vrate',
  videoCaps: 'vcaps',
  videoParser: 'vparse',
  /** On-screen text over the TV picture (identify shows the box's name here). */
  osd: 'osd',
  /**
   * The elements that carry text from outside (launch.ts `q()`): the camera and the ALSA
   * devices (from the probe) and the title card's text (join spec or config). Named so a
   * test reads back what GStreamer's parser made of them (test/integration/plan-fuzz.test.ts).
   */
  camera: 'camera',
  mic: 'mic',
  speaker: 'speaker',
  title: 'title',
  /**
   * The standby screen's other texts (plan/standby.ts; the commune's name is `title`):
   * the supervisor's updateStandby sets their `text` and `silent` live.
   */
  standbyStatus: 'sbstatus',
  standbyNext: 'sbnext',
  standbyFault: 'sbfault',
  standbyBadges: 'sbbadges',
} as const;
