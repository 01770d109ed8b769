#!/usr/bin/env bash
# Installs everything the box software, its demo and its tests need on Debian 12 /
# Raspberry Pi OS (bookworm or trixie), then builds it. Safe to run again.
#   bash scripts/setup.sh            # as root, or as a user with sudo
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  # GStreamer: tools, the codecs and elements the planner uses (x264, avdec_h264, srt, webrtcdsp, opus)
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-alsa
  # Pango text overlays (textoverlay: standby titles, the TV's on-screen name; only a
  # recommended package, so --no-install-recommends alone leaves it out)
  gstreamer1.0-x
  # headers for the gstreamer-superficial native binding
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev build-essential python3 pkg-config
  # foreign SRT peers for the tests, the MQTT broker the tests start, certificates
  ffmpeg srt-tools mosquitto mosquitto-clients openssl
  # probing cameras and fonts for the on-screen titles
  v4l-utils fonts-dejavu-core
  nodejs npm
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# nodejs/npm from apt are only a bootstrap when no node is on the PATH at all.
if command -v node >/dev/null 2>&1; then
  filtered=(); for p in "${missing[@]}"; do [[ "$p" == nodejs || "$p" == npm ]] || filtered+=("$p"); done
  missing=("${filtered[@]+"${filtered[@]}"}")
fi
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Debian 12 ships Node 18; the project needs Node >= 20.19 (vitest/vite). The npm
# registry carries official Node builds as packages: use one when the system's is older.
need_node() { node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>20||(a===20&&b>=19)?0:1)'; }
if ! need_node; then
  echo "setup: Node $(node --version) is too old; installing Node 22 from the npm registry"
  $SUDO npm install -g --no-fund --no-audit node@22
  hash -r
  need_node || { echo "setup: Node >= 20.19 still not on PATH ($(command -v node))" >&2; exit 1; }
fi

if [ -f package-lock.json ]; then npm ci --no-fund --no-audit; else npm install --no-fund --no-audit; fi
npm run build --silent
echo "setup: ready (node $(node --version), $(gst-launch-1.0 --version | head -1))"
