/**
 * The operator's picture of the fleet: retained `status` and `state` messages folded into
 * one bounded map of boxes. Pure — no MQTT here: `fold(topic, payload)` takes what the
 * client received and says what it did with it.
 *
 * - Every payload is decoded at the edge (size cap, JSON, the contract's schema); a
 *   malformed one is ignored and counted, the box's previous picture kept.
 * - The last will `{"online":false,"ts"}` carries no groupId: a box's group and name are
 *   remembered from its last online status (null when never seen).
 * - An empty retained payload (a cleared retained message) forgets that half of the box.
 * - At most `maxBoxes` boxes: a message about one more is ignored and counted.
 */
import type { ValidateFunction } from 'ajv';
import { createContract, stateSchema, statusSchema, topics, type Contract, type ReportedState, type StatusMessage } from '../contract/index.js';

/** Boxes kept by default (a province is a few thousand; extra boxes are counted, not kept). */
export const ROSTER_MAX_BOXES = 20_000;
/** Characters kept of any string a box reports (names, versions, codes, messages). */
export const FIELD_CHARS = 200;
/** Faults kept per box. */
export const FAULTS_KEPT = 16;

export interface OtaView {
  phase: string;
  version: string | null;
  progress: number | null;
  from: string | null;
  code: string | null;
  message: string | null;
}

export interface BoxView {
  id: string;
  name: string | null;
  group: string | null;
  /** null: no status seen (or it was cleared). */
  online: boolean | null;
  /** The version of the last online status. */
  statusVersion: string | null;
  state: string | null;
  /** The version the retained state reports. */
  stateVersion: string | null;
  meetingId: string | null;
  ota: OtaView | null;
  faults: string[];
  /** How many valid state messages arrived for this box (a later one is newer). */
  stateSeq: number;
  statusSeq: number;
}

export type FoldResult = 'status' | 'state' | 'cleared' | 'malformed' | 'over_cap' | 'other';

export interface RosterCounts {
  malformed: number;
  overCap: number;
  other: number;
}

/** Printable: no control characters, at most FIELD_CHARS code points. */
export function cleanText(s: string, max = FIELD_CHARS): string {
  // eslint-disable-next-line no-control-regex
  const c = s.normalize('NFC').replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
  const cps = [...c];
  return cps.length > max ? `${cps.slice(0, max - 1).join('')}…` : c;
}

const ID_RE = /^[a-z0-9][a-z0-9-]{2,63}$/;

/** `ep/v1/dev/{id}/{kind}` → its parts, when kind is one the operator reads; else null. */
export function parseDeviceTopic(topic: string): { deviceId: string; kind: 'status' | 'state' | 'reply' } | null {
  const parts = topic.split('/');
  if (parts.length !== 5) return null;
  const id = parts[3] ?? '';
  if (!ID_RE.test(id)) return null;
  if (topic === topics.status(id)) return { deviceId: id, kind: 'status' };
  if (topic === topics.state(id)) return { deviceId: id, kind: 'state' };
  if (topic === topics.reply(id)) return { deviceId: id, kind: 'reply' };
  return null;
}

const optText = (v: unknown): string | null => (typeof v === 'string' ? cleanText(v) : null);

function otaView(o: unknown): OtaView | null {
  if (typeof o !== 'object' || o === null) return null;
  const r = o as Record<string, unknown>;
  return {
    phase: cleanText(String(r.phase), 64),
    version: optText(r.version),
    progress: typeof r.progress === 'number' && Number.isFinite(r.progress) ? r.progress : null,
    from: optText(r.from),
    code: optText(r.code),
    message: optText(r.message),
  };
}

export class Roster {
  private readonly boxes = new Map<string, BoxView>();
  private readonly contract: Contract;
  private readonly statusValid: ValidateFunction;
  private readonly stateValid: ValidateFunction;
  readonly counts: RosterCounts = { malformed: 0, overCap: 0, other: 0 };
  /** Device ids ignored because the roster was full (at most maxBoxes remembered, to count each once). */
  private readonly overCapIds = new Set<string>();

  constructor(readonly maxBoxes = ROSTER_MAX_BOXES) {
    this.contract = createContract();
    this.statusValid = this.contract.compile(statusSchema);
    this.stateValid = this.contract.compile(stateSchema);
  }

  get size(): number {
    return this.boxes.size;
  }

  get(id: string): BoxView | undefined {
    return this.boxes.get(id);
  }

  /** Every box, sorted by id. */
  list(): BoxView[] {
    return [...this.boxes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The online boxes of a group, sorted by id. */
  onlineOf(groupId: string): BoxView[] {
    return this.list().filter((b) => b.group === groupId && b.online === true);
  }

  /** Folds one message (topic and raw payload) into the picture. */
  fold(topic: string, payload: Buffer | string): FoldResult {
    const t = parseDeviceTopic(topic);
    if (!t || t.kind === 'reply') {
      this.counts.other++;
      return 'other';
    }
    const empty = (typeof payload === 'string' ? payload.length : payload.length) === 0;
    if (empty) return this.clear(t.deviceId, t.kind);
    let value: unknown;
    try {
      value = this.contract.parseJson(payload, t.kind);
      this.contract.check(t.kind === 'status' ? this.statusValid : this.stateValid, value);
    } catch {
      this.counts.malformed++;
      return 'malformed';
    }
    const box = this.boxFor(t.deviceId);
    if (!box) return 'over_cap';
    if (t.kind === 'status') this.applyStatus(box, value as StatusMessage);
    else this.applyState(box, value as ReportedState);
    return t.kind;
  }

  private boxFor(id: string): BoxView | null {
    const known = this.boxes.get(id);
    if (known) return known;
    if (this.boxes.size >= this.maxBoxes) {
      this.counts.overCap++;
      if (this.overCapIds.size < this.maxBoxes) this.overCapIds.add(id);
      return null;
    }
    const b: BoxView = {
      id,
      name: null,
      group: null,
      online: null,
      statusVersion: null,
      state: null,
      stateVersion: null,
      meetingId: null,
      ota: null,
      faults: [],
      stateSeq: 0,
      statusSeq: 0,
    };
    this.boxes.set(id, b);
    return b;
  }

  /** Boxes seen but not kept because the roster was full (distinct ids, up to maxBoxes counted). */
  get overCapBoxes(): number {
    return this.overCapIds.size;
  }

  private applyStatus(b: BoxView, s: StatusMessage): void {
    b.statusSeq++;
    b.online = s.online;
    if (s.online) {
      // Group and name only from an online status: the will has neither.
      const g = (s as { groupId?: unknown }).groupId;
      const n = (s as { name?: unknown }).name;
      if (typeof g === 'string' && ID_RE.test(g)) b.group = g;
      if (typeof n === 'string') b.name = cleanText(n);
      if (typeof s.version === 'string') b.statusVersion = cleanText(s.version, 64);
    }
  }

  private applyState(b: BoxView, s: ReportedState): void {
    b.stateSeq++;
    b.state = s.state;
    b.stateVersion = cleanText(s.version, 64);
    b.meetingId = s.meeting ? cleanText(s.meeting.id) : null;
    b.ota = otaView(s.ota);
    b.faults = s.faults.slice(0, FAULTS_KEPT).map((f) => cleanText(f, 64));
  }

  private clear(id: string, kind: 'status' | 'state'): FoldResult {
    const b = this.boxes.get(id);
    if (!b) return 'cleared';
    if (kind === 'status') {
      b.online = null;
      b.statusSeq++;
    } else {
      b.state = null;
      b.stateVersion = null;
      b.meetingId = null;
      b.ota = null;
      b.faults = [];
      b.stateSeq++;
    }
    if (b.online === null && b.state === null) this.boxes.delete(id);
    return 'cleared';
  }
}

export interface FleetCounts {
  online: number;
  offline: number;
  byState: Record<string, number>;
}

/** Counts for `ep fleet list --json`. A box with no status is neither online nor offline. */
export function countBoxes(boxes: readonly BoxView[]): FleetCounts {
  const byState: Record<string, number> = {};
  let online = 0;
  let offline = 0;
  for (const b of boxes) {
    if (b.online === true) online++;
    else if (b.online === false) offline++;
    const k = b.state ?? 'unknown';
    byState[k] = (byState[k] ?? 0) + 1;
  }
  return { online, offline, byState };
}
