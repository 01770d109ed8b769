#!/usr/bin/env bash
# Installs the box software on a Debian 12 / Raspberry Pi OS machine (or into a directory
# tree, for tests and images): apt packages and Node 24, the service user, a release under
# /opt/commune-endpoint with its launcher, the data dir, the systemd units (enabled), the
# polkit rule, the journald drop-in and the boot config lines. Idempotent: a second run
# changes nothing. docs/provisioning.md says what goes where and why.
#
#   provisioning/install.sh [--root DIR] [--from BUNDLE.tar.gz | --from-checkout]
#                           [--no-packages] [--sd yes|no|auto]
#
#   --from BUNDLE     a release bundle made by `ep ota pack` (a bundle holds this script:
#                     tar -xzf B.tar.gz provisioning && provisioning/install.sh --from B.tar.gz)
#   --from-checkout   the built checkout this script is in (npm run build first): the tree
#                     `ep ota pack` would bundle, staged without packing (the default)
#   --root DIR        install into DIR instead of / (skips apt and Node, and starts nothing)
#   --no-packages     skip apt and Node
#   --sd yes|no|auto  is the root file system on an SD card (journal in RAM, noatime advice)?
#                     auto: yes when it is mounted from /dev/mmcblk*
#
# Exit 0 installed (warnings on stderr never fail it), 1 failed, 2 usage.
set -euo pipefail
umask 022

HERE=$(cd "$(dirname "$0")" && pwd)
UNITS_SRC="$HERE/systemd"
CHECKOUT=$(cd "$HERE/.." && pwd)

ROOT="" FROM="" PACKAGES=1 SD=auto
usage() { sed -n '8,9p' "$0" | sed 's/^#  *//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || usage; ROOT=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --from) [ $# -ge 2 ] || usage; FROM=$(realpath -e "$2") || { echo "install: no bundle $2" >&2; exit 2; }; shift 2 ;;
    --from-checkout) FROM=""; shift ;;
    --no-packages) PACKAGES=0; shift ;;
    --sd) [ $# -ge 2 ] || usage; SD=$2; shift 2; case "$SD" in yes | no | auto) ;; *) usage ;; esac ;;
    -h | --help) usage ;;
    *) echo "install: unknown argument $1" >&2; usage ;;
  esac
done
[ "$ROOT" = / ] && ROOT=""

# The box's layout (what the units, the launcher and `ep provision` expect). Paths without
# $ROOT are the box's own; r PATH is where they are while we install.
APP_ROOT=/opt/commune-endpoint
DATA_DIR=/var/lib/commune-endpoint
ETC_DIR=/etc/commune-endpoint
SERVICE_USER=commune-endpoint
# Units we install by hand, not dpkg: /usr/local/lib/systemd/system (file-hierarchy(7)'s place
# for locally installed software). A technician's `systemctl edit` in /etc wins over them
# and survives a reinstall; `systemctl revert` brings ours back.
UNIT_DIR=/usr/local/lib/systemd/system
SYSUSERS_DIR=/usr/local/lib/sysusers.d
BOOT_DIRS='["/boot/firmware","/boot"]'
r() { printf '%s%s' "$ROOT" "$1"; }

say() { echo "install: $*"; }
warn() { echo "install: WARNING: $*" >&2; }
die() { echo "install: ERROR: $*" >&2; exit 1; }
LIVE=0 # installing onto the running system with systemd as PID 1: reload and restart what changed
if [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then LIVE=1; fi
if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then die "run as root (or with --root DIR)"; fi

# put SRC DEST MODE: DEST gets SRC's bytes and MODE, written (temp + rename) only when different.
put() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$dest" ] && [ ! -L "$dest" ] && cmp -s "$src" "$dest"; then
    [ "$(stat -c %a "$dest")" = "${mode#0}" ] || chmod "$mode" "$dest"
    return 1
  fi
  mkdir -p "$(dirname "$dest")"
  install -m "$mode" "$src" "$dest.tmp-$$"
  mv -f "$dest.tmp-$$" "$dest"
  say "wrote ${dest#"$ROOT"}"
}
# put_text DEST MODE TEXT: TEXT and a newline.
put_text() {
  local tmp
  tmp=$(mktemp)
  printf '%s\n' "$3" >"$tmp"
  local rc=0
  put "$tmp" "$1" "$2" || rc=$?
  rm -f "$tmp"
  return "$rc"
}

# --- packages and Node ------------------------------------------------------------------
# What the box runs with: GStreamer (runtime plugins only; no compilers, headers, brokers or
# ffmpeg: those are for development and tests, scripts/setup.sh), camera/sound/font tools,
# polkit (reboots without root), curl + openssl to fetch Node.
APT_PACKAGES=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-alsa
  # textoverlay/clockoverlay (the standby screen, the pango plugin): only a recommended
  # package, so named here. DejaVu Sans has every Vietnamese letter (the screen asks for it
  # by name); fontconfig's fc-cache builds the font cache at install, not in each worker.
  gstreamer1.0-x fonts-dejavu-core fontconfig
  v4l-utils alsa-utils ca-certificates curl openssl
)
# Installed when the archive has them (Raspberry Pi OS): Pi cameras, vcgencmd; polkitd (Debian 12) or policykit-1 (11).
APT_OPTIONAL=(gstreamer1.0-libcamera libraspberrypi-bin polkitd)

# Node: the same pinned official build as scripts/setup.sh (test/integration/install.test.ts
# checks the two agree), node only: a box runs no npm. A bundle carries no scripts/, hence a copy.
NODE_VERSION=24.22.3
declare -A NODE_INTEGRITY=(
  [x64]=sha512-KHsob+Fv9YerATvYujMbiyJqnRCvLtrcr/eTNqRqiOSGp97EOiRP1yP47+knGgQ/xnc3XY8xzkW587dlZzNqRA==
  [arm64]=sha512-IZx0J52/1NDwAsY2iyWR9nlPIYuYviTWetjj8+ElvYQh2+XRhLfCfkbFEF/2O5vGI2hcUbyPNHV+nz342FbJXw==
)
NODE_ROOT=/usr/local/lib/nodejs

# An npm setting from npm_config_* or the npmrc files (no npm on a box).
npm_setting() {
  local key=$1 envname v="" f
  envname="npm_config_${key//-/_}"
  v="${!envname:-}"
  if [ -z "$v" ]; then
    for f in "${HOME:-/root}/.npmrc" /usr/local/etc/npmrc /etc/npmrc; do
      [ -r "$f" ] || continue
      v=$(sed -n "s/^[[:space:]]*${key}[[:space:]]*=[[:space:]]*//p" "$f" | tail -n 1 | sed 's/^"\(.*\)"[[:space:]]*$/\1/; s/[[:space:]]*$//')
      [ -n "$v" ] && break
    done
  fi
  printf '%s' "$v"
}

install_packages() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  for p in "${APT_OPTIONAL[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && continue
    apt-cache show "$p" >/dev/null 2>&1 && missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "apt: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

install_node() {
  local arch prefix registry cafile proxy tmp url got stage
  case "$(dpkg --print-architecture)" in
    amd64) arch=x64 ;;
    arm64) arch=arm64 ;;
    *) die "no Node $NODE_VERSION build for $(dpkg --print-architecture) on the npm registry: use a 64-bit OS (arm64 on every Pi 3/4/5)" ;;
  esac
  prefix="$NODE_ROOT/node-v$NODE_VERSION-linux-$arch"
  if [ "$("$prefix/bin/node" --version 2>/dev/null)" != "v$NODE_VERSION" ]; then
    registry=$(npm_setting registry); registry="${registry:-https://registry.npmjs.org/}"; registry="${registry%/}"
    cafile=$(npm_setting cafile)
    proxy=$(npm_setting https-proxy); [ -n "$proxy" ] || proxy=$(npm_setting proxy)
    local curl_args=(-fsSL --retry 3 --connect-timeout 30)
    if [ -n "$cafile" ]; then curl_args+=(--cacert "$cafile"); fi
    if [ -n "$proxy" ]; then curl_args+=(--proxy "$proxy"); fi
    tmp=$(mktemp -d)
    url="$registry/node-linux-$arch/-/node-linux-$arch-$NODE_VERSION.tgz"
    say "fetching Node $NODE_VERSION: $url"
    curl "${curl_args[@]}" -o "$tmp/node.tgz" "$url" || die "could not download $url"
    got="sha512-$(openssl dgst -sha512 -binary "$tmp/node.tgz" | base64 -w0)"
    [ "$got" = "${NODE_INTEGRITY[$arch]}" ] || die "node-linux-$arch-$NODE_VERSION.tgz: integrity $got, expected ${NODE_INTEGRITY[$arch]}"
    # Unpacked beside the target, moved into place in one step.
    stage="$prefix.new.$$"
    rm -rf "$stage"; mkdir -p "$stage"
    tar -xzf "$tmp/node.tgz" -C "$stage" --strip-components=1 --no-same-owner
    chmod 755 "$stage/bin/node"
    rm -rf "$prefix"; mv "$stage" "$prefix"; rm -rf "$tmp"
  fi
  if [ "$(readlink /usr/local/bin/node 2>/dev/null)" != "$prefix/bin/node" ]; then
    mkdir -p /usr/local/bin; ln -sfn "$prefix/bin/node" /usr/local/bin/node
    say "linked /usr/local/bin/node -> $prefix/bin/node"
  fi
}

if [ -n "$ROOT" ] || [ "$PACKAGES" -eq 0 ]; then
  say "skipped: apt packages (${APT_PACKAGES[*]}; when available ${APT_OPTIONAL[*]}) and Node $NODE_VERSION in /usr/local/bin/node ($([ -n "$ROOT" ] && echo "--root" || echo "--no-packages"))"
else
  install_packages
  install_node
fi
# The node that runs the release's own modules below: the box's, else this machine's (--root).
NODE=/usr/local/bin/node
[ -x "$NODE" ] || NODE=$(command -v node) || die "no node to run the install steps with: install Node $NODE_VERSION (drop --no-packages)"

# --- the service user: sysusers.d, applied now and at every boot ------------------------
put "$UNITS_SRC/commune-endpoint.sysusers.conf" "$(r "$SYSUSERS_DIR/commune-endpoint.conf")" 0644 || true
mkdir -p "$(r /etc)"
if [ -n "$ROOT" ]; then
  systemd-sysusers --root="$ROOT" commune-endpoint.conf
else
  systemd-sysusers commune-endpoint.conf
fi
SU_UID=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $3 }' "$(r /etc/passwd)")
SU_GID=$(awk -F: -v u="$SERVICE_USER" '$1 == u { print $4 }' "$(r /etc/passwd)")
if [ -z "$SU_UID" ] || [ -z "$SU_GID" ]; then die "systemd-sysusers did not create $SERVICE_USER in $(r /etc/passwd)"; fi
# Numeric ids: under --root the user exists only in DIR/etc/passwd.
own() { if [ "$(id -u)" -eq 0 ]; then chown -h "$@"; fi; }

# --- the release ------------------------------------------------------------------------
RELEASES=$(r "$APP_ROOT/releases")
mkdir -p "$RELEASES"
valid_version() { [[ $1 =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$ ]]; }
json_version() { "$NODE" -e 'process.stdout.write(String(JSON.parse(require("fs").readFileSync(0, "utf8")).version ?? ""))'; }
# Leftovers of an interrupted install (or stage) of this version go first.
clean_staging() { find "$RELEASES" -maxdepth 1 -name ".$1.staging-*" -exec rm -rf {} +; }
# complete DIR VERSION ID: the marker ota/install.ts's isStaged reads, written as stageRelease writes it.
complete() { printf '{"version":"%s","sha256":"%s"}\n' "$2" "$3" >"$1/.complete"; }
staged_as() { [ "$(cat "$RELEASES/$1/.complete" 2>/dev/null)" = "{\"version\":\"$1\",\"sha256\":\"$2\"}" ]; }
# place STAGING VERSION: the staged tree becomes releases/VERSION in one rename.
place() {
  sync -f "$1"
  if [ -e "$RELEASES/$2" ]; then
    warn "replacing releases/$2 (same version, other content): restart the service to run it"
    rm -rf "${RELEASES:?}/$2"
  fi
  mv "$1" "$RELEASES/$2"
  sync -f "$RELEASES"
  say "installed release $2 in ${RELEASES#"$ROOT"}/$2"
}

if [ -n "$FROM" ]; then
  # A bundle: unpacked like an update stages it (ota/install.ts stageRelease), so the
  # agent sees the same .complete an OTA would leave.
  VERSION=$(tar -xzOf "$FROM" package.json | json_version) || die "$FROM: not a release bundle (no package.json at its root)"
  valid_version "$VERSION" || die "$FROM: package.json has no usable version ($VERSION)"
  ID=$(sha256sum "$FROM" | cut -d' ' -f1)
  BUILT_MS=$(($(stat -c %Y "$FROM") * 1000))
  if ! staged_as "$VERSION" "$ID"; then
    clean_staging "$VERSION"
    STAGING="$RELEASES/.$VERSION.staging-$$"
    mkdir -p "$STAGING"
    tar -xzf "$FROM" -C "$STAGING" --no-same-owner --no-same-permissions
    complete "$STAGING" "$VERSION" "$ID"
    place "$STAGING" "$VERSION"
  fi
else
  # The checkout: the tree `ep ota pack` bundles (ota/pack.ts), staged here without packing.
  if [ ! -f "$CHECKOUT/dist/device/cli/ep.js" ] || [ ! -d "$CHECKOUT/node_modules" ]; then die "$CHECKOUT is not built: npm install and npm run build first (or use --from BUNDLE)"; fi
  VERSION=$(json_version <"$CHECKOUT/package.json")
  valid_version "$VERSION" || die "$CHECKOUT/package.json has no usable version ($VERSION)"
  # The checkout's identity (no bundle sha256 to name it): its built files, lockfiles,
  # native addons and this provisioning dir. A rebuild restages; an unchanged tree does not.
  ID=$(cd "$CHECKOUT" && {
    find dist -path dist/test -prune -o -type f -print
    find provisioning -type f
    find node_modules -path '*/build/Release/*.node' -type f
    ls package.json package-lock.json node_modules/.package-lock.json 2>/dev/null
  } | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -d' ' -f1)
  BUILT_MS=$(($(stat -c %Y "$CHECKOUT/dist/device/cli/ep.js") * 1000))
  if ! staged_as "$VERSION" "$ID"; then
    clean_staging "$VERSION"
    STAGING="$RELEASES/.$VERSION.staging-$$"
    mkdir -p "$STAGING/provisioning"
    cp -a -H --reflink=auto "$CHECKOUT/dist" "$CHECKOUT/node_modules" "$CHECKOUT/package.json" "$STAGING/"
    cp -a --reflink=auto "$CHECKOUT/provisioning/install.sh" "$CHECKOUT/provisioning/systemd" "$STAGING/provisioning/"
    rm -rf "$STAGING/dist/test"
    # Production node_modules, as pack prunes them: offline, no install scripts, addons as built.
    if [ -f "$CHECKOUT/package-lock.json" ]; then cp "$CHECKOUT/package-lock.json" "$STAGING/"; fi
    NPM="$(dirname "$(readlink -f "$(command -v node)")")/npm"
    [ -x "$NPM" ] || NPM=$(command -v npm) || die "--from-checkout needs npm (to prune dev packages)"
    (cd "$STAGING" && "$NPM" prune --omit=dev --offline --no-audit --no-fund --ignore-scripts --loglevel=error >/dev/null)
    rm -f "$STAGING/package-lock.json" "$STAGING/node_modules/.package-lock.json"
    find "$STAGING/node_modules" -mindepth 1 -maxdepth 1 -name '.*' ! -name .bin -exec rm -rf {} +
    find "$STAGING/node_modules" -mindepth 1 -maxdepth 1 -type d -empty -delete
    # The file index an update reads to reuse this release's files (pack writes it too).
    # shellcheck disable=SC2016 # JavaScript, not shell
    EP_TREE="$STAGING" "$NODE" --input-type=module -e '
      const { writeFile } = await import("node:fs/promises");
      const { buildIndex, indexJson } = await import(process.env.EP_TREE + "/dist/ota/pack.js");
      await writeFile(process.env.EP_TREE + "/.ep-index.json", indexJson(await buildIndex(process.env.EP_TREE)), { mode: 0o644 });'
    complete "$STAGING" "$VERSION" "$ID"
    place "$STAGING" "$VERSION"
  fi
fi
REL="$RELEASES/$VERSION"
if [ ! -f "$REL/dist/device/cli/ep.js" ] || [ ! -f "$REL/dist/ota/launcher-install.js" ]; then die "releases/$VERSION has no dist/device/cli/ep.js or dist/ota/launcher-install.js: not a release"; fi

# The launcher, release-state.json and `current`, with the release's own modules (the code
# an update runs), each written only when it differs.
# shellcheck disable=SC2016 # JavaScript, not shell
EP_APP_ROOT_DIR=$(r "$APP_ROOT") EP_DIST="$REL/dist" EP_VERSION="$VERSION" "$NODE" --input-type=module -e '
  import { readFile } from "node:fs/promises";
  import { existsSync } from "node:fs";
  import path from "node:path";
  import { pathToFileURL } from "node:url";
  const { EP_APP_ROOT_DIR: appRoot, EP_DIST: dist, EP_VERSION: version } = process.env;
  const imp = (m) => import(pathToFileURL(path.join(dist, m)).href);
  const { installLauncher, launcherClosure } = await imp("ota/launcher-install.js");
  const { readReleaseState, writeReleaseState } = await imp("ota/release-file.js");
  const { initialState } = await imp("ota/release-state.js");
  const { currentVersion, switchCurrent } = await imp("ota/current.js");
  const say = (s) => console.log(`install: ${s}`);

  const same = async (a, b) => { const x = await readFile(a).catch(() => null); const y = await readFile(b).catch(() => null); return x !== null && y !== null && x.equals(y); };
  let launcherOk = (await readFile(path.join(appRoot, "launcher", "package.json"), "utf8").catch(() => "")) === "{\"type\":\"module\"}\n";
  for (const f of await launcherClosure(dist)) launcherOk &&= await same(path.join(dist, f), path.join(appRoot, "launcher", f));
  if (!launcherOk) { await installLauncher(appRoot, dist); say(`installed the launcher from ${version}`); }

  // A hand install is a commit: this version runs, the one before stays as the rollback.
  let s = null;
  try { s = await readReleaseState(appRoot); } catch (e) { console.error(`install: WARNING: ${e.message}: written anew`); }
  let next;
  if (!s) next = initialState(version);
  else if (s.committed !== version || s.trying || s.failed.includes(version)) {
    const prev = s.committed !== version ? s.committed : s.previous;
    next = { ...s, committed: version, previous: prev && existsSync(path.join(appRoot, "releases", prev)) ? prev : null, trying: null, failed: s.failed.filter((v) => v !== version) };
  }
  if (next) { await writeReleaseState(appRoot, next); say(`release-state.json: committed ${version}`); }
  if ((await currentVersion({ appRoot })) !== version) { await switchCurrent({ appRoot }, version); say(`current -> releases/${version}`); }
'
# OTA (the agent, as the service user) writes releases/, release-state.json and renames
# `current` in the app root; the launcher stays root's (updates never replace it).
own "$SU_UID:$SU_GID" "$(r "$APP_ROOT")" "$(r "$APP_ROOT/current")" "$(r "$APP_ROOT/release-state.json")"
own -R "$SU_UID:$SU_GID" "$RELEASES"
chmod 0755 "$(r "$APP_ROOT")"

# --- data dir and configuration ---------------------------------------------------------
mkdir -p "$(r "$DATA_DIR")"
own "$SU_UID:$SU_GID" "$(r "$DATA_DIR")"
chmod 0700 "$(r "$DATA_DIR")"
# The OTA time floor (device/updates.ts): the release's build time, a moment the true clock
# is surely past (the install's own clock may be days off on a box without an RTC). Only
# ever raised by the agent, so never rewritten here.
if [ ! -e "$(r "$DATA_DIR/clock-synced.json")" ]; then
  printf '{"at":%s}\n' "$BUILT_MS" >"$(r "$DATA_DIR/clock-synced.json")"
  chmod 0600 "$(r "$DATA_DIR/clock-synced.json")"
  own "$SU_UID:$SU_GID" "$(r "$DATA_DIR/clock-synced.json")"
  say "wrote $DATA_DIR/clock-synced.json (time floor $(date -u -d "@$((BUILT_MS / 1000))" +%FT%TZ))"
fi
mkdir -p "$(r "$ETC_DIR")"
chmod 0755 "$(r "$ETC_DIR")"
# What `ep provision` reads to know where things are.
put_text "$(r "$ETC_DIR/install.json")" 0644 "$(printf '{"appRoot":"%s","dataDir":"%s","user":"%s","version":"%s","bootDirs":%s}' "$APP_ROOT" "$DATA_DIR" "$SERVICE_USER" "$VERSION" "$BOOT_DIRS")" || true

# --- units, polkit, journald ------------------------------------------------------------
UNITS_CHANGED=0
# The finish pair: root takes ep-provision.json off the boot partition once the agent noted
# that it reached the broker (the agent, as the service user, cannot write there).
UNITS=(commune-endpoint.service commune-endpoint-provision.service commune-endpoint-provision-finish.path commune-endpoint-provision-finish.service)
ENABLED=(commune-endpoint.service commune-endpoint-provision.service commune-endpoint-provision-finish.path)
for u in "${UNITS[@]}"; do
  if put "$UNITS_SRC/$u" "$(r "$UNIT_DIR/$u")" 0644; then UNITS_CHANGED=1; fi
done
if [ -n "$ROOT" ]; then
  systemctl --root="$ROOT" enable --quiet "${ENABLED[@]}" 2>&1 | grep -v 'non-existent unit' >&2 || true
else
  if [ "$LIVE" -eq 1 ] && [ "$UNITS_CHANGED" -eq 1 ]; then systemctl daemon-reload; fi
  systemctl enable --quiet "${ENABLED[@]}"
fi
for u in "${ENABLED[@]}"; do
  [ -L "$(r "/etc/systemd/system/multi-user.target.wants/$u")" ] || die "$u is not enabled (no multi-user.target.wants/$u)"
done

put "$UNITS_SRC/50-commune-endpoint.rules" "$(r /etc/polkit-1/rules.d/50-commune-endpoint.rules)" 0644 || true
# polkit 0.105 (or Debian 12's polkitd-pkla) reads .pkla files; newer ones the .rules above.
if [ -d "$(r /etc/polkit-1/localauthority)" ]; then
  put "$UNITS_SRC/commune-endpoint.pkla" "$(r /etc/polkit-1/localauthority/50-local.d/commune-endpoint.pkla)" 0644 || true
fi

# LEDs and GPIO for the service's group (the agent is not root): a udev rule, applied now on a live system.
if put "$UNITS_SRC/60-commune-endpoint.rules" "$(r /etc/udev/rules.d/60-commune-endpoint.rules)" 0644 && [ -z "$ROOT" ] && [ "$LIVE" -eq 1 ]; then
  udevadm control --reload 2>/dev/null && udevadm trigger --subsystem-match=leds --subsystem-match=gpio 2>/dev/null || warn "udev rule installed; it applies at the next boot"
fi

# Is the root file system on an SD card (or eMMC: /dev/mmcblk* too)?
ROOT_MOUNT=$(findmnt -n -o SOURCE,OPTIONS -T "${ROOT:-/}" 2>/dev/null || true)
if [ "$SD" = auto ]; then
  case "$ROOT_MOUNT" in /dev/mmcblk*) SD=yes ;; *) SD=no ;; esac
fi
JOURNALD="$(r /etc/systemd/journald.conf.d/commune-endpoint.conf)"
if put "$UNITS_SRC/journald-$([ "$SD" = yes ] && echo sd || echo disk).conf" "$JOURNALD" 0644 && [ "$LIVE" -eq 1 ]; then
  systemctl restart systemd-journald || warn "could not restart systemd-journald: the journal settings apply at the next boot"
fi

# --- checks that only warn ----------------------------------------------------------------
if [ "$SD" = yes ]; then
  # Every read of a file writes its access time to the card otherwise.
  fstab_opts=$(awk '$1 !~ /^#/ && $2 == "/" { print $4 }' "$(r /etc/fstab)" 2>/dev/null || true)
  live_opts=""; [ -z "$ROOT" ] && live_opts=${ROOT_MOUNT#* }
  if [[ ",$fstab_opts," != *,noatime,* ]] || { [ -n "$live_opts" ] && [[ ",$live_opts," != *,noatime,* ]]; }; then
    warn "/ is on an SD card without noatime: in /etc/fstab, add noatime to the options of / (e.g. 'PARTUUID=… / ext4 defaults,noatime 0 1'), then reboot"
  fi
fi

# Boot config (Raspberry Pi): lines the box needs, added once in a marked block at the end
# (under [all], so no model filter before it applies to them).
BOOT_CONFIG=""
for f in /boot/firmware/config.txt /boot/config.txt; do
  if [ -f "$(r "$f")" ]; then BOOT_CONFIG=$(r "$f"); break; fi
done
if [ -z "$BOOT_CONFIG" ]; then
  warn "no /boot/firmware/config.txt or /boot/config.txt: not a Raspberry Pi? (boot config lines not written)"
else
  BEGIN="# BEGIN commune-endpoint (provisioning/install.sh)" END="# END commune-endpoint"
  outside=$(awk -v b="$BEGIN" -v e="$END" '$0 == b { skip = 1; next } $0 == e { skip = 0; next } !skip' "$BOOT_CONFIG")
  need=()
  # A TV plugged in after boot stays black otherwise; the camera module is found at boot; the KMS driver kmssink draws on.
  grep -qE '^[[:space:]]*hdmi_force_hotplug=1[[:space:]]*$' <<<"$outside" || need+=(hdmi_force_hotplug=1)
  grep -qE '^[[:space:]]*camera_auto_detect=1[[:space:]]*$' <<<"$outside" || need+=(camera_auto_detect=1)
  grep -qE '^[[:space:]]*dtoverlay=vc4-kms-v3d([,:].*)?[[:space:]]*$' <<<"$outside" || need+=(dtoverlay=vc4-kms-v3d)
  wanted=$outside
  if [ "${#need[@]}" -gt 0 ]; then wanted+=$'\n'"$BEGIN"$'\n[all]\n'"$(printf '%s\n' "${need[@]}")"$'\n'"$END"; fi
  if [ "$wanted" != "$(cat "$BOOT_CONFIG")" ]; then
    printf '%s\n' "$wanted" >"$BOOT_CONFIG.tmp-$$"
    mv -f "$BOOT_CONFIG.tmp-$$" "$BOOT_CONFIG"
    sync -f "$BOOT_CONFIG"
    say "boot config ${BOOT_CONFIG#"$ROOT"}: added ${need[*]:-nothing} (takes effect at the next boot)"
  fi
fi

# Units as systemd reads them: the installed files checked directly (their ExecStart binary
# is looked up on this machine; --root= would need the whole of systemd's units in DIR).
if command -v systemd-analyze >/dev/null; then
  verify=()
  for u in "${UNITS[@]}"; do verify+=("$(r "$UNIT_DIR/$u")"); done
  out=$(systemd-analyze verify --man=no "${verify[@]}" 2>&1) || warn "systemd-analyze verify failed"
  [ -z "$out" ] || warn "systemd-analyze verify: $out"
else
  warn "no systemd-analyze: the units were not verified"
fi

say "done: $VERSION in $(r "$APP_ROOT"), units enabled$([ "$LIVE" -eq 1 ] && echo "; start with: systemctl start commune-endpoint (or reboot)")"
