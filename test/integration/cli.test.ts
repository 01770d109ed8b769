/**
 * The `ep` command as a user runs it: the compiled CLI in a child process.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const CLI = path.join(ROOT, 'dist', 'device', 'cli', 'ep.js');

function ep(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: ROOT, timeout: timeoutMs }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const isPng = async (f: string): Promise<boolean> => (await readFile(f)).subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

describe('ep CLI', () => {
  it('ep demo: the box joins the hub meeting by itself, media flows, pictures written, exit 0', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'ep-demo-'));
    const r = await ep(['demo', '--seconds', '3', '--out', out], 90_000);
    expect(r.stderr, r.stdout).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/state in_meeting in camlo-2026-11-22/);
    expect(r.stdout).toMatch(/state idle/);
    expect(r.stdout).toMatch(/health cpu/);
    expect(await isPng(path.join(out, 'hub-received.png'))).toBe(true);
    expect(await isPng(path.join(out, 'box-displayed.png'))).toBe(true);
    const log = await readFile(path.join(out, 'agent.log'), 'utf8');
    // aedes speaks MQTT 3.1.1 only: the box's MQTT 5 connect is refused and it falls back.
    expect(log).toContain('"evt":"mqtt.fallback_311"');
    expect(log).toMatch(/"evt":"mqtt.connected","sessionPresent":false,"protocolVersion":4/);
    expect(log.split('\n').filter(Boolean).every((l) => typeof JSON.parse(l).evt === 'string' || JSON.parse(l).msg !== undefined)).toBe(true);
  }, 120_000);

  it('ep media loopback writes both pictures and reports the frame rates', async () => {
    const out = await mkdtemp(path.join(os.tmpdir(), 'ep-loop-'));
    const r = await ep(['media', 'loopback', '--seconds', '6', '--out', out], 90_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/OK: the hub received \d+(\.\d)? fps, the box displayed \d+(\.\d)? fps/);
    expect(await isPng(path.join(out, 'hub-received.png'))).toBe(true);
    expect(await isPng(path.join(out, 'box-displayed.png'))).toBe(true);
  }, 120_000);

  it('ep run with a bad config lists every problem by path and exits 78', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ep-cfg-'));
    const f = path.join(dir, 'config.json');
    await writeFile(f, JSON.stringify({ deviceId: 'X', groupId: 'camlo', mqtt: { url: 'ftp://x' }, dataDir: dir, extra: 1 }));
    const r = await ep(['run', '--config', f]);
    expect(r.code).toBe(78);
    expect(r.stderr).toContain(`the configuration ${f} is not valid`);
    for (const p of ['deviceId: must match', 'name: is required', 'mqtt.url: must match', 'extra: unknown field']) expect(r.stderr).toContain(p);
  });

  it('ep probe --json prints the capabilities; ep schemas --check finds docs/schemas current', async () => {
    const p = await ep(['probe', '--json']);
    expect(p.code).toBe(0);
    const caps = JSON.parse(p.stdout) as { elements: Record<string, boolean> };
    expect(caps.elements.x264enc).toBe(true);
    const s = await ep(['schemas', '--check']);
    expect(s.code, s.stderr).toBe(0);
  });

  it('an unknown command is a usage error', async () => {
    const r = await ep(['dance']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "dance"');
  });
});
