export { compareVersions, parseVersion } from './version.js';
export type { Version } from './version.js';
export { checkSignature, generateKeys, keyIdOf, readPublicKey, signBytes } from './signature.js';
export type { KeyPair, SignatureCheck } from './signature.js';
export { trustedNow } from './trusted-time.js';
export type { TimeFacts } from './trusted-time.js';
export { MANIFEST_MAX_BYTES, OTA_ARCHES, checkInstallable, decodeManifest, otaManifestSchema } from './manifest.js';
export type { InstallCheck, InstallFacts, ManifestDecode, OtaArch, OtaManifest, RefusalCode } from './manifest.js';
