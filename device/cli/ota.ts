/**
 * `ep ota …`: the release side of over-the-air updates (docs/ota.md).
 *
 *   ep ota keygen --out DIR                       an Ed25519 key pair: DIR/ota-key.pem (keep it
 *                                                 offline), DIR/ota-key.pub.pem (provision it)
 *   ep ota pack --version V --arch A --out DIR [--base-url URL] [--expires-days N]
 *                                                 the built app with its production node_modules:
 *                                                 DIR/ep-V-A.tar.gz, .manifest.json (unsigned),
 *                                                 .index.json(.gz) and DIR/objects/ (ota/pack.ts)
 *   ep ota sign --key KEY MANIFEST                writes MANIFEST.sig (base64 Ed25519 over the exact bytes)
 *   ep ota verify --pubkey P [--pubkey P2…] MANIFEST [BUNDLE]
 *                                                 exit 0 only when the signature, the expiry and
 *                                                 (with BUNDLE) the size and sha256 all hold
 *
 * Exit codes: 0 ok, 1 a check failed (the reason on stderr), 2 a usage error.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { distPath } from '../../lib/index.js';
import { checkBundleFile, checkSignature, decodeManifest, generateKeys, loadTransfer, readPublicKey, signBytes } from '../../ota/index.js';

type Out = (s: string) => void;

export const OTA_USAGE = `usage:
  ep ota keygen --out DIR
  ep ota pack --version V --arch arm64|armhf|x64 --out DIR [--base-url URL] [--expires-days N]
  ep ota sign --key PRIVATE_KEY_PEM MANIFEST
  ep ota verify --pubkey PUBLIC_KEY_PEM [--pubkey …] MANIFEST [BUNDLE]`;

async function keygen(argv: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { out: { type: 'string' } }, strict: true });
  if (!values.out) return (err(`ep ota keygen: --out DIR is required\n${OTA_USAGE}`), 2);
  const dir = path.resolve(values.out);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const priv = path.join(dir, 'ota-key.pem');
  const pub = path.join(dir, 'ota-key.pub.pem');
  if (await stat(priv).then(() => true, () => false)) return (err(`ep ota keygen: ${priv} exists; not overwritten`), 1);
  const k = generateKeys();
  await writeFile(priv, k.privateKeyPem, { mode: 0o600, flag: 'wx' });
  await writeFile(pub, k.publicKeyPem, { mode: 0o644 });
  out(`key ${k.keyId}: private ${priv} (keep it offline), public ${pub} (provision it on the boxes)`);
  return 0;
}

const mb = (n: number): string => (n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`);

async function packCmd(argv: string[], out: Out, err: Out): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { version: { type: 'string' }, arch: { type: 'string' }, out: { type: 'string' }, 'base-url': { type: 'string' }, 'expires-days': { type: 'string' } },
    strict: true,
  });
  if (!values.version || !values.arch || !values.out) return (err(`ep ota pack: --version, --arch and --out are required\n${OTA_USAGE}`), 2);
  const days = values['expires-days'] === undefined ? undefined : Number(values['expires-days']);
  if (days !== undefined && !Number.isInteger(days)) return (err(`ep ota pack: --expires-days must be a whole number of days\n${OTA_USAGE}`), 2);
  const { DEFAULT_BASE_URL, isPackError, pack } = await loadTransfer();
  try {
    const r = await pack({ root: path.dirname(distPath(import.meta.url)), version: values.version, arch: values.arch, outDir: values.out, baseUrl: values['base-url'], expiresDays: days });
    const rel = (f: string): string => (path.relative(process.cwd(), f).startsWith('..') ? f : path.relative(process.cwd(), f) || '.');
    out(`packed ${values.version} for ${values.arch} in ${(r.ms / 1000).toFixed(1)} s:`);
    out(`  bundle    ${rel(r.bundle.file)}  ${mb(r.bundle.size)} (${r.index.entries} entries, ${mb(r.treeBytes)} unpacked), sha256 ${r.bundle.sha256}`);
    out(`  index     ${rel(r.index.file)}  ${mb(r.index.size)}; .gz ${mb(r.index.gzSize)} (the manifest's files.index)`);
    out(`  objects   ${rel(r.objects.dir)}/  ${r.objects.files} files, ${mb(r.objects.bytes)} (${r.objects.added} new)`);
    out(`  manifest  ${rel(r.manifest)}  unsigned${r.removedSig ? ` (the old ${rel(r.removedSig)} removed)` : ''}`);
    if (!values['base-url']) out(`  note: its URLs start ${DEFAULT_BASE_URL}; pack again with --base-url URL (where ${rel(path.dirname(r.manifest))} is served) before signing`);
    out('next:');
    out(`  ep ota sign --key ota-key.pem ${rel(r.manifest)}`);
    out(`  ep ota verify --pubkey ota-key.pub.pem ${rel(r.manifest)} ${rel(r.bundle.file)}`);
    return 0;
  } catch (e) {
    if (!isPackError(e)) throw e;
    err(`ep ota pack: ${e.message}`);
    return 1;
  }
}

async function sign(argv: string[], out: Out, err: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { key: { type: 'string' } }, allowPositionals: true, strict: true });
  if (!values.key || positionals.length !== 1) return (err(`ep ota sign: --key and one MANIFEST are required\n${OTA_USAGE}`), 2);
  const manifestFile = path.resolve(positionals[0]!);
  const bytes = await readFile(manifestFile);
  const decoded = decodeManifest(bytes);
  if (!decoded.ok) return (err(`ep ota sign: not signed, the manifest is invalid:\n  ${decoded.problems.join('\n  ')}`), 1);
  await writeFile(`${manifestFile}.sig`, signBytes(bytes, await readFile(values.key, 'utf8')));
  out(`signed ${decoded.manifest.name} ${decoded.manifest.version}: ${manifestFile}.sig`);
  return 0;
}

async function verifyCmd(argv: string[], out: Out, err: Out): Promise<number> {
  const { values, positionals } = parseArgs({ args: argv, options: { pubkey: { type: 'string', multiple: true } }, allowPositionals: true, strict: true });
  if (!values.pubkey?.length || positionals.length < 1 || positionals.length > 2) return (err(`ep ota verify: --pubkey and a MANIFEST are required\n${OTA_USAGE}`), 2);
  const [manifestFile, bundleFile] = positionals.map((p) => path.resolve(p));
  const trusted = await Promise.all(values.pubkey.map(async (p, i) => readPublicKey(await readFile(p, 'utf8'), `--pubkey #${i + 1} (${p})`)));
  const bytes = await readFile(manifestFile!);
  const decoded = decodeManifest(bytes);
  if (!decoded.ok) return (err(`FAILED bad_manifest: ${decoded.problems.join('; ')}`), 1);
  const sig = await readFile(`${manifestFile}.sig`, 'utf8').catch(() => null);
  const s = checkSignature(bytes, sig, trusted, decoded.manifest.keyId);
  if (!s.ok) return (err(`FAILED ${s.code}: ${s.message}`), 1);
  if (Date.parse(decoded.manifest.expiresAt) <= Date.now()) return (err(`FAILED expired: the manifest expired at ${decoded.manifest.expiresAt}`), 1);
  if (bundleFile) {
    const b = await checkBundleFile(bundleFile, decoded.manifest.bundle);
    if (!b.ok) return (err(`FAILED ${b.code}: ${b.message}`), 1);
  }
  out(`OK: ${decoded.manifest.name} ${decoded.manifest.version} signed by key ${s.keyId}, expires ${decoded.manifest.expiresAt}${bundleFile ? `, bundle ${decoded.manifest.bundle.size} bytes, sha256 matches` : ''}`);
  return 0;
}

export async function otaCommand(argv: string[], out: Out, err: Out): Promise<number> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'keygen':
      return keygen(rest, out, err);
    case 'pack':
      return packCmd(rest, out, err);
    case 'sign':
      return sign(rest, out, err);
    case 'verify':
      return verifyCmd(rest, out, err);
    default:
      err(`ep ota: unknown subcommand ${JSON.stringify(sub ?? '')}\n${OTA_USAGE}`);
      return 2;
  }
}
