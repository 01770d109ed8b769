/** The kit of fakes (test/fakes) where it has logic of its own: the clock, the runner, the host tree, the host actions. */
import { readFile, stat } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock, FakeLeds, FakeRunner, FakeSystemActions, HANGS, HostTree, TIMED_OUT, hostTrees, sysfs } from '../fakes/index.js';

const trees = hostTrees();
afterAll(trees.cleanup);

describe('FakeClock', () => {
  it('fires timers in time order, ties in the order they were set, and only when advanced that far', async () => {
    const c = new FakeClock(1000);
    const seen: string[] = [];
    c.setTimeout(() => seen.push('b@20'), 20);
    c.setTimeout(() => seen.push('a@10'), 10);
    c.setTimeout(() => seen.push('c@20'), 20);
    await c.advance(9);
    expect(seen).toEqual([]);
    expect(c.now()).toBe(1009);
    await c.advance(11);
    expect(seen).toEqual(['a@10', 'b@20', 'c@20']);
    expect(c.fired).toEqual([{ at: 1010, delayMs: 10 }, { at: 1020, delayMs: 20 }, { at: 1020, delayMs: 20 }]);
    expect(c.pending).toBe(0);
  });

  it('fires a timer set by a firing timer within the same advance, at its own time; now() is the firing time', async () => {
    const c = new FakeClock(0);
    const at: number[] = [];
    c.setTimeout(() => {
      at.push(c.now());
      c.setTimeout(() => at.push(c.now()), 5);
    }, 10);
    await c.advance(100);
    expect(at).toEqual([10, 15]);
    expect(c.now()).toBe(100);
  });

  it('lets promise jobs run between timers (an await between two timers sees the first)', async () => {
    const c = new FakeClock(0);
    const seen: string[] = [];
    c.setTimeout(() => void Promise.resolve().then(() => seen.push('after first')), 1);
    c.setTimeout(() => seen.push('second'), 2);
    await c.advance(2);
    expect(seen).toEqual(['after first', 'second']);
  });

  it('repeats intervals until cleared, and cleared timers never fire', async () => {
    const c = new FakeClock(0);
    let ticks = 0;
    const iv = c.setInterval(() => ticks++, 100);
    const t = c.setTimeout(() => ticks += 1000, 50);
    c.clearTimeout(t);
    await c.advance(350);
    expect(ticks).toBe(3);
    c.clearInterval(iv);
    await c.advance(1000);
    expect(ticks).toBe(3);
  });

  it('next() jumps to the next timer; false when none is set', async () => {
    const c = new FakeClock('2026-01-01T00:00:00Z');
    let fired = false;
    c.setTimeout(() => (fired = true), 60_000);
    expect(c.nextAt()).toBe(Date.parse('2026-01-01T00:01:00Z'));
    expect(await c.next()).toBe(true);
    expect(fired).toBe(true);
    expect(await c.next()).toBe(false);
  });
});

describe('FakeRunner', () => {
  it('answers by command line, records calls and timeouts; an unknown command is not installed', async () => {
    const r = new FakeRunner({ 'vcgencmd get_throttled': 'throttled=0x0\n', 'false': { code: 1, stderr: 'no' } });
    expect(await r.run('vcgencmd', ['get_throttled'], 2000)).toEqual({ code: 0, stdout: 'throttled=0x0\n', stderr: '' });
    expect(await r.run('false', [], 10)).toEqual({ code: 1, stdout: '', stderr: 'no' });
    expect(await r.run('v4l2-ctl', ['--list-devices'], 5)).toMatchObject({ code: null, stderr: expect.stringContaining('ENOENT') });
    expect(r.calls).toEqual(['vcgencmd get_throttled', 'false', 'v4l2-ctl --list-devices']);
    expect(r.timeouts).toEqual([2000, 10, 5]);
  });

  it('fails on cue once, then answers its script again; times out or hangs when told', async () => {
    const r = new FakeRunner({ 'gst-inspect-1.0 --version': 'GStreamer 1.22.0\n' }).failNext('gst-inspect-1.0 --version').failNext('gst-inspect-1.0 --version', TIMED_OUT);
    expect((await r.run('gst-inspect-1.0', ['--version'], 100)).code).toBe(1);
    expect(await r.run('gst-inspect-1.0', ['--version'], 100)).toMatchObject({ code: null, stderr: expect.stringContaining('timed out after 100 ms') });
    expect((await r.run('gst-inspect-1.0', ['--version'], 100)).stdout).toBe('GStreamer 1.22.0\n');
    r.answer('sleep 9', HANGS);
    const hung = await Promise.race([r.run('sleep', ['9'], 1).then(() => 'answered'), new Promise((res) => setImmediate(() => setImmediate(() => res('still waiting'))))]);
    expect(hung).toBe('still waiting');
  });

  it('replaces vars in its script keys (a fake /dev)', async () => {
    const r = new FakeRunner({ 'v4l2-ctl -d {dev}/video0 --info': 'uvcvideo' }, { '{dev}': '/tmp/x/dev' });
    expect((await r.run('v4l2-ctl', ['-d', '/tmp/x/dev/video0', '--info'], 1)).stdout).toBe('uvcvideo');
  });
});

describe('HostTree', () => {
  it('writes the sysfs builders where host-paths.ts looks for them', async () => {
    const t = await trees.tree({ ...sysfs.throttled('50005\n'), ...sysfs.led('ACT'), ...sysfs.drm('card1-HDMI-A-1', 'connected', '1920x1080\n'), ...sysfs.asound('00-00: x : y : playback 1\n', ' 0 [x ]: y\n'), ...sysfs.model('Raspberry Pi 4'), ...sysfs.timesynced() });
    const p = t.paths;
    expect(await readFile(p.throttled, 'utf8')).toBe('50005\n');
    expect(await readFile(`${p.ledsClass}/ACT/trigger`, 'utf8')).toContain('[mmc0]');
    expect(await readFile(`${p.drmClass}/card1-HDMI-A-1/status`, 'utf8')).toBe('connected\n');
    expect(await readFile(p.asoundPcm, 'utf8')).toContain('playback');
    expect(await readFile(p.asoundCards, 'utf8')).toContain('[x ]');
    expect(await readFile(p.deviceTreeModel, 'utf8')).toBe('Raspberry Pi 4\0');
    expect((await stat(p.timesyncSynchronized)).isFile()).toBe(true);
    expect(t.env).toEqual({ EP_HOST_ROOT: t.root });
  });

  it('cleans up after itself', async () => {
    const t = await HostTree.create(sysfs.v4l2('video0', 'cam'));
    await t.cleanup();
    await expect(stat(t.root)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe('FakeLeds and FakeSystemActions', () => {
  it('record what they were asked and fail on cue, once', async () => {
    const leds = new FakeLeds().failNext();
    await expect(leds.blink(1000)).rejects.toThrow(/permission denied/);
    expect(await leds.blink(2000)).toEqual({ leds: ['fake'] });
    expect({ asked: leds.asked, blinks: leds.blinks }).toEqual({ asked: [1000, 2000], blinks: [2000] });

    const sys = new FakeSystemActions().failNext('reboot');
    await sys.restartService();
    await expect(sys.reboot()).rejects.toThrow(/reboot/);
    await sys.reboot();
    expect({ calls: sys.calls, failed: sys.failed }).toEqual({ calls: ['restartService', 'reboot', 'reboot'], failed: ['reboot'] });
  });
});
