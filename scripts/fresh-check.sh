#!/usr/bin/env bash
# The README's commands as a new user runs them: in a fresh Debian 12 root.
#   bash scripts/fresh-check.sh amd64|arm64 [REPO]     # as root
# Makes a `debootstrap --variant=minbase bookworm` root for the architecture (arm64 runs
# under qemu-user-static through binfmt_misc: the Raspberry Pi's architecture), copies in
# what lets downloads verify as on this host (its DNS resolver, CA certificates, npm
# configuration and the npm/TLS/proxy environment, its apt proxy settings and its Debian
# mirror), clones REPO (default: the repository this script is in) at its committed HEAD
# into /root/commune-endpoint there, and runs, as root in that chroot:
#   amd64 (native):    bash scripts/setup.sh && npm run demo
#                      bash scripts/setup.sh && npm test
#                      provisioning/install.sh --from-checkout, twice (the box's install)
#   arm64 (emulated):  bash scripts/setup.sh; npm run test:unit; ep probe; install.sh; and
#                      ep media loopback --seconds 5, whose verdict is reported, not counted
#                      (FRESH_FULL=1 runs the amd64 steps instead; see docs/testing.md for
#                      what does not fit under emulation and why)
# Exit 0 when every step passed; 1 when one failed (its log's tail is printed); 2 when the
# check itself could not start (no binfmt_misc for arm64, debootstrap failed, ...).
#
# Each run works on a pristine copy: the minbase root is made once and kept as a tarball
# (FRESH_CACHE, default /var/tmp/commune-fresh-check/cache), then unpacked anew.
# Logs: FRESH_OUT (default /var/tmp/commune-fresh-check/<arch>-<time>/), one per step.
# FRESH_KEEP=1 keeps the root afterwards (unmounted) for a look.
# The chroot shares this host's network namespace: its tests bind loopback ports like the
# host's do, so do not run the test suite on the host at the same time.
set -euo pipefail

ARCH="${1:-}"
case "$ARCH" in
  amd64 | arm64) ;;
  *) echo "usage: $0 amd64|arm64 [REPO]" >&2; exit 2 ;;
esac
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO="${2:-$HERE}"
SUITE=bookworm
BASE="${FRESH_BASE:-/var/tmp/commune-fresh-check}"
CACHE="${FRESH_CACHE:-$BASE/cache}"
OUT="${FRESH_OUT:-$BASE/$ARCH-$(date -u +%Y%m%dT%H%M%SZ)}"
ROOT="$BASE/root-$ARCH-$$"
TARBALL="$CACHE/$SUITE-$ARCH-minbase.tar"
HOST_ARCH="$(dpkg --print-architecture)"

[ "$(id -u)" -eq 0 ] || { echo "fresh-check: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
mkdir -p "$CACHE" "$OUT"
SUMMARY=()
T_START=$(date +%s)
say() { echo "fresh-check: $*"; }
fail_setup() { echo "fresh-check: ERROR: $*" >&2; exit 2; }

# --- host tools ---------------------------------------------------------------------
need=()
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v git >/dev/null 2>&1 || need+=(git)
if [ "$ARCH" != "$HOST_ARCH" ]; then
  dpkg-query -W -f='${Status}' qemu-user-static 2>/dev/null | grep -q "install ok installed" || need+=(qemu-user-static)
  dpkg-query -W -f='${Status}' binfmt-support 2>/dev/null | grep -q "install ok installed" || need+=(binfmt-support)
fi
if [ "${#need[@]}" -gt 0 ]; then
  say "installing on the host: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >"$OUT/host-apt.log" 2>&1 ||
    { tail -20 "$OUT/host-apt.log" >&2; fail_setup "apt-get install ${need[*]} failed"; }
fi

# --- foreign architecture: binfmt_misc + qemu ----------------------------------------
if [ "$ARCH" != "$HOST_ARCH" ]; then
  [ "$ARCH" = arm64 ] || fail_setup "no emulation set up for $ARCH"
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>"$OUT/binfmt.log" ||
      fail_setup "binfmt_misc is not mounted and cannot be mounted here ($(cat "$OUT/binfmt.log")): arm64 programs cannot run under qemu on this host"
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    update-binfmts --enable qemu-aarch64 >>"$OUT/binfmt.log" 2>&1 || true
  fi
  grep -q '^enabled' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null ||
    fail_setup "qemu-aarch64 is not registered with binfmt_misc ($(tail -3 "$OUT/binfmt.log" 2>/dev/null | tr '\n' ' '))"
  # Without the F flag (Debian 12's qemu-user-static registers P only) the kernel opens the
  # interpreter inside the chroot: it is copied to the same path in the root.
  QEMU_INTERP=""
  if ! grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    QEMU_INTERP="$(awk '$1=="interpreter"{print $2}' /proc/sys/fs/binfmt_misc/qemu-aarch64)"
    [ -e "$QEMU_INTERP" ] || fail_setup "qemu-aarch64's interpreter $QEMU_INTERP not found"
  fi
fi
# Puts the emulator where the kernel looks for it inside ROOT (no-op when not needed).
add_qemu() { if [ -n "${QEMU_INTERP:-}" ]; then mkdir -p "$1$(dirname "$QEMU_INTERP")"; cp -L "$QEMU_INTERP" "$1$QEMU_INTERP"; fi; }
del_qemu() { if [ -n "${QEMU_INTERP:-}" ]; then rm -f "$1$QEMU_INTERP"; fi; }

# --- the host's Debian mirror -----------------------------------------------------------
# The first URI serving $SUITE (not -security) and the one serving $SUITE-security, from
# deb822 .sources files or one-line sources.list entries.
mirror_for() { # suite-regex
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk -v re="$1" 'BEGIN{RS=""; FS="\n"} {u="";s=""; en=1; for(i=1;i<=NF;i++){ if($i ~ /^URIs:/){sub(/^URIs:[ \t]*/,"",$i); split($i,a,/[ \t]+/); u=a[1]} if($i ~ /^Suites:/){s=$i} if($i ~ /^Enabled:[ \t]*no/){en=0} } if(en && u!="" && s ~ re){print u; exit}}' "$f"
  done | head -n 1
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk -v re="$1" '$1=="deb" { i=2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) ~ re) { print $i; exit } }' "$f"
  done | head -n 1
}
MIRROR="$(mirror_for "^Suites:.*[ \t]$SUITE([ \t]|\$)|^$SUITE\$" | head -n 1)"
SECURITY="$(mirror_for "$SUITE-security" | head -n 1)"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
SECURITY="${SECURITY:-http://deb.debian.org/debian-security}"
say "mirror $MIRROR, security $SECURITY"

# --- pristine root ----------------------------------------------------------------------
if [ ! -s "$TARBALL" ]; then
  say "debootstrap --variant=minbase $SUITE for $ARCH (cached afterwards in $TARBALL)"
  t0=$(date +%s)
  mk="$BASE/debootstrap-$ARCH-$$"
  rm -rf --one-file-system "$mk"
  ok=1
  if [ -z "${QEMU_INTERP:-}" ]; then
    debootstrap --variant=minbase --arch="$ARCH" "$SUITE" "$mk" "$MIRROR" >"$OUT/debootstrap.log" 2>&1 || ok=0
  else
    # Two stages: the second runs inside the root, through the emulator copied in.
    { debootstrap --foreign --variant=minbase --arch="$ARCH" "$SUITE" "$mk" "$MIRROR" && add_qemu "$mk" &&
      chroot "$mk" /debootstrap/debootstrap --second-stage && del_qemu "$mk"; } >"$OUT/debootstrap.log" 2>&1 || ok=0
  fi
  [ "$ok" = 1 ] ||
    { tail -30 "$OUT/debootstrap.log" >&2; rm -rf --one-file-system "$mk"; fail_setup "debootstrap failed (log: $OUT/debootstrap.log)"; }
  tar -C "$mk" --numeric-owner -cf "$TARBALL.tmp" . && mv "$TARBALL.tmp" "$TARBALL"
  rm -rf --one-file-system "$mk"
  SUMMARY+=("debootstrap (cached for later runs): $(($(date +%s) - t0)) s")
fi

# shellcheck disable=SC2317 # called from the EXIT trap
mounted() { grep -q " $ROOT/" /proc/mounts 2>/dev/null; }
# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  set +e
  # Processes still running inside the root (a daemon a step left): they were started here.
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
  done
  sleep 1
  for m in dev/pts dev proc sys; do
    mountpoint -q "$ROOT/$m" 2>/dev/null && umount -R "$ROOT/$m" 2>/dev/null
  done
  if mounted; then
    grep " $ROOT/" /proc/mounts | awk '{print $2}' | sort -r | xargs -r -n1 umount -l
  fi
  if mounted; then
    echo "fresh-check: WARNING: mounts remain under $ROOT; not removing it" >&2
  elif [ "${FRESH_KEEP:-0}" = 1 ]; then
    echo "fresh-check: kept $ROOT"
  else
    rm -rf --one-file-system "$ROOT"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf --one-file-system "$ROOT"
mkdir -p "$ROOT"
tar -C "$ROOT" --numeric-owner -xf "$TARBALL"
add_qemu "$ROOT"

# --- what makes downloads verify as on this host ---------------------------------------
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
cat >"$ROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
rm -f "$ROOT/etc/apt/sources.list"
# apt settings about fetching (proxies, validity checks of a snapshot mirror, ...).
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -q 'Acquire::' "$f" && cp "$f" "$ROOT/etc/apt/apt.conf.d/$(basename "$f")-host"
done
# No service starts inside the root (mosquitto's package would start a broker on the
# host's network): policy-rc.d as debootstrap-made chroots use it.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
# CA certificates: the host's local ones (ca-certificates' postinst adds them to the
# bundle it makes) and the bundle itself, for anything that reads it before.
if [ -d /usr/local/share/ca-certificates ]; then
  mkdir -p "$ROOT/usr/local/share/ca-certificates"
  cp -a /usr/local/share/ca-certificates/. "$ROOT/usr/local/share/ca-certificates/"
fi
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  mkdir -p "$ROOT/etc/ssl/certs"
  cp -L /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"
fi
# npm configuration: the user's and the global files, wherever this host keeps them.
for f in "$HOME/.npmrc" /etc/npmrc /usr/etc/npmrc /usr/local/etc/npmrc; do
  [ -f "$f" ] || continue
  case "$f" in "$HOME"/*) dest="$ROOT/root/${f#"$HOME"/}" ;; *) dest="$ROOT$f" ;; esac
  mkdir -p "$(dirname "$dest")"
  cp "$f" "$dest"
done
# The environment that configures npm, Node's and curl's TLS, and proxies.
PASSENV=()
while IFS='=' read -r k _; do
  case "$k" in
    npm_config_* | NPM_CONFIG_* | NODE_EXTRA_CA_CERTS | SSL_CERT_FILE | SSL_CERT_DIR | CURL_CA_BUNDLE | \
      http_proxy | https_proxy | no_proxy | HTTP_PROXY | HTTPS_PROXY | NO_PROXY)
      PASSENV+=("$k=${!k}") ;;
  esac
done < <(env)

mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --rbind /dev "$ROOT/dev"
mount --make-rslave "$ROOT/dev"
chmod 1777 "$ROOT/tmp"

# --- the repository at its committed HEAD ------------------------------------------------
git clone -q "$REPO" "$ROOT/root/commune-endpoint" || fail_setup "git clone $REPO failed"
COMMIT="$(git -C "$ROOT/root/commune-endpoint" rev-parse --short HEAD)"
SUBJECT="$(git -C "$ROOT/root/commune-endpoint" log -1 --format=%s | cut -c1-80)"
say "$ARCH root at $ROOT; repository $REPO at $COMMIT ($SUBJECT); logs in $OUT"

# --- the steps ------------------------------------------------------------------------------
FAILED=0
step() { # name command [info: its failure is reported, not counted]
  local name=$1 cmd=$2 info=${3:-} t0 rc
  t0=$(date +%s)
  say "step '$name': $cmd"
  set +e
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    "${PASSENV[@]}" /bin/bash -c "cd /root/commune-endpoint && $cmd" </dev/null >"$OUT/$name.log" 2>&1
  rc=$?
  set -e
  local dt=$(($(date +%s) - t0))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("PASS  $name  ($(printf '%dm%02ds' $((dt / 60)) $((dt % 60))))  $cmd")
  elif [ -n "$info" ]; then
    SUMMARY+=("INFO  $name  ($(printf '%dm%02ds' $((dt / 60)) $((dt % 60))), exit $rc, not counted: $info)  $cmd  [log: $OUT/$name.log]")
    say "step '$name' exit $rc (not counted: $info); the end of its log:"
    tail -12 "$OUT/$name.log" | sed 's/^/    /'
  else
    FAILED=1
    SUMMARY+=("FAIL  $name  ($(printf '%dm%02ds' $((dt / 60)) $((dt % 60))), exit $rc)  $cmd  [log: $OUT/$name.log]")
    say "step '$name' failed (exit $rc); the end of its log:"
    tail -40 "$OUT/$name.log" | sed 's/^/    /'
  fi
  return "$rc"
}

# The box's own install (docs/provisioning.md) onto this root as on a box — apt, the
# service user through systemd-sysusers, the release, launcher and units enabled (no
# systemd runs in a chroot: nothing is started) — twice: the second run writes nothing.
INSTALL_CMD='provisioning/install.sh --from-checkout && provisioning/install.sh --from-checkout >/tmp/install-2.txt 2>&1 && cat /tmp/install-2.txt && ! grep -E "^install: (wrote|installed|committed|current ->)" /tmp/install-2.txt && systemctl is-enabled commune-endpoint.service commune-endpoint-provision.service commune-endpoint-provision-finish.path && id commune-endpoint && node dist/device/cli/ep.js status --socket /run/commune-endpoint/control.sock; test $? -eq 3'
if [ "$ARCH" = "$HOST_ARCH" ] || [ "${FRESH_FULL:-0}" = 1 ]; then
  step demo 'bash scripts/setup.sh && npm run demo' || true
  step test 'bash scripts/setup.sh && npm test' || true
  step install "$INSTALL_CMD" || true
else
  # Under emulation: what fits (docs/testing.md says what does not, and why).
  if step setup 'bash scripts/setup.sh'; then
    step unit 'npm run test:unit' || true
    step probe 'npm run --silent ep -- probe' || true
    step install "$INSTALL_CMD" || true
    # 720p30 software x264/avdec_h264 both ways (the loopback has no smaller size) runs far
    # below real time under qemu-user: it shows the pipelines start and SRT connects, its
    # frame-rate verdict is not counted.
    step loopback 'npm run --silent ep -- media loopback --seconds 5 --out out/loopback' \
      'real-time 720p30 media does not fit under emulation' || true
  fi
fi
NODE_V="$(chroot "$ROOT" /usr/local/bin/node --version 2>/dev/null || echo none)"

T_ALL=$(($(date +%s) - T_START))
echo
echo "fresh-check summary: $ARCH$([ "$ARCH" != "$HOST_ARCH" ] && echo ' (qemu-user emulation)'), Debian $SUITE minbase, commit $COMMIT, node $NODE_V, $(date -u +%Y-%m-%dT%H:%MZ)"
for s in "${SUMMARY[@]}"; do echo "  $s"; done
echo "  total $(printf '%dm%02ds' $((T_ALL / 60)) $((T_ALL % 60))); logs in $OUT"
[ "$FAILED" -eq 0 ] && echo "fresh-check: PASSED" || echo "fresh-check: FAILED"
exit "$FAILED"
