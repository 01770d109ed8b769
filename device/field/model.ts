/**
 * What the people beside the box see, as data: one `FieldView` of the box (built by the
 * agent, or by the unprovisioned agent), the LED pattern it means, and the plain advice for
 * each fault in Vietnamese and English. Pure: the LEDs, the status page, `ep status`,
 * `ep selftest` and the TV standby screen all read from here, so they never disagree.
 */

/** The box as the clerk and the technician see it. Built fresh on every change. */
export interface FieldView {
  /** The commune's display name (NFC), or null before provisioning. */
  name: string | null;
  deviceId: string | null;
  groupId: string | null;
  version: string;
  /** The contract's reported state. */
  state: 'idle' | 'joining' | 'in_meeting' | 'leaving' | 'updating' | 'fault' | 'unprovisioned';
  /** Why the box is unprovisioned (the log's reason), null otherwise. */
  unprovisionedReason: string | null;
  /** The hub's broker: connected now, and for how long it has been unreachable (ms; 0 when connected). */
  hub: { connected: boolean; url: string | null; downForMs: number };
  /** An address on a network interface: false = none, null = not known yet. */
  network: boolean | null;
  meeting: { id: string; title: string | null; since: string } | null;
  /** The next meeting the hub announced (topic `ep/v1/grp/{groupId}/next`), null when none. */
  nextMeeting: { title: string; startsAt: string } | null;
  /** The contract's fault codes now (health, devices, media). */
  faults: string[];
  ota: { phase: string; version?: string; progress?: number } | null;
  /** The hub's `identify` is on. */
  identify: boolean;
  /** Raised hand and microphone mute (the button's short press; the `config` command's micMuted). */
  handRaised: boolean;
  micMuted: boolean;
  /** The button is held past the warning: releasing now cancels the factory reset. */
  resetWarning: boolean;
  /** ms since the epoch of this view. */
  now: number;
}

/** How long the broker may be unreachable before the box calls it "no hub" (a reconnect is normal). */
export const NO_HUB_AFTER_MS = 20_000;

/**
 * One LED pattern: steps of on/off with their durations, repeated. `steady` is one step
 * `[true, 0]`; `off` is `[false, 0]`. Drivers map simple patterns to the kernel's
 * `timer` trigger (two steps) and the rest to the `pattern` trigger or a software loop.
 */
export type LedStep = readonly [on: boolean, ms: number];

export interface LedCode {
  /** Stable name (logs, `ep status --json`, tests). */
  code: LedCodeName;
  /** What a person reads in the table. */
  pattern: string;
  steps: readonly LedStep[];
  /** Meaning and what to do, for the legend. */
  en: string;
  vi: string;
}

const pulses = (n: number): LedStep[] => {
  const s: LedStep[] = [];
  for (let i = 0; i < n; i++) s.push([true, 200], [false, 300]);
  s[s.length - 1] = [false, 1500];
  return s;
};

/**
 * The blink-code table, in priority order: the first that applies is shown. One table for
 * the README, the status page and `ep status` (docs/field.md prints it from here).
 */
export const LED_CODES = [
  { code: 'reset_warning', pattern: 'flicker (10 per second)', steps: [[true, 50], [false, 50]], en: 'Button held: release it now to cancel the factory reset', vi: 'Đang giữ nút: thả tay ngay để hủy khôi phục cài đặt gốc' },
  { code: 'identify', pattern: 'fast blink (4 per second)', steps: [[true, 125], [false, 125]], en: 'The hub asked this box to show itself', vi: 'Máy chủ đang yêu cầu nhận diện thiết bị này' },
  { code: 'unprovisioned', pattern: '1 pulse, pause', steps: pulses(1), en: 'Not set up: put ep-provision.json on the SD card', vi: 'Chưa cài đặt: cần tệp ep-provision.json trên thẻ nhớ' },
  { code: 'under_voltage', pattern: '2 pulses, pause', steps: pulses(2), en: 'Weak power supply', vi: 'Nguồn điện yếu' },
  { code: 'no_network', pattern: '3 pulses, pause', steps: pulses(3), en: 'No network', vi: 'Không có mạng' },
  { code: 'no_hub', pattern: '4 pulses, pause', steps: pulses(4), en: 'Network is up but the hub cannot be reached', vi: 'Có mạng nhưng không kết nối được máy chủ' },
  { code: 'no_camera', pattern: '5 pulses, pause', steps: pulses(5), en: 'Camera not found', vi: 'Không thấy camera' },
  { code: 'no_display', pattern: '6 pulses, pause', steps: pulses(6), en: 'TV not found', vi: 'Không thấy TV' },
  { code: 'fault', pattern: '7 pulses, pause', steps: pulses(7), en: 'Another fault: see the status page or the TV', vi: 'Lỗi khác: xem trang trạng thái hoặc màn hình TV' },
  { code: 'updating', pattern: 'slow blink (1 per second)', steps: [[true, 500], [false, 500]], en: 'Updating the software: do not switch off', vi: 'Đang cập nhật phần mềm: không tắt nguồn' },
  { code: 'in_meeting', pattern: 'steady on', steps: [[true, 0]], en: 'In a meeting', vi: 'Đang họp' },
  { code: 'idle', pattern: 'short blink every 3 s', steps: [[true, 100], [false, 2900]], en: 'Ready, waiting for the next meeting', vi: 'Sẵn sàng, chờ cuộc họp' },
] as const satisfies readonly (Omit<LedCode, 'code' | 'steps'> & { code: string; steps: readonly LedStep[] })[];

export type LedCodeName = (typeof LED_CODES)[number]['code'];

const byName = new Map<string, LedCode>(LED_CODES.map((c) => [c.code, c as LedCode]));
export const ledCode = (name: LedCodeName): LedCode => byName.get(name)!;

/** Faults that are "another fault" (7 pulses) when nothing above them applies. */
const OTHER_FAULTS: ReadonlySet<string> = new Set(['media_failing', 'disk_full', 'overheating', 'no_mic', 'no_speaker']);

/** The hub is "lost" once the broker has been unreachable for NO_HUB_AFTER_MS. */
export const hubLost = (v: FieldView): boolean => v.state !== 'unprovisioned' && !v.hub.connected && v.hub.downForMs >= NO_HUB_AFTER_MS;

/** The one LED code the box shows now (the table's priority). Pure. */
export function ledFor(v: FieldView): LedCode {
  const f = new Set(v.faults);
  const name: LedCodeName = v.resetWarning
    ? 'reset_warning'
    : v.identify
      ? 'identify'
      : v.state === 'unprovisioned'
        ? 'unprovisioned'
        : f.has('under_voltage')
          ? 'under_voltage'
          : v.network === false
            ? 'no_network'
            : hubLost(v)
              ? 'no_hub'
              : f.has('no_camera')
                ? 'no_camera'
                : f.has('no_display')
                  ? 'no_display'
                  : v.state === 'fault' || [...f].some((x) => OTHER_FAULTS.has(x))
                    ? 'fault'
                    : v.state === 'updating'
                      ? 'updating'
                      : v.state === 'in_meeting' || v.state === 'joining' || v.state === 'leaving'
                        ? 'in_meeting'
                        : 'idle';
  return ledCode(name);
}

/** Plain advice for a problem the clerk can see: what it is and what to do, in both languages. */
export interface Advice {
  vi: string;
  en: string;
}

/**
 * Every fault code the box reports (device/health/faults.ts, state-report.ts) plus the
 * field's own (unprovisioned, no_network, no_hub), with advice a clerk can act on.
 */
export const ADVICE: Readonly<Record<string, Advice>> = {
  unprovisioned: { vi: 'Chưa cài đặt: cần tệp ep-provision.json trên thẻ nhớ. Gọi cán bộ kỹ thuật huyện.', en: 'Not set up: the SD card needs the ep-provision.json file. Call the district technician.' },
  under_voltage: { vi: 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng', en: 'Weak power: replace the power adapter with a genuine 5V/3A one' },
  no_network: { vi: 'Không có mạng: kiểm tra dây mạng hoặc bộ phát 4G/Wi-Fi, tắt bộ phát rồi bật lại.', en: 'No network: check the network cable or the 4G/Wi-Fi router; switch the router off and on.' },
  no_hub: { vi: 'Không kết nối được máy chủ huyện/tỉnh: kiểm tra Internet; nếu vẫn lỗi, gọi cán bộ kỹ thuật huyện.', en: 'Cannot reach the district/province hub: check the Internet; if it persists, call the district technician.' },
  no_camera: { vi: 'Không thấy camera: kiểm tra dây camera, cắm lại rồi khởi động lại thiết bị.', en: 'Camera not found: check the camera cable, plug it in again and restart the box.' },
  no_display: { vi: 'Không thấy TV: bật TV, chọn đúng cổng HDMI, kiểm tra dây HDMI.', en: 'TV not found: switch the TV on, choose the right HDMI input, check the HDMI cable.' },
  no_mic: { vi: 'Không thấy micrô: kiểm tra dây micrô và cổng USB.', en: 'Microphone not found: check the microphone cable and its USB port.' },
  no_speaker: { vi: 'Không thấy loa: kiểm tra dây loa hoặc HDMI và âm lượng TV.', en: 'Speaker not found: check the speaker or HDMI cable and the TV volume.' },
  overheating: { vi: 'Thiết bị quá nóng: đặt nơi thoáng mát, không che kín, tránh nắng.', en: 'The box is too hot: put it somewhere cool and open, out of the sun.' },
  disk_full: { vi: 'Bộ nhớ gần đầy: báo cán bộ kỹ thuật.', en: 'Storage almost full: tell the technician.' },
  clock_unsynced: { vi: 'Đồng hồ chưa đồng bộ: kiểm tra kết nối Internet.', en: 'Clock not synchronised: check the Internet connection.' },
  media_failing: { vi: 'Hình ảnh/âm thanh bị gián đoạn: kiểm tra Internet; thiết bị đang tự thử lại.', en: 'Picture/sound interrupted: check the Internet; the box keeps retrying.' },
};

/** Advice for a code; an unknown code still gets a line (its name), never nothing. */
export const adviceFor = (code: string): Advice => ADVICE[code] ?? { vi: `Lỗi: ${code}. Gọi cán bộ kỹ thuật.`, en: `Fault: ${code}. Call the technician.` };

/** The box's state in words (standby screen, status page, `ep status`). */
export const STATE_WORDS: Readonly<Record<FieldView['state'], Advice>> = {
  idle: { vi: 'Sẵn sàng — chờ cuộc họp', en: 'Ready — waiting for the next meeting' },
  joining: { vi: 'Đang vào cuộc họp…', en: 'Joining the meeting…' },
  in_meeting: { vi: 'Đang họp', en: 'In a meeting' },
  leaving: { vi: 'Đang rời cuộc họp…', en: 'Leaving the meeting…' },
  updating: { vi: 'Đang cập nhật phần mềm — không tắt nguồn', en: 'Updating — do not switch off' },
  fault: { vi: 'Có lỗi — xem hướng dẫn bên dưới', en: 'Fault — see the advice below' },
  unprovisioned: { vi: 'Chưa cài đặt', en: 'Not set up' },
};

/**
 * The problems to show, most urgent first: the field's own (unprovisioned, no network, no
 * hub) then the reported faults, each with its advice.
 */
export function problemsOf(v: FieldView): Array<{ code: string } & Advice> {
  const codes: string[] = [];
  if (v.state === 'unprovisioned') codes.push('unprovisioned');
  if (v.network === false) codes.push('no_network');
  else if (hubLost(v)) codes.push('no_hub');
  const rank = (c: string): number => {
    const i = LED_CODES.findIndex((x) => x.code === c);
    return i < 0 ? LED_CODES.length : i;
  };
  codes.push(...[...v.faults].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)));
  return [...new Set(codes)].map((code) => ({ code, ...adviceFor(code) }));
}

/** Text for people: Unicode NFC (Vietnamese typed on a phone often arrives decomposed), control characters out. */
export function displayString(s: string, maxLength = 200): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.normalize('NFC').replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g, '');
  return [...clean].slice(0, maxLength).join('');
}

/** The blink-code table in Markdown (README, docs/field.md; test/unit/field-docs.test.ts keeps them equal). */
export function ledTableMarkdown(): string {
  const rows = LED_CODES.map((c, i) => `| ${i + 1} | ${c.pattern} | \`${c.code}\` | ${c.vi} | ${c.en} |`);
  return ['| priority | LED | code | Tiếng Việt | English |', '| --- | --- | --- | --- | --- |', ...rows].join('\n');
}

/** The blink-code table as plain text (`ep status --leds`), the code shown now marked with ▶. */
export function ledTableText(current: string | null = null): string {
  const w = Math.max(...LED_CODES.map((c) => c.pattern.length));
  return LED_CODES.map((c) => `${c.code === current ? '▶' : ' '} ${c.pattern.padEnd(w)}  ${c.vi} / ${c.en}`).join('\n');
}
