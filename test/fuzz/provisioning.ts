/**
 * The provisioning file fuzzed through provisionFromFile (provisioning/boot.ts), the first
 * boot's path, with the agent's own config check as `ep provision` wires it
 * (device/cli/provision.ts): any file is either provisioned whole — a config the agent
 * loads, a timezone that is a zone file — or refused with every problem by path and
 * nothing written but provision-status.json: no secret, no config, no /etc file. No
 * password, passphrase or key in a problem, the status file or the log.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { generateKeyPairSync } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { createContract, isDecodeError } from '../../device/contract/index.js';
import { decodeConfig } from '../../device/config.js';
import { ProvisionFileError, provisionFromFile, type ProvisionContext } from '../../provisioning/index.js';
import { createLogger } from '../../lib/index.js';
import { InputCounter, runProperty, type FuzzTarget } from './property.js';

const SECRET = 'Pr0v-S3cr3t';

interface Pems {
  cert: string;
  key: string;
  ed: string;
  rsa: string;
}

/** A client certificate and key (openssl), an Ed25519 and an RSA public key. */
function makePems(dir: string): Pems {
  const sh = (...a: string[]): void => void execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  sh('genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', 'a.key');
  sh('req', '-x509', '-key', 'a.key', '-subj', '/CN=cam-thanh', '-days', '3650', '-out', 'a.crt');
  const read = (f: string): string => execFileSync('cat', [path.join(dir, f)]).toString();
  return {
    cert: read('a.crt'),
    key: read('a.key'),
    ed: generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    rsa: generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}

/** Names: Vietnamese, emoji, and characters NFC changes in length (composition exclusions: one becomes two). */
const nameUnit = fc.constantFrom('a', 'ệ', 'Ẩ', ' ', '🙂', 'e\u0301', '\u0958', '\u2adc', 'x');

/**
 * A file: each field from its own values (good ones and the edges: a directory as the
 * timezone, names NFC makes longer, an RSA key), then up to two fields replaced by
 * anything — so most files get as far as the last check, and some break the first.
 */
function fileArb(p: Pems): fc.Arbitrary<unknown> {
  const brokerJunk = fc.record(
    {
      url: fc.constantFrom('mqtts://hub:8883', 'mqtts://u:p@hub', 'mqtts://', 'http://hub', `mqtts://${'h'.repeat(600)}`),
      username: fc.constantFrom('cam-thanh', '', 'x'.repeat(300)),
      password: fc.constantFrom(`${SECRET}-pw`, ''),
      certificate: fc.constantFrom(p.cert, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----', '-----BEGIN x'),
      key: fc.constantFrom(p.key, `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----`),
      ca: fc.constantFrom(p.cert, '-----BEGIN nothing'),
      protocolVersion: fc.constantFrom(4, 5, 3),
    },
    { requiredKeys: ['url'] },
  );
  const file = fc.record(
    {
      v: fc.constant(1),
      deviceId: fc.constantFrom('cam-thanh', 'cam-an', 'ab'),
      groupId: fc.constantFrom('camlo', 'BAD'),
      name: fc.oneof(fc.string({ unit: nameUnit, minLength: 1, maxLength: 20 }), fc.string({ unit: nameUnit, minLength: 100, maxLength: 128, size: 'max' })),
      broker: fc.oneof(
        fc.record({ url: fc.constantFrom('mqtts://hub:8883', 'mqtt://hub:1883'), password: fc.constant(`${SECRET}-pw`) }),
        fc.record({ url: fc.constant('mqtts://hub:8883'), certificate: fc.constant(p.cert), key: fc.constant(p.key), ca: fc.constant(p.cert) }),
        brokerJunk,
      ),
      ota: fc.record({ publicKeys: fc.array(fc.constantFrom(p.ed, p.ed, p.rsa, '-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----'), { minLength: 1, maxLength: 3 }) }),
      gpio: fc.record({ statusLed: fc.integer({ min: -1, max: 60 }), button: fc.integer({ min: 0, max: 53 }) }, { requiredKeys: [] }),
      timezone: fc.constantFrom('Asia/Ho_Chi_Minh', 'UTC', 'Asia', 'Mars/Base', 'Asia/../etc'),
      wifi: fc.record({ ssid: fc.constantFrom('UBND', '', 'x'.repeat(40)), psk: fc.constantFrom(`${SECRET}-wifi`, 'short'), country: fc.constantFrom('VN', 'vn'), hidden: fc.boolean() }, { requiredKeys: ['ssid', 'country'] }),
    },
    { requiredKeys: ['v', 'groupId', 'name', 'broker'] },
  );
  const field = fc.constantFrom('v', 'deviceId', 'groupId', 'name', 'broker', 'ota', 'gpio', 'timezone', 'wifi', 'extra');
  return fc.tuple(file, fc.array(fc.tuple(field, fc.jsonValue({ maxDepth: 2 })), { maxLength: 2 })).map(([f, junk]) => ({ ...f, ...Object.fromEntries(junk) }));
}

const bytesArb = (p: Pems): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 8, arbitrary: fileArb(p).map((f) => Buffer.from(JSON.stringify(f))) },
    { weight: 1, arbitrary: fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  );

/** Every file under `dir`, relative. */
async function tree(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (!e.isDirectory()) out.push(path.relative(dir, path.join(e.parentPath, e.name)));
  return out.sort();
}

function provisioning(counter: InputCounter, root: string, p: Pems): fc.IAsyncProperty<[Buffer]> {
  const contract = createContract();
  let n = 0;
  return fc.asyncProperty(bytesArb(p), async (bytes) => {
    counter.add();
    const base = path.join(root, `r${(n += 1)}`);
    const system = path.join(base, 'sys');
    const dataDir = path.join(base, 'data');
    const file = path.join(base, 'ep-provision.json');
    await mkdir(path.join(system, 'usr', 'share', 'zoneinfo', 'Asia'), { recursive: true });
    await writeFile(path.join(system, 'usr', 'share', 'zoneinfo', 'Asia', 'Ho_Chi_Minh'), 'TZif');
    await writeFile(path.join(system, 'usr', 'share', 'zoneinfo', 'UTC'), 'TZif');
    await writeFile(file, bytes);
    let logged = '';
    const ctx: ProvisionContext = {
      // As device/cli/provision.ts: the agent's config decoder, its problems the file's.
      checkConfig: async (config, baseDir) => {
        try {
          await decodeConfig(contract, config, baseDir);
        } catch (e) {
          if (isDecodeError(e)) throw new ProvisionFileError(e.problems.map((x) => `(the agent config made from it) ${x}`));
          throw e;
        }
      },
      log: createLogger({ level: 'info', destination: new Writable({ write: (c: Buffer, _e, cb) => ((logged += c.toString()), cb()) }) }),
      dataDir,
      appRoot: path.join(base, 'app'),
      owner: null,
      systemRoot: system,
      zoneinfoDir: path.join(system, 'usr', 'share', 'zoneinfo'),
      deriveDeviceId: async () => ({ id: 'ep-1234abcd', source: 'serial' }),
      now: () => Date.parse('2026-12-01T00:00:00Z'),
    };
    try {
      const r = await provisionFromFile(ctx, file, file);
      const written = await tree(dataDir).catch(() => []);
      const sysFiles = (await tree(system)).filter((f) => !f.startsWith('usr/share/zoneinfo/'));
      const status = await readFile(path.join(dataDir, 'provision-status.json'), 'utf8');
      for (const [what, text] of [['the status file', status], ['the log', logged], ['a problem', r.outcome === 'invalid' ? r.problems.join('\n') : '']] as const) if (text.includes(SECRET)) throw new Error(`a secret in ${what}`);
      if (r.outcome === 'invalid') {
        if (written.join() !== 'provision-status.json' || sysFiles.length) throw new Error(`refused, and yet written: ${[...written, ...sysFiles].join(', ')} (problems: ${r.problems.join('; ')})`);
        if (r.problems.length === 0 || r.problems.some((x) => !/^(\(the agent config made from it\) )?[^\n]+?: \S/.test(x))) throw new Error(`problems not by path: ${JSON.stringify(r.problems).slice(0, 400)}`);
        return;
      }
      if (r.outcome !== 'provisioned') throw new Error(`outcome ${r.outcome}`);
      await decodeConfig(contract, JSON.parse(await readFile(path.join(dataDir, 'config.json'), 'utf8')), dataDir);
      const tz = JSON.parse(bytes.toString()) as { timezone?: string };
      if (tz.timezone !== undefined && !(await stat(path.join(ctx.zoneinfoDir!, tz.timezone))).isFile()) throw new Error(`provisioned with timezone ${JSON.stringify(tz.timezone)}, which is not a zone file`);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
}

export const provisioningTarget: FuzzTarget = {
  name: 'provisioning',
  input: 'a provisioning file (the contract shape with odd values and Unicode names, any JSON, any bytes) through provisionFromFile',
  testRuns: 800,
  benchRuns: 10_000,
  run: async (runs, seed) => {
    const root = await mkdtemp(path.join(existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'ep-fuzz-prov-'));
    try {
      const counter = new InputCounter();
      return await runProperty('provisioning', provisioning(counter, root, makePems(root)), runs, seed, counter);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  },
};
