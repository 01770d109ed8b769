#!/usr/bin/env bash
# Builds the native GStreamer element `epframer` (gst-pipelines/native/epframer*.c).
#   bash scripts/build-native.sh [OUTDIR]     # default OUTDIR: dist/native (repo root)
# Output: OUTDIR/libgstepframer.so; use it with GST_PLUGIN_PATH=OUTDIR.
# Idempotent: compiles only when the .so is missing or older than a source, a header or this script.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NATIVE="$ROOT/gst-pipelines/native"
# Every epframer*.c is compiled (epframer.c, -merge, -framing, -props, -link: epframer.h);
# a change to any of them, to a header or to this script rebuilds.
shopt -s nullglob
SRCS=("$NATIVE"/epframer*.c)
HDRS=("$NATIVE"/epframer*.h)
shopt -u nullglob
DEPS=("${SRCS[@]}" "${HDRS[@]}" "${BASH_SOURCE[0]}")
OUTDIR="${1:-$ROOT/dist/native}"
OUT="$OUTDIR/libgstepframer.so"
APT_HINT="install them with: sudo apt-get install libgstreamer1.0-dev build-essential pkg-config"

die() {
  echo "build-native: ERROR: $*" >&2
  exit 1
}

for f in "$NATIVE/epframer.c" "$NATIVE/epframer.h"; do [ -f "$f" ] || die "source not found: $f"; done
command -v gcc >/dev/null 2>&1 || die "gcc not found; $APT_HINT"
command -v pkg-config >/dev/null 2>&1 || die "pkg-config not found; $APT_HINT"
pkg-config --exists gstreamer-1.0 gstreamer-base-1.0 ||
  die "GStreamer development files (gstreamer-1.0.pc, gstreamer-base-1.0.pc) not found; $APT_HINT"

up_to_date() {
  [ -f "$OUT" ] || return 1
  for f in "${DEPS[@]}"; do [ "$OUT" -nt "$f" ] || return 1; done
}
if up_to_date; then
  echo "build-native: $OUT is up to date" >&2
  exit 0
fi

mkdir -p "$OUTDIR"
# shellcheck disable=SC2207 # pkg-config output is a list of flags
FLAGS=($(pkg-config --cflags --libs gstreamer-1.0 gstreamer-base-1.0))
# Compile to a temporary name and rename: a reader (gst-inspect, a running test) never
# sees a half-written plugin, and a failed build leaves the previous one in place.
TMP="$OUT.tmp.$$"
trap 'rm -f "$TMP"' EXIT
# Warnings are errors where we test (EPFRAMER_WERROR=1: test/integration/native-framer.test.ts);
# a newer GStreamer's deprecation warnings must not stop a box's build.
WERROR=()
if [ "${EPFRAMER_WERROR:-0}" = 1 ]; then WERROR=(-Werror); fi
gcc -Wall -Wextra "${WERROR[@]+"${WERROR[@]}"}" -O2 -fPIC -shared -o "$TMP" "${SRCS[@]}" "${FLAGS[@]}" ||
  die "compilation failed (if gst/gst.h is missing: $APT_HINT)"
mv -f "$TMP" "$OUT"
trap - EXIT
echo "build-native: built $OUT" >&2
