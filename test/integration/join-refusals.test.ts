/**
 * Issue 13 (12) and (8) through a real agent on a real Mosquitto: a join the box cannot
 * plan is refused before anything changes, and the reply says whose fault it is. A valid
 * join on a box with no H.264 encoder (this machine's probe with its encoders taken
 * away) is `failed`, saying why; a join spec the box cannot carry is `bad_request`
 * naming the field (`args.send.url`, `args.send.streamId`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createContract } from '../../device/contract/validate.js';
import { replySchema } from '../../device/contract/schemas.js';
import { ENCODER_PREFERENCE } from '../../gst-pipelines/plan/codecs.js';
import type { Capabilities, MediaJoinSpec } from '../../gst-pipelines/types.js';
import { HubClient, TestBox, type Reply } from './helpers/hub-client.js';
import { Resources, capabilities } from './helpers/media.js';
import { Mosquitto } from './helpers/mosquitto.js';

const GROUP = 'grp-refuse';
const NO_ENCODER = 'box-noenc';
const BOX = 'box-refuse';
const validReply = createContract().compile(replySchema);

const res = new Resources();
let hub: HubClient;

const spec = (over: Partial<MediaJoinSpec['send']> = {}): MediaJoinSpec => ({
  meetingId: 'mtg-refuse',
  title: 'Họp thử',
  send: { url: 'srt://127.0.0.1:9', streamId: 'publish:g/box', ...over },
  receive: { url: 'srt://127.0.0.1:9', streamId: 'read:g/program' },
});

async function join(device: string, s: MediaJoinSpec): Promise<Reply> {
  const id = await hub.send({ device }, 'join', s as unknown as Record<string, unknown>);
  const replies = await hub.repliesAfterGrace(id, { deviceId: device });
  expect(replies).toHaveLength(1);
  expect(validReply(replies[0]), JSON.stringify(validReply.errors)).toBe(true);
  return replies[0]!;
}

beforeAll(async () => {
  const caps = await capabilities();
  const noEncoder: Capabilities = { ...caps, elements: { ...caps.elements, ...Object.fromEntries(ENCODER_PREFERENCE.map((e) => [e, false])) } };
  const broker = await Mosquitto.start({ devices: { [NO_ENCODER]: GROUP, [BOX]: GROUP } });
  res.add('mosquitto', () => broker.stop());
  hub = await HubClient.connect({ url: broker.url, tls: broker.tls('hub') });
  res.add('hub client', () => hub.close());
  for (const [deviceId, c] of [
    [NO_ENCODER, noEncoder],
    [BOX, caps],
  ] as const) {
    const b = await TestBox.start({ deviceId, groupId: GROUP, broker, caps: c });
    res.add(deviceId, () => b.dispose());
    await hub.waitState(deviceId, (s) => s.state === 'idle', 20_000);
  }
}, 60_000);

afterAll(async () => {
  await res.release();
}, 60_000);

describe('join refusals: whose fault, and which field', () => {
  it('a valid join on a box with no H.264 encoder is failed (the box cannot), not bad_request', async () => {
    const r = await join(NO_ENCODER, spec());
    expect(r.ok).toBe(false);
    expect(r.error?.code).toBe('failed');
    expect(r.error?.message).toMatch(/no H\.264 encoder/);
    expect(r.error?.message).not.toMatch(/^args\./);
  });

  it('a spec the box cannot carry is bad_request, naming the field', async () => {
    const url = await join(BOX, spec({ url: 'srt://hub"x:1' }));
    expect(url.error).toMatchObject({ code: 'bad_request' });
    expect(url.error?.message).toMatch(/^args\.send\.url: srt:\/\/ URL host must be/);
    const nul = await join(BOX, spec({ streamId: 'publish:g/\u0000box' }));
    expect(nul.error).toEqual({ code: 'bad_request', message: 'args.send.streamId: contains a NUL character' });
    const long = await join(BOX, spec({ streamId: 'ư'.repeat(300) }));
    expect(long.error).toEqual({ code: 'bad_request', message: 'args.send.streamId: is 600 bytes in UTF-8; SRT carries at most 512' });
    // Refused before anything changed: the box is still idle, in no meeting.
    const state = hub.of('state', BOX).at(-1)?.json as { state?: string; meeting?: unknown } | undefined;
    expect(state).toMatchObject({ state: 'idle', meeting: null });
  });
});
