/**
 * The technician's commands as a user runs them (`ep` in a child process): `ep status` and
 * `ep selftest` against a real ControlServer answering fixtures; `ep logs` from a real
 * file and from a scriptable fake `journalctl` on PATH (a host boundary) that records its
 * argv, including `-f` ended by SIGINT; the SRT handshake check against a real listening
 * srt-live-transmit. Media group: the handshake runs gst-launch-1.0.
 */
import { execFile, spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ControlServer } from '../../device/control-socket.js';
import { ledFor, problemsOf, type FieldView } from '../../device/field/model.js';
import { runSrtHandshake } from '../../device/selftest.js';
import { silentLogger } from '../../lib/index.js';
import { freePorts } from './helpers/media.js';
import { fieldView } from '../fakes/index.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const EP = path.join(ROOT, 'device', 'cli', 'ep.ts');
const GUARD_MS = 30_000;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'ep-field-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function ep(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', EP, ...args], { cwd: ROOT, env, timeout: GUARD_MS }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const view: FieldView = fieldView({ name: 'Xã Thanh Hà', groupId: 'huyen-a', version: '1.4.0', faults: ['under_voltage'], now: 1_780_000_000_000 });

async function agentSocket(name: string, answer: (command: string) => unknown): Promise<{ socket: string; asked: string[]; stop: () => Promise<void> }> {
  const socket = path.join(dir, `${name}.sock`);
  const asked: string[] = [];
  const server = new ControlServer({
    path: socket,
    deviceId: 'cam-thanh',
    log: silentLogger(),
    handler: async (req) => {
      asked.push(req.command);
      const r = answer(req.command);
      return r === undefined ? { ok: false, error: { code: 'unknown_command', message: req.command } } : { ok: true, result: r };
    },
  });
  await server.start();
  return { socket, asked, stop: () => server.stop() };
}

describe('ep status and ep selftest over the control socket', () => {
  it('ep status: one plain screen (no escape codes without a TTY), --json the whole object, 3 when not running', async () => {
    const status = { provisioned: true, deviceId: 'cam-thanh', groupId: 'huyen-a', name: 'Xã Thanh Hà', hub: { url: 'mqtts://hub.example:8883', connected: true }, state: 'idle', meeting: null, ota: null, faults: view.faults, version: '1.4.0', field: view, led: ledFor(view), problems: problemsOf(view), recentErrors: ['{"level":50,"time":1780000000000,"msg":"camera stalled"}'] };
    const a = await agentSocket('status', (c) => (c === 'status' ? status : undefined));
    try {
      const r = await ep(['status', '--socket', a.socket], { ...process.env, FORCE_COLOR: '1' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).not.toContain('\x1b');
      expect(r.stdout).toMatch(/^state\s+idle — Sẵn sàng — chờ cuộc họp \/ Ready — waiting for the next meeting$/m);
      expect(r.stdout).toMatch(/^LEDs\s+2 pulses, pause — Nguồn điện yếu \/ Weak power supply$/m);
      expect(r.stdout).toContain('    Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng');
      expect(r.stdout).toMatch(/^ {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\d camera stalled$/m);
      const j = await ep(['status', '--json', '--socket', a.socket]);
      expect(JSON.parse(j.stdout)).toEqual(status);
      expect(a.asked).toEqual(['status', 'status']);
    } finally {
      await a.stop();
    }
    const gone = await ep(['status', '--socket', path.join(dir, 'nothing.sock')]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('the agent is not running');
  });

  it('ep selftest: the table with advice, exit 1 on a failure, 0 when all pass, 3 when not running', async () => {
    let report: unknown = {
      ok: false,
      checks: [
        { check: 'encoder', ok: true, detail: 'x264enc: ran in 300 ms' },
        { check: 'power', ok: false, detail: 'under-voltage now', advice: { vi: 'Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng', en: 'Weak power: replace the power adapter with a genuine 5V/3A one' } },
      ],
    };
    const a = await agentSocket('selftest', (c) => (c === 'selftest' ? report : undefined));
    try {
      const r = await ep(['selftest', '--socket', a.socket]);
      expect(r.code).toBe(1);
      expect(r.stdout.split('\n')).toEqual(['PASS  encoder   x264enc: ran in 300 ms', 'FAIL  power     under-voltage now', '                Nguồn điện yếu: thay bộ nguồn 5V/3A chính hãng', '                Weak power: replace the power adapter with a genuine 5V/3A one', '', '1 of 2 checks FAILED', '']);
      expect(JSON.parse((await ep(['selftest', '--json', '--socket', a.socket])).stdout)).toEqual(report);
      report = { ok: true, checks: [{ check: 'disk', ok: true, detail: '50 % free' }] };
      const good = await ep(['selftest', '--socket', a.socket]);
      expect(good.code).toBe(0);
      expect(good.stdout).toContain('all 1 checks passed');
      expect(a.asked).toEqual(['selftest', 'selftest', 'selftest']);
    } finally {
      await a.stop();
    }
    const gone = await ep(['selftest', '--socket', path.join(dir, 'nothing.sock')]);
    expect(gone.code).toBe(3);
    expect(gone.stderr).toContain('ep selftest: the agent is not running');
  });
});

const PINO = (time: number, level: number, msg: string, extra: Record<string, unknown> = {}): string => JSON.stringify({ level, time, pid: 7, hostname: 'box', module: 'media', ...extra, msg });

/** A fake journalctl: records its argv, prints the lines it is given, and with -f one more every 100 ms until killed. */
async function fakeJournalctl(binDir: string, lines: string[]): Promise<string> {
  const argvFile = path.join(binDir, 'argv.json');
  const script = `#!${process.execPath}
const fs = require('node:fs');
fs.writeFileSync(${JSON.stringify(argvFile)}, JSON.stringify(process.argv.slice(2)));
for (const l of ${JSON.stringify(lines)}) process.stdout.write(l + '\\n');
if (process.argv.includes('-f')) { let n = 0; setInterval(() => process.stdout.write(JSON.stringify({ level: 30, time: Date.now(), msg: 'tick ' + (++n) }) + '\\n'), 100); }
`;
  await writeFile(path.join(binDir, 'journalctl'), script);
  await chmod(path.join(binDir, 'journalctl'), 0o755);
  return argvFile;
}

describe('ep logs', () => {
  it('--file: pino lines pretty, other lines as they are; --lines, --since and --json', async () => {
    const file = path.join(dir, 'agent.log');
    const t0 = Date.UTC(2026, 11, 6, 8, 0, 0);
    await writeFile(file, [PINO(t0, 30, 'agent started'), 'Segmentation fault (core dumped)', PINO(t0 + 60_000, 50, 'camera stalled', { err: 'no buffer for 3 s' }), PINO(t0 + 120_000, 40, 'hub unreachable'), ''].join('\n'));
    const r = await ep(['logs', '--file', file]);
    expect(r.code).toBe(0);
    const out = r.stdout.split('\n');
    expect(out[0]).toMatch(/^\[.*\] INFO: agent started$/);
    expect(out[1]).toBe('    module: "media"');
    expect(out[2]).toBe('Segmentation fault (core dumped)');
    expect(r.stdout).toMatch(/ERROR: camera stalled\n {4}module: "media"\n {4}err: "no buffer for 3 s"/);
    expect(r.stdout).not.toContain('"level"');
    expect(r.stdout).not.toContain('\x1b');
    const two = await ep(['logs', '--file', file, '--lines', '2']);
    expect(two.stdout).not.toContain('agent started');
    expect(two.stdout).toContain('camera stalled');
    expect(two.stdout).toContain('WARN: hub unreachable');
    const since = await ep(['logs', '--file', file, '--since', new Date(t0 + 90_000).toISOString()]);
    expect(since.stdout).toContain('hub unreachable');
    expect(since.stdout).not.toContain('camera stalled');
    expect(since.stdout).toContain('Segmentation fault'); // a line without a time is kept
    const json = await ep(['logs', '--file', file, '--json', '--lines', '1']);
    expect(json.stdout).toBe(`${PINO(t0 + 120_000, 40, 'hub unreachable')}\n`);
    const bad = await ep(['logs', '--file', file, '--since', 'yesterday-ish']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--since must be');
    const none = await ep(['logs', '--file', path.join(dir, 'no.log')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no such log file');
  });

  it('from the journal: journalctl -u commune-endpoint -o cat with the options; no entries said plainly; no journalctl said plainly', async () => {
    const bin = await mkdtemp(path.join(dir, 'bin-'));
    const argvFile = await fakeJournalctl(bin, [PINO(Date.UTC(2026, 11, 6, 9), 30, 'joined the meeting'), 'gst: plain line']);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const r = await ep(['logs', '--since', '2026-12-06 08:00', '--lines', '50'], env);
    expect(r.code).toBe(0);
    expect(JSON.parse(await readFile(argvFile, 'utf8'))).toEqual(['-u', 'commune-endpoint', '-o', 'cat', '--no-pager', '--since', '2026-12-06 08:00']);
    expect(r.stdout).toMatch(/INFO: joined the meeting\n {4}module: "media"\ngst: plain line\n$/);
    await ep(['logs', '-n', '5'], env);
    expect(JSON.parse(await readFile(argvFile, 'utf8'))).toEqual(['-u', 'commune-endpoint', '-o', 'cat', '--no-pager', '-n', '5']);

    const empty = await mkdtemp(path.join(dir, 'bin-'));
    await fakeJournalctl(empty, []);
    const e = await ep(['logs'], { ...process.env, PATH: `${empty}:${process.env.PATH}` });
    expect(e.code).toBe(0);
    expect(e.stderr).toContain('the journal has no entries for commune-endpoint');

    const nothing = await mkdtemp(path.join(dir, 'bin-'));
    const n = await ep(['logs'], { ...process.env, PATH: nothing });
    expect(n.code).toBe(1);
    expect(n.stderr).toContain('journalctl is not installed here');
  });

  it('-f follows the journal until SIGINT, then exits 0 and leaves no journalctl behind', async () => {
    const bin = await mkdtemp(path.join(dir, 'bin-'));
    const argvFile = await fakeJournalctl(bin, ['first']);
    const child = spawn(process.execPath, ['--import', 'tsx', EP, 'logs', '-f'], { cwd: ROOT, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    const ticks = new Promise<void>((resolve) =>
      child.stdout.on('data', (d: string) => {
        out += d;
        if (/tick 3\b/.test(out)) resolve();
      }),
    );
    const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
    await ticks;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    const code = await exited;
    clearTimeout(guard);
    expect(code).toBe(0);
    expect(out.startsWith('first\n')).toBe(true);
    expect(out).toMatch(/INFO: tick 1\n[^]*INFO: tick 2\n[^]*INFO: tick 3\n/);
    expect(JSON.parse(await readFile(argvFile, 'utf8'))).toEqual(['-u', 'commune-endpoint', '-o', 'cat', '--no-pager', '-n', '200', '-f']);
  });

  it('-f --file follows a growing file until SIGINT', async () => {
    const file = path.join(dir, 'grow.log');
    await writeFile(file, `${PINO(Date.now(), 30, 'before')}\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', EP, 'logs', '-f', '--file', file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.setEncoding('utf8');
    const seen = (re: RegExp): Promise<void> =>
      new Promise((resolve) => {
        const look = (): void => {
          if (re.test(out)) resolve();
          else setTimeout(look, 50);
        };
        look();
      });
    child.stdout.on('data', (d: string) => (out += d));
    const guard = setTimeout(() => child.kill('SIGKILL'), GUARD_MS);
    await seen(/INFO: before/);
    await writeFile(file, `${PINO(Date.now(), 50, 'after')}\nhalf a li`, { flag: 'a' });
    await seen(/ERROR: after/);
    expect(out).not.toContain('half a li'); // a partial line waits for its end
    await writeFile(file, 'ne\n', { flag: 'a' });
    await seen(/half a line/);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    clearTimeout(guard);
  });
});

describe('the SRT handshake check against a real listener (srt-live-transmit)', () => {
  it('accepted with the right passphrase; refused with a wrong one; no listener fails; the passphrase never shows', async () => {
    const [port] = (await freePorts(1)) as [number];
    const pass = 'district-secret-42';
    const listener = spawn('srt-live-transmit', ['-v', `srt://:${port}?mode=listener&passphrase=${pass}`, 'file://con'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      // Listening once it says so (" listen..." after "Binding a server"); a check started before would be refused.
      let said = '';
      await new Promise<void>((resolve, reject) => {
        const look = (d: Buffer): void => {
          said += d.toString('utf8');
          if (/listen\.\.\./.test(said)) resolve();
        };
        listener.stdout.on('data', look);
        listener.stderr.on('data', look);
        listener.once('exit', (code) => reject(new Error(`srt-live-transmit exited (${code}): ${said}`)));
      });
      const good = await runSrtHandshake({ url: `srt://127.0.0.1:${port}`, streamId: 'read:meeting-1', passphrase: pass }, 5000);
      expect(good, said).toEqual({ ok: true, detail: `127.0.0.1:${port}: handshake accepted (no refusal in 5 s)` });
      const wrong = await runSrtHandshake({ url: `srt://127.0.0.1:${port}`, passphrase: 'not-the-secret-1' }, 5000);
      expect(wrong.ok).toBe(false);
      expect(wrong.detail).toMatch(/passphrase/i);
      expect(wrong.detail).not.toContain('not-the-secret-1');
    } finally {
      listener.kill('SIGKILL');
    }
    const closed = await runSrtHandshake({ url: `srt://127.0.0.1:${port}`, passphrase: pass }, 8000);
    expect(closed.ok).toBe(false);
    expect(closed.detail).toContain(`127.0.0.1:${port}:`);
    expect(closed.detail).not.toContain(pass);
    expect(await runSrtHandshake({ url: 'http://hub.example/x' }, 1000)).toEqual({ ok: false, detail: 'the hub media address is not an srt://host:port URL' });
  }, 60_000);
});
