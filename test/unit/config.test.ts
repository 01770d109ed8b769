import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../device/config.js';
import { createContract, isDecodeError } from '../../device/contract/validate.js';

const contract = createContract();

async function write(obj: unknown): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-config-'));
  const f = path.join(dir, 'config.json');
  await writeFile(f, typeof obj === 'string' ? obj : JSON.stringify(obj));
  return f;
}

async function problems(obj: unknown): Promise<string[]> {
  try {
    await loadConfig(contract, await write(obj));
  } catch (e) {
    if (isDecodeError(e)) return e.problems;
    throw e;
  }
  throw new Error('expected the config to be rejected');
}

describe('agent config file', () => {
  it('the shipped example is valid apart from its certificate files, which it names', async () => {
    const example = JSON.parse(await readFile(new URL('../../device/config.example.json', import.meta.url), 'utf8')) as object;
    const p = await problems(example);
    expect(p).toEqual([
      'mqtt.caFile: cannot read /etc/commune-endpoint/ca.crt (ENOENT)',
      'mqtt.certFile: cannot read /etc/commune-endpoint/device.crt (ENOENT)',
      'mqtt.keyFile: cannot read /etc/commune-endpoint/device.key (ENOENT)',
    ]);
  });

  it('fills defaults and resolves relative paths against the file', async () => {
    const f = await write({ deviceId: 'cam-thanh', groupId: 'camlo', name: 'Xã Cẩm Thanh', mqtt: { url: 'mqtt://127.0.0.1:1883' }, dataDir: 'data' });
    const c = await loadConfig(contract, f);
    expect(c.dataDir).toBe(path.join(path.dirname(f), 'data'));
    expect(c.media).toEqual({ source: 'auto', volume: 1, micMuted: false, aec: true });
    expect(c.health.periodS).toBe(30);
    expect(c.mqtt).toMatchObject({ keepaliveS: 30, reconnectBaseMs: 1000, reconnectCapMs: 60000 });
    expect(c.name).toBe('Xã Cẩm Thanh');
  });

  it('lists every problem by path', async () => {
    const p = await problems({ deviceId: 'Bad Id', name: '', mqtt: { url: 'http://x', port: 1 }, dataDir: '/d', media: { source: 'camera' }, health: { periodS: 1 } });
    expect(p).toEqual(
      expect.arrayContaining([
        'deviceId: must match ^[a-z0-9][a-z0-9-]{2,63}$',
        'groupId: is required',
        'name: must NOT have fewer than 1 characters',
        'mqtt.url: must match ^mqtts?://',
        'mqtt.port: unknown field',
        'media.source: must be one of "auto", "test"',
        'health.periodS: must be >= 5',
      ]),
    );
    expect(p).toHaveLength(7);
  });

  it('mqtt.protocolVersion: absent (5 with the fall back to 3.1.1), 5 or 4; anything else is refused by path', async () => {
    const base = { deviceId: 'cam-thanh', groupId: 'camlo', name: 'n', dataDir: '/d' };
    const auto = await loadConfig(contract, await write({ ...base, mqtt: { url: 'mqtt://h' } }));
    expect(auto.mqtt.protocolVersion).toBeUndefined();
    for (const v of [5, 4] as const) expect((await loadConfig(contract, await write({ ...base, mqtt: { url: 'mqtt://h', protocolVersion: v } }))).mqtt.protocolVersion).toBe(v);
    for (const bad of [3, '5', 'auto', 3.1, null]) expect(await problems({ ...base, mqtt: { url: 'mqtt://h', protocolVersion: bad } })).toEqual(['mqtt.protocolVersion: must be one of 5, 4']);
  });

  it('rejects a file that is not JSON or missing, naming the file', async () => {
    const f = await write('{ nope');
    await expect(loadConfig(contract, f)).rejects.toThrow(`${f}: not JSON`);
    await expect(loadConfig(contract, '/nonexistent/config.json')).rejects.toThrow('/nonexistent/config.json: cannot read (ENOENT)');
  });

  it('a client certificate needs both halves', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-config-'));
    await writeFile(path.join(dir, 'c.crt'), 'x');
    const p = await problems({ deviceId: 'cam-thanh', groupId: 'camlo', name: 'n', mqtt: { url: 'mqtts://h', certFile: path.join(dir, 'c.crt') }, dataDir: '/d' });
    expect(p).toEqual(['mqtt.certFile/mqtt.keyFile: a client certificate needs both']);
  });
});

describe('the systemd unit', () => {
  it('runs the launcher (never replaced by an update), which runs the agent with the Node flags the benchmark measures', async () => {
    const { AGENT_NODE_FLAGS } = await import('../../device/cli/run.js');
    const unit = await readFile(new URL('../../provisioning/systemd/commune-endpoint.service', import.meta.url), 'utf8');
    const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='));
    expect(exec).toBe('ExecStart=/usr/local/bin/node /opt/commune-endpoint/launcher/ota/launcher.js --config /var/lib/commune-endpoint/config.json');
    expect(unit.split('\n')).toContain('KillMode=mixed');
    const launcher = await readFile(new URL('../../ota/launcher.ts', import.meta.url), 'utf8');
    expect(launcher).toContain(`const AGENT_NODE_FLAGS = [${AGENT_NODE_FLAGS.map((f) => `'${f}'`).join(', ')}]`);
  });
});
