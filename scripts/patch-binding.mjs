#!/usr/bin/env node
/**
 * Patches the gstreamer-superficial 1.7.4 native binding and rebuilds it.
 *
 *   node scripts/patch-binding.mjs [bindingDir]
 *
 * bindingDir defaults to the gstreamer-superficial package this project resolves.
 * Run as the root package's `postinstall`, i.e. after npm has built the stock binding.
 *
 * What the patch fixes (see FIX below for the exact edits):
 *  - GObjectWrap::GetProperty never g_value_unset() the value it read: every read of a
 *    boxed/string/object property leaked (srtsink `stats`: ~2 KB per read).
 *  - gvalue_to_v8 never unset the temporary string GValue of its g_value_transform path.
 *  - SetProperty never unset the GValue v8_to_gvalue filled, and the caps path leaked the
 *    parsed GstCaps (set_boxed adds a ref; now take_boxed).
 *  - v8_to_gvalue can now set GstStructure-typed properties (e.g. v4l2h264enc
 *    `extra-controls`) from a string, parsed with gst_structure_from_string; a string
 *    that does not parse throws a TypeError and leaves the property unchanged.
 *    JS numbers are still set as G_TYPE_FLOAT (unchanged on purpose).
 *  - The module exports `propertyReadsFreed: true`, so JS can tell the patched build is
 *    the one loaded.
 *
 * Idempotent: each patched file carries MARKER; a file that has it is left alone. The
 * binding is rebuilt (node-gyp rebuild, in bindingDir) only when a file changed or when
 * the built .node does not export `propertyReadsFreed === true` (or does not load in this
 * node). It is built with the registry's node-gyp (the copy bundled with npm; never
 * Debian's) against the headers of the node running this script (pickNodeDir: a nodedir
 * from the environment only when its headers are this node's version, else
 * <prefix>/include/node).
 * Exit 0 on success; non-zero with a message naming the problem otherwise.
 */
/* global console */
import { createRequire } from 'node:module';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { existsSync, readFileSync, writeFileSync, realpathSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const MARKER = 'commune-patch: gvalue-unset+structure-set v1';
const EXPORT_NAME = 'propertyReadsFreed';
const EXPECTED_VERSION = '1.7.4';
const TAG = 'patch-binding:';

const die = (msg) => {
  console.error(`${TAG} ERROR: ${msg}`);
  process.exit(1);
};
const log = (msg) => console.log(`${TAG} ${msg}`);

/** file -> list of [exact old snippet, replacement]; the marker is added at the file's top. */
const FIX = {
  'GObjectWrap.cpp': [
    [
      `		GValue gv;
		memset(&gv, 0, sizeof(gv));
		g_value_init(&gv, G_PARAM_SPEC_VALUE_TYPE(spec));
		g_object_get_property(o, *name, &gv);

		info.GetReturnValue().Set(gvalue_to_v8(&gv));
`,
      `		GValue gv = G_VALUE_INIT;
		g_value_init(&gv, G_PARAM_SPEC_VALUE_TYPE(spec));
		g_object_get_property(o, *name, &gv);

		info.GetReturnValue().Set(gvalue_to_v8(&gv));
		g_value_unset(&gv);
`,
    ],
    [
      `		GValue gv;
		memset( &gv, 0, sizeof( gv ) );
		v8_to_gvalue( value, &gv, spec);
		g_object_set_property( o, *name, &gv );
`,
      `		GValue gv = G_VALUE_INIT;
		v8_to_gvalue( value, &gv, spec);
		if (G_IS_VALUE(&gv)) {
			g_object_set_property( o, *name, &gv );
			g_value_unset( &gv );
		}
`,
    ],
  ],
  'GLibHelpers.cpp': [
    [
      `		GValue b = G_VALUE_INIT;
		g_value_init(&b, G_TYPE_STRING);
		g_value_transform(gv, &b);
		return gchararray_to_v8(&b);
`,
      `		GValue b = G_VALUE_INIT;
		g_value_init(&b, G_TYPE_STRING);
		g_value_transform(gv, &b);
		Local<Value> str = gchararray_to_v8(&b);
		g_value_unset(&b);
		return str;
`,
    ],
    [
      `	        GstCaps* caps = gst_caps_from_string(*value);
	        g_value_init(gv, GST_TYPE_CAPS);
	        g_value_set_boxed(gv, caps);
	    } else {
`,
      `	        GstCaps* caps = gst_caps_from_string(*value);
	        g_value_init(gv, GST_TYPE_CAPS);
	        g_value_take_boxed(gv, caps);
	    } else if(spec->value_type == GST_TYPE_STRUCTURE) {
	        GstStructure* structure = gst_structure_from_string(*value, NULL);
	        if(!structure) {
	            Nan::ThrowTypeError("gstreamer-superficial: cannot parse the string as a GstStructure");
	            return;
	        }
	        g_value_init(gv, GST_TYPE_STRUCTURE);
	        g_value_take_boxed(gv, structure);
	    } else {
`,
    ],
  ],
  'gstreamer.cpp': [
    [
      `	Pipeline::Init(exports);
}`,
      `	Pipeline::Init(exports);
	// Tells JS this build frees property GValues and sets GstStructure properties.
	Nan::Set(exports, Nan::New("${EXPORT_NAME}").ToLocalChecked(), Nan::True());
}`,
    ],
  ],
};

function resolveBindingDir() {
  const arg = process.argv[2];
  if (arg) return path.resolve(arg);
  try {
    const req = createRequire(import.meta.url);
    return path.dirname(req.resolve('gstreamer-superficial/package.json'));
  } catch (e) {
    die(`cannot resolve gstreamer-superficial from ${path.dirname(fileURLToPath(import.meta.url))} (${e.message}); is it installed?`);
  }
}

/** Applies FIX in memory first; writes nothing unless every unpatched file has every snippet. */
function patchSources(dir) {
  const pending = [];
  for (const [file, edits] of Object.entries(FIX)) {
    const p = path.join(dir, file);
    if (!existsSync(p)) die(`${p} not found: not a gstreamer-superficial source tree?`);
    const src = readFileSync(p, 'utf8');
    if (src.includes(MARKER)) {
      log(`${file}: already patched`);
      continue;
    }
    let out = src.replace(/\r\n/g, '\n');
    for (const [oldS, newS] of edits) {
      const at = out.indexOf(oldS);
      if (at < 0 || out.indexOf(oldS, at + 1) >= 0) {
        die(
          `${p}: expected snippet ${at < 0 ? 'not found' : 'found more than once'} and no patch marker ` +
            `("${MARKER}"). This patch is for gstreamer-superficial ${EXPECTED_VERSION}; ` +
            `a different version needs the patch reviewed. Snippet:\n${oldS}`,
        );
      }
      out = out.slice(0, at) + newS + out.slice(at + oldS.length);
    }
    pending.push([p, file, `/* ${MARKER} (scripts/patch-binding.mjs) */\n` + out]);
  }
  for (const [p, file, out] of pending) {
    writeFileSync(p, out);
    log(`${file}: patched`);
  }
  return pending.length > 0;
}

function builtNodePath(dir) {
  return path.join(dir, 'build', 'Release', 'gstreamer-superficial.node');
}

/** Loads the built .node in a child process (it calls gst_init) and checks the export. */
function builtHasMarker(dir) {
  const node = builtNodePath(dir);
  if (!existsSync(node)) return false;
  const r = spawnSync(
    process.execPath,
    ['-e', `process.exit(require(${JSON.stringify(node)})[${JSON.stringify(EXPORT_NAME)}] === true ? 0 : 3)`],
    { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000, encoding: 'utf8' },
  );
  if (r.status !== 0 && r.status !== 3) {
    log(`loading ${node} failed (${r.error?.message ?? `exit ${r.status} ${r.signal ?? ''}`}): ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}`);
  }
  return r.status === 0;
}

/** True for Debian's packaged node-gyp/npm (/usr/share/nodejs): built for Debian's Node, never ours. */
const isDebianNodeGyp = (p) => {
  try {
    return realpathSync(p).startsWith('/usr/share/nodejs/');
  } catch {
    return false;
  }
};

/** The registry's node-gyp: the one bundled with the npm that runs us, else with the npm beside this node. */
function findNodeGyp() {
  const candidates = [];
  // npm sets this for lifecycle scripts (its bundled node-gyp).
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  // npm's own CLI, when run from npm.
  if (process.env.npm_execpath) {
    candidates.push(path.join(path.dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  }
  // The npm installed with this node (scripts/setup.sh: <prefix>/lib/node_modules/npm), and npm on the PATH.
  candidates.push(path.join(nodePrefix(), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  for (const d of (process.env.PATH || '').split(path.delimiter)) {
    const npm = path.join(d, 'npm');
    if (!d || !existsSync(npm)) continue;
    try {
      const cli = realpathSync(npm); // .../lib/node_modules/npm/bin/npm-cli.js
      candidates.push(path.join(path.dirname(cli), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
    } catch { /* not a symlink we can follow */ }
  }
  // A node-gyp package the project has.
  try {
    candidates.push(createRequire(import.meta.url).resolve('node-gyp/bin/node-gyp.js'));
  } catch { /* not installed */ }
  for (const c of candidates) {
    if (!c || !existsSync(c)) continue;
    if (isDebianNodeGyp(c)) {
      log(`skipping ${c}: Debian's node-gyp (it builds against Debian's Node headers)`);
      continue;
    }
    return c;
  }
  return undefined;
}

/** The install prefix of the node running this script (bin/node -> prefix). */
function nodePrefix() {
  return path.dirname(path.dirname(realpathSync(process.execPath)));
}

/** The version of the headers in nodeDir/include/node, or undefined. */
function headersVersion(nodeDir) {
  const inc = path.join(nodeDir, 'include', 'node');
  if (!existsSync(path.join(inc, 'common.gypi')) || !existsSync(path.join(inc, 'node_version.h'))) return undefined;
  const h = readFileSync(path.join(inc, 'node_version.h'), 'utf8');
  return ['MAJOR', 'MINOR', 'PATCH'].map((k) => (h.match(new RegExp(`#define NODE_${k}_VERSION (\\d+)`)) || [])[1]).join('.');
}

/**
 * The headers to build against: those of the node running this script, i.e. a nodedir from
 * the environment (node-gyp's variables, as npm passes its settings) when its headers are
 * this node's version, else this node's own prefix
 * (<prefix>/include/node, as the registry's node-linux-* packages ship them). A nodedir
 * whose headers are another Node's (e.g. /usr with a distribution's older Node) is never
 * used: the binding would be built for the wrong ABI and crash this node.
 */
function pickNodeDir() {
  const want = process.versions.node;
  const tried = [];
  // node-gyp's own order: npm_package_config_node_gyp_nodedir overrides npm_config_nodedir.
  for (const d of [process.env.npm_package_config_node_gyp_nodedir, process.env.npm_config_nodedir, nodePrefix()]) {
    if (!d) continue;
    const v = headersVersion(d);
    if (v === want) return d;
    tried.push(`${d} (${v ? `headers of Node ${v}` : 'no headers'})`);
  }
  log(`no local headers for Node ${want} (tried ${tried.join(', ')}); node-gyp will use its own copy for ${process.version}`);
  return undefined;
}

function rebuild(dir) {
  const gyp = findNodeGyp();
  if (!gyp) die('node-gyp not found (looked for the copy bundled with npm); cannot rebuild the binding');
  const args = [gyp, 'rebuild'];
  const env = { ...process.env };

  // binding.gyp runs `node -e "require('nan')"` in the binding dir: make nan resolvable
  // even when the binding sits outside a node_modules tree (a copy being tested).
  try {
    createRequire(path.join(dir, 'package.json')).resolve('nan');
  } catch {
    try {
      const nanDir = path.dirname(createRequire(import.meta.url).resolve('nan/package.json'));
      env.NODE_PATH = [path.dirname(nanDir), env.NODE_PATH].filter(Boolean).join(path.delimiter);
    } catch {
      die(`the 'nan' package is not resolvable from ${dir} nor from this project`);
    }
  }
  // node-gyp lets these environment variables override its command line: set them all.
  const nodeDir = pickNodeDir();
  if (nodeDir) {
    args.push(`--nodedir=${nodeDir}`);
    env.npm_config_nodedir = env.npm_package_config_node_gyp_nodedir = nodeDir;
  } else {
    delete env.npm_config_nodedir;
    delete env.npm_package_config_node_gyp_nodedir;
  }
  log(`rebuilding in ${dir}: ${process.execPath} ${args.join(' ')}`);
  const r = spawnSync(process.execPath, args, { cwd: dir, env, stdio: 'inherit' });
  if (r.error) die(`node-gyp could not run: ${r.error.message}`);
  if (r.status !== 0) die(`node-gyp rebuild failed in ${dir} (exit ${r.status}); see its output above (build-essential, python3 and libgstreamer1.0-dev are needed)`);
}

const dir = resolveBindingDir();
if (!existsSync(path.join(dir, 'binding.gyp'))) die(`${dir} has no binding.gyp: not the gstreamer-superficial package`);
try {
  const v = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version;
  if (v !== EXPECTED_VERSION) log(`note: gstreamer-superficial is ${v}, the patch was written for ${EXPECTED_VERSION}`);
} catch { /* the source checks below decide */ }

const changed = patchSources(dir);
if (changed) {
  rebuild(dir);
} else if (!builtHasMarker(dir)) {
  log(`sources already patched but the built binding does not export ${EXPORT_NAME}`);
  rebuild(dir);
} else {
  log(`binding in ${dir} is patched and built; nothing to do`);
  process.exit(0);
}
if (!builtHasMarker(dir)) die(`rebuilt ${builtNodePath(dir)} but it does not load with ${EXPORT_NAME} === true`);
log(`done: ${builtNodePath(dir)} exports ${EXPORT_NAME}`);
