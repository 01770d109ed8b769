/** freePort (gst-pipelines/local-hub.ts): ports for listeners, kept out of the kernel's ephemeral range. */
import { createSocket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, outsideEphemeral } from '../../gst-pipelines/hub/local-hub.js';

describe('freePort', () => {
  it('picks outside the ephemeral range, and the port binds for both UDP and TCP', async () => {
    const [low, high] = outsideEphemeral() ?? [1024, 65536];
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

  it("reads ip_local_port_range: below it, above it when there is no room below, none when neither has room", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'ep-ports-'));
    try {
      const f = path.join(dir, 'range');
      const at = async (text: string): Promise<[number, number] | null> => (await writeFile(f, text), outsideEphemeral(f));
      expect(await at('32768\t60999\n')).toEqual([20000, 32768]);
      expect(await at('10000 60999')).toEqual([1024, 10000]);
      expect(await at('1024 60999')).toEqual([61000, 65536]);
      expect(await at('1025 65000')).toEqual([65001, 65536]);
      expect(await at('1024 65535')).toBeNull();
      expect(await at('500 65535')).toBeNull();
      expect(await at('garbage')).toEqual([20000, 32768]);
      expect(outsideEphemeral(path.join(dir, 'missing'))).toEqual([20000, 32768]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
