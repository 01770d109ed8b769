import { describe, expect, it } from 'vitest';
import { execRunCommand, pickDecoder, pickEncoder, probe } from '../../gst-pipelines/probe/probe.js';

describe('probe on this machine', () => {
  it('finds the software codecs and SRT elements of Debian GStreamer', async () => {
    const caps = await probe();
    expect(caps.gstreamerVersion).toMatch(/^1\./);
    expect(caps.elements.x264enc).toBe(true);
    expect(caps.elements.avdec_h264).toBe(true);
    expect(caps.elements.srtsink).toBe(true);
    expect(caps.elements.srtsrc).toBe(true);
    expect(caps.elements.definitely_not_an_element).toBeUndefined();
    expect(pickEncoder(caps)).not.toBeNull();
    expect(pickDecoder(caps)).not.toBeNull();
    expect(caps.board.arch).toBe(process.arch);
  });

  it('runs commands without ever throwing: missing binary and timeout give code null', async () => {
    const run = execRunCommand();
    expect((await run('ep-no-such-binary-for-probe', [], 1000)).code).toBeNull();
    expect((await run('sleep', ['5'], 100)).code).toBeNull();
    expect(await run('sh', ['-c', 'echo hi; exit 3'], 5000)).toEqual({ code: 3, stdout: 'hi\n', stderr: '' });
  });
});
