import { describe, expect, it } from 'vitest';
import { Roster, countBoxes, listJson, listText, parseDeviceTopic } from '../../device/fleet/index.js';
import { topics } from '../../device/contract/index.js';

const TS = '2026-03-01T08:00:00Z';
const status = (over: Record<string, unknown> = {}): string => JSON.stringify({ online: true, version: '1.2.0', bootId: 'b1', groupId: 'camlo', name: 'Xã Cam Thành', ts: TS, ...over });
const state = (over: Record<string, unknown> = {}): string => JSON.stringify({ state: 'idle', meeting: null, faults: [], version: '1.2.0', ts: TS, ...over });

describe('the roster fold', () => {
  it('folds status and state into one box; the will (no groupId) keeps the group and name', () => {
    const r = new Roster();
    expect(r.fold(topics.status('cam-a'), status())).toBe('status');
    expect(r.fold(topics.state('cam-a'), state({ state: 'in_meeting', meeting: { id: 'm-1', since: TS }, faults: ['no_camera'] }))).toBe('state');
    expect(r.get('cam-a')).toMatchObject({ online: true, group: 'camlo', name: 'Xã Cam Thành', statusVersion: '1.2.0', state: 'in_meeting', meetingId: 'm-1', faults: ['no_camera'] });
    expect(r.fold(topics.status('cam-a'), JSON.stringify({ online: false, ts: TS }))).toBe('status');
    expect(r.get('cam-a')).toMatchObject({ online: false, group: 'camlo', name: 'Xã Cam Thành', statusVersion: '1.2.0' });
    expect(r.onlineOf('camlo')).toEqual([]);
    // A box whose only status is its will has no group.
    r.fold(topics.status('cam-b'), JSON.stringify({ online: false, ts: TS }));
    expect(r.get('cam-b')).toMatchObject({ online: false, group: null });
  });

  it('ignores and counts malformed messages, keeping what it knew', () => {
    const r = new Roster();
    r.fold(topics.status('cam-a'), status());
    const bad = ['not json', '[]', JSON.stringify({ online: 'yes', ts: TS }), status({ extra: 1 }), state({ state: 'dancing' }), JSON.stringify({ state: 'idle' }), 'x'.repeat(70 * 1024)];
    for (const p of bad) expect(r.fold(topics.state('cam-a'), p)).toBe('malformed');
    expect(r.fold(topics.status('cam-a'), '{"online":')).toBe('malformed');
    expect(r.counts.malformed).toBe(bad.length + 1);
    expect(r.get('cam-a')).toMatchObject({ online: true, group: 'camlo', state: null });
    expect(r.size).toBe(1);
  });

  it('reads only device status/state topics with a valid id', () => {
    const r = new Roster();
    for (const t of ['ep/v1/dev/+/status', 'ep/v1/dev/AB/status', 'ep/v1/dev/cam-a/health', 'ep/v1/grp/camlo/meeting', 'ep/v1/dev/cam-a/status/x', 'other']) {
      expect(r.fold(t, status())).toBe('other');
    }
    expect(r.size).toBe(0);
    expect(parseDeviceTopic(topics.reply('cam-a'))).toEqual({ deviceId: 'cam-a', kind: 'reply' });
  });

  it('holds at most maxBoxes boxes: the rest are ignored and counted; known boxes still update', () => {
    const r = new Roster(3);
    for (const id of ['box-1', 'box-2', 'box-3', 'box-4', 'box-5']) r.fold(topics.status(id), status());
    r.fold(topics.state('box-4'), state());
    expect(r.size).toBe(3);
    expect(r.list().map((b) => b.id)).toEqual(['box-1', 'box-2', 'box-3']);
    expect(r.counts.overCap).toBe(3);
    expect(r.overCapBoxes).toBe(2);
    expect(r.fold(topics.state('box-2'), state({ state: 'updating' }))).toBe('state');
    expect(r.get('box-2')?.state).toBe('updating');
  });

  it('an empty retained payload forgets that half; both gone, the box is gone', () => {
    const r = new Roster();
    r.fold(topics.status('cam-a'), status());
    r.fold(topics.state('cam-a'), state());
    expect(r.fold(topics.state('cam-a'), '')).toBe('cleared');
    expect(r.get('cam-a')).toMatchObject({ online: true, state: null });
    r.fold(topics.status('cam-a'), Buffer.alloc(0));
    expect(r.get('cam-a')).toBeUndefined();
  });

  it('cleans what it will print: no control characters, long strings cut, faults capped', () => {
    const r = new Roster();
    r.fold(topics.status('cam-a'), status({ name: `evil\u001b[2J\u0007name${'x'.repeat(500)}` }));
    r.fold(topics.state('cam-a'), state({ faults: Array.from({ length: 100 }, (_, i) => `f${i}`) }));
    const b = r.get('cam-a');
    expect(b?.name?.startsWith('evil[2Jname')).toBe(true);
    expect([...(b?.name ?? '')].length).toBe(200);
    expect(b?.faults.length).toBe(16);
  });

  it('a groupId that is not an id is not taken as a group', () => {
    const r = new Roster();
    r.fold(topics.status('cam-a'), status({ groupId: 'ep/v1/#' }));
    expect(r.get('cam-a')?.group).toBeNull();
  });
});

describe('the list', () => {
  it('counts online, offline and states; JSON and text sorted by id', () => {
    const r = new Roster();
    r.fold(topics.status('cam-b'), status());
    r.fold(topics.state('cam-b'), state({ state: 'in_meeting', meeting: { id: 'm-1', since: TS } }));
    r.fold(topics.status('cam-a'), status({ groupId: 'other' }));
    r.fold(topics.state('cam-a'), state({ ota: { phase: 'downloading', version: '1.3.0', progress: 0.42 } }));
    r.fold(topics.status('cam-c'), JSON.stringify({ online: false, ts: TS }));
    const boxes = r.list();
    expect(countBoxes(boxes)).toEqual({ online: 2, offline: 1, byState: { idle: 1, in_meeting: 1, unknown: 1 } });
    const j = listJson(boxes, { malformed: 0, overCapBoxes: 0 });
    expect(j.boxes.map((b) => b.id)).toEqual(['cam-a', 'cam-b', 'cam-c']);
    expect(j.boxes[1]).toMatchObject({ group: 'camlo', online: true, state: 'in_meeting', meetingId: 'm-1', version: '1.2.0' });
    const text = listText(boxes, { malformed: 2, overCapBoxes: 0 });
    expect(text).toContain('downloading 1.3.0 42%');
    expect(text).toContain('3 boxes: 2 online, 1 offline; idle 1, in_meeting 1, unknown 1');
    expect(text).toContain('ignored: 2 malformed message(s)');
  });
});
