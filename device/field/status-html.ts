/**
 * The status page itself: one self-contained HTML document (inline CSS and JS under the
 * response's CSP nonce, no external asset — the commune has no Internet), made for a phone
 * held in one hand (360 px wide, no zoom). Vietnamese first, English second. It holds no box
 * data: everything arrives as snapshots over the WebSocket (status-page.ts) and is written
 * with textContent only, so nothing the hub or a log line says can become markup.
 */
import { LED_CODES } from './model.js';

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const CSS = `
*{box-sizing:border-box}
html{font-size:16px;-webkit-text-size-adjust:100%}
body{margin:0;font-family:"DejaVu Sans","Noto Sans",system-ui,sans-serif;line-height:1.4;background:#f3f4f6;color:#111}
main{max-width:42rem;margin:0 auto;padding:.75rem}
h1{font-size:1.25rem;margin:.25rem 0}
h2{font-size:1.05rem;margin:0 0 .5rem}
section{background:#fff;border-radius:.5rem;padding:.75rem;margin:.75rem 0;box-shadow:0 1px 2px #0002}
.en{color:#555;font-size:.9rem}
.muted{color:#666;font-size:.85rem}
#state{font-size:1.3rem;font-weight:bold;padding:.75rem;border-radius:.5rem;background:#e5e7eb}
#state.ok{background:#d1fae5}#state.busy{background:#dbeafe}#state.bad{background:#fee2e2}
#state .en{font-weight:normal}
#conn.down{color:#b91c1c;font-weight:bold}
ul{list-style:none;margin:0;padding:0}
#problems li{border-left:.3rem solid #dc2626;padding:.25rem .5rem;margin:.5rem 0;background:#fef2f2}
#problems li .vi{font-weight:bold}
dl{margin:0}
dt{color:#444;font-size:.85rem}dt .en{font-size:.8rem}
dd{margin:0 0 .5rem;overflow-wrap:anywhere}
.bad{color:#b91c1c;font-weight:bold}
table{width:100%;border-collapse:collapse;font-size:.9rem}
td{padding:.3rem;border-top:1px solid #e5e7eb;vertical-align:top}
tr.now{background:#fef3c7;font-weight:bold}
tr.now td:first-child::before{content:"▶ "}
pre{margin:0;max-height:24rem;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere;font-size:.75rem;background:#111;color:#e5e7eb;padding:.5rem;border-radius:.25rem}
form{display:flex;gap:.5rem;flex-wrap:wrap}
input{font-size:1.2rem;padding:.5rem;width:10rem}
button{font-size:1.1rem;padding:.5rem 1rem}
[hidden]{display:none!important}
`;

/** Runs in the browser: connects, asks for the PIN when needed, renders each snapshot. */
const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
const pinRequired = document.body.dataset.pin === "1";
let pin = null, retry = 0, timer = null;
const el = (tag, cls, txt) => { const e = document.createElement(tag); if (cls) e.className = cls; if (txt != null) e.textContent = txt; return e; };
const two = (vi, en) => { const f = document.createDocumentFragment(); f.append(el("span", "vi", vi), " ", el("span", "en", "/ " + en)); return f; };
const when = (iso) => { const d = new Date(iso); return isNaN(d) ? String(iso) : d.toLocaleString("vi-VN", { hour: "2-digit", minute: "2-digit", day: "2-digit", month: "2-digit", year: "numeric" }); };
const n = (x, unit, digits) => (x == null ? "—" : (digits == null ? Math.round(x) : x.toFixed(digits)) + (unit || ""));
const yes = (b, vi, en, viNo, enNo) => (b == null ? "—" : b ? vi + " / " + en : viNo + " / " + enNo);
const PHASES = { idle: ["Không có", "None"], checking: ["Đang kiểm tra", "Checking"], downloading: ["Đang tải về", "Downloading"], verifying: ["Đang kiểm tra tệp", "Verifying"], installing: ["Đang cài đặt", "Installing"], waiting_idle: ["Chờ hết cuộc họp", "Waiting for the meeting to end"], switching: ["Đang chuyển phiên bản", "Switching"], restarting: ["Đang khởi động lại", "Restarting"], trying: ["Đang chạy thử bản mới", "Trying the new version"], committed: ["Đã cập nhật xong", "Updated"], refused: ["Bị từ chối", "Refused"], failed: ["Cập nhật lỗi", "Failed"], rolled_back: ["Đã quay về bản cũ", "Rolled back"] };
const phase = (p) => (Object.hasOwn(PHASES, p) ? PHASES[p].join(" / ") : p);
function setConn(vi, en, bad) { const c = $("conn"); c.textContent = vi + " / " + en; c.className = bad ? "down" : "muted"; }
function rows(dl, items) {
  dl.replaceChildren();
  for (const [vi, en, val, bad] of items) { const dt = el("dt"); dt.append(two(vi, en)); dl.append(dt, el("dd", bad ? "bad" : "", val)); }
}
function render(s) {
  $("name").textContent = s.name || "Thiết bị hội nghị / Conference box";
  const st = $("state"); st.replaceChildren(el("div", "vi", s.stateWords.vi), el("div", "en", s.stateWords.en));
  st.className = s.problems.length ? "bad" : s.state === "idle" ? "ok" : "busy";
  $("updated").textContent = "Cập nhật lúc / Updated at " + new Date(s.now).toLocaleTimeString("vi-VN");
  const p = $("problems"); p.replaceChildren();
  for (const x of s.problems) { const li = el("li"); li.dataset.code = x.code; li.append(el("div", "vi", x.vi), el("div", "en", x.en)); p.append(li); }
  $("problems-box").hidden = s.problems.length === 0;
  const extra = [];
  if (s.handRaised) extra.push("Đang giơ tay / Hand raised");
  if (s.micMuted) extra.push("Đã tắt micrô / Microphone muted");
  if (s.identify) extra.push("Đang nhận diện / Identifying");
  if (s.resetWarning) extra.push("Sắp khôi phục cài đặt gốc: thả nút! / Factory reset: release the button!");
  $("flags").textContent = extra.join(" · ");
  rows($("meeting"), [
    ["Cuộc họp", "Meeting", s.meeting ? (s.meeting.title || s.meeting.id) + " (từ / since " + when(s.meeting.since) + ")" : "Không có / None"],
    ["Cuộc họp tới", "Next meeting", s.nextMeeting ? s.nextMeeting.title + " — " + when(s.nextMeeting.startsAt) : "Chưa có lịch / None announced"],
    ["Máy chủ", "Hub", (s.hub.connected ? "Đã kết nối / Connected" : "Mất kết nối / Not connected" + (s.hub.downForMs ? " (" + Math.round(s.hub.downForMs / 1000) + " s)" : "")) + (s.hub.url ? " — " + s.hub.url : ""), !s.hub.connected],
    ["Mạng", "Network", s.network == null ? "—" : s.network ? "Có / Up" : "Không có mạng / Down", s.network === false],
  ]);
  const h = s.health, hr = [];
  if (h) {
    hr.push(["CPU", "CPU", n(h.cpu.loadPct, " %") + " · " + n(h.cpu.tempC, " °C", 1), h.cpu.tempC != null && h.cpu.tempC >= 80]);
    hr.push(["Nguồn điện", "Power", yes(h.power.underVoltage, "Yếu", "Weak", "Tốt", "Good") + (h.power.underVoltageSinceBoot ? " (đã yếu từ lúc khởi động / weak since boot)" : ""), !!h.power.underVoltage]);
    hr.push(["Bộ nhớ", "Memory", n(h.mem.usedPct, " %")]);
    hr.push(["Thẻ nhớ", "Storage", n(h.disk.usedPct, " %"), h.disk.usedPct != null && h.disk.usedPct >= 90]);
    hr.push(["Mạng", "Network", (h.net.iface || "—") + " " + (h.net.ip || "") + " ↓" + n(h.net.rxKbps) + " ↑" + n(h.net.txKbps) + " kbit/s"]);
    hr.push(["Đồng hồ", "Clock", yes(h.clockSynced, "Đã đồng bộ", "synchronised", "Chưa đồng bộ", "not synchronised"), h.clockSynced === false]);
    const d = h.devices, dv = (b, vi, en) => vi + "/" + en + " " + (b == null ? "?" : b ? "✓" : "✗");
    hr.push(["Thiết bị", "Devices", [dv(d.camera, "Camera", "camera"), dv(d.display, "TV", "TV"), dv(d.mic, "Micrô", "mic"), dv(d.speaker, "Loa", "speaker")].join(" · "), [d.camera, d.display, d.mic, d.speaker].includes(false)]);
    const m = h.media;
    if (m) {
      hr.push(["Gửi đi", "Sending", n(m.send.fps, " fps") + " · " + n(m.send.kbps, " kbit/s") + " · RTT " + n(m.send.rttMs, " ms") + " · mất / loss " + n(m.send.lossPct, " %", 1) + (m.rung ? " · " + m.rung : "")]);
      hr.push(["Nhận về", "Receiving", n(m.receive.fps, " fps") + " · " + n(m.receive.kbps, " kbit/s") + " · mất / loss " + n(m.receive.lossPct, " %", 1)]);
      hr.push(["Âm thanh", "Audio", "micrô / mic " + n(m.audio.micDb, " dB") + " · loa / speaker " + n(m.audio.speakerDb, " dB")]);
    }
  } else hr.push(["Tình trạng", "Health", "Chưa có số liệu / No reading yet"]);
  rows($("health"), hr);
  for (const tr of document.querySelectorAll("#leds tr")) { const now = tr.dataset.code === s.led; tr.className = now ? "now" : ""; if (now) tr.setAttribute("aria-current", "true"); else tr.removeAttribute("aria-current"); }
  const ota = s.ota;
  rows($("version"), [
    ["Phiên bản", "Version", s.version],
    ["Cập nhật", "Update", ota ? phase(ota.phase) + (ota.version ? " → " + ota.version : "") + (ota.progress != null ? " (" + Math.round(ota.progress * 100) + " %)" : "") : "Không có / None"],
    ["Mã thiết bị", "Device id", s.deviceId || "—"],
    ["Nhóm", "Group", s.groupId || "—"],
  ].concat(s.unprovisionedReason ? [["Lý do", "Reason", s.unprovisionedReason]] : []));
  const pre = $("logs"), atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.textContent = s.logs.join("\\n");
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}
function askPin(vi, en) {
  $("pin-box").hidden = false; $("pin-msg").textContent = vi ? vi + " / " + en : "";
  $("pin").focus();
}
function connect() {
  clearTimeout(timer);
  setConn("Đang kết nối…", "Connecting…", false);
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onopen = () => { if (pin !== null) ws.send(JSON.stringify({ pin })); };
  ws.onmessage = (e) => {
    let m; try { m = JSON.parse(e.data); } catch { return; }
    if (m && m.t === "snapshot") { retry = 0; $("pin-box").hidden = true; $("data").hidden = false; setConn("Trực tiếp", "Live", false); render(m); }
  };
  ws.onclose = (e) => {
    if (e.code === 4001 || e.code === 4003) { pin = null; askPin(e.code === 4003 ? "Sai mã PIN" : "", e.code === 4003 ? "Wrong PIN" : ""); setConn("Cần mã PIN", "PIN needed", true); return; }
    if (e.code === 4029) { pin = null; askPin("Nhập sai quá nhiều lần: chờ 1 phút", "Too many wrong PINs: wait a minute"); setConn("Tạm khóa", "Locked", true); return; }
    setConn("Mất kết nối — đang thử lại", "Disconnected — retrying", true);
    timer = setTimeout(connect, Math.min(10000, 500 * 2 ** retry++));
  };
}
$("pin-form").addEventListener("submit", (e) => { e.preventDefault(); pin = $("pin").value; $("pin").value = ""; connect(); });
if (pinRequired) askPin(); else connect();
`;

/** The page for one response: the nonce is the response's CSP nonce. */
export function renderStatusHtml(o: { nonce: string; pinRequired: boolean }): string {
  const legend = LED_CODES.map((c) => `<tr data-code="${esc(c.code)}"><td>${esc(c.pattern)}</td><td><span class="vi">${esc(c.vi)}</span><br><span class="en">${esc(c.en)}</span></td></tr>`).join('\n');
  const nonce = esc(o.nonce);
  return `<!doctype html>
<html lang="vi">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Trạng thái thiết bị / Box status</title>
<style nonce="${nonce}">${CSS}</style>
</head>
<body data-pin="${o.pinRequired ? '1' : '0'}">
<main>
<h1 id="name">Thiết bị hội nghị / Conference box</h1>
<p id="conn" class="muted">Đang tải… / Loading…</p>
<section id="pin-box" hidden>
<h2>Nhập mã PIN <span class="en">/ Enter the PIN</span></h2>
<form id="pin-form" autocomplete="off"><input id="pin" type="password" inputmode="numeric" aria-label="PIN" maxlength="64"><button type="submit">Xem / View</button></form>
<p id="pin-msg" class="bad"></p>
</section>
<div id="data" hidden>
<div id="state"></div>
<p id="flags" class="muted"></p>
<section id="problems-box" hidden><h2>Sự cố và cách xử lý <span class="en">/ Problems and what to do</span></h2><ul id="problems"></ul></section>
<section><h2>Cuộc họp và kết nối <span class="en">/ Meeting and connection</span></h2><dl id="meeting"></dl></section>
<section><h2>Tình trạng máy <span class="en">/ Health</span></h2><dl id="health"></dl></section>
<section><h2>Phiên bản <span class="en">/ Version</span></h2><dl id="version"></dl></section>
<section id="logs-box"><h2>Nhật ký <span class="en">/ Log (last 200 lines)</span></h2><pre id="logs"></pre><p id="updated" class="muted"></p></section>
</div>
<section><h2>Ý nghĩa đèn báo <span class="en">/ What the light means</span></h2><table id="leds">
${legend}
</table></section>
</main>
<script nonce="${nonce}">${SCRIPT}</script>
</body>
</html>
`;
}
