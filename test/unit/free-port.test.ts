/** freePort (gst-pipelines/local-hub.ts): ports for listeners, kept out of the kernel's ephemeral range. */
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { belowEphemeral, freePort } from '../../gst-pipelines/local-hub.js';

describe('freePort', () => {
  it('picks below the ephemeral range, and the port binds for both UDP and TCP', async () => {
    const [low, high] = belowEphemeral();
    for (let i = 0; i < 5; i++) {
      const port = await freePort();
      expect(port).toBeGreaterThanOrEqual(low);
      expect(port).toBeLessThan(high);
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((resolve) => udp.close(() => resolve()));
      const tcp = createServer();
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(port, '127.0.0.1', () => resolve());
      });
      await new Promise<void>((resolve) => tcp.close(() => resolve()));
    }
  });

  it("reads the range's start from ip_local_port_range; the Linux default without it", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ep-ports-'));
    try {
      const f = path.join(dir, 'range');
      await writeFile(f, '40000\t60999\n');
      expect(belowEphemeral(f)).toEqual([20000, 40000]);
      await writeFile(f, '10000 60999');
      expect(belowEphemeral(f)).toEqual([8000, 10000]);
      expect(belowEphemeral(path.join(dir, 'missing'))).toEqual([20000, 32768]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
