#!/usr/bin/env bash
# Installs everything mixtape needs on a fresh Debian/Ubuntu machine (run as root), then
# the npm packages from package-lock.json, and links the `mixtape` command.
# Idempotent: safe to run again.
#
# The GPU backend (gpu.js) needs, besides the npm packages:
#   - headlessgl mode: the `gl` addon, built from source by npm (X11/GL headers, a C++
#     toolchain, python3, pkg-config), and an X display at run time: Xvfb with Mesa's
#     llvmpipe when there is no real display (`xvfb-run -a ...`);
#   - webgpu mode: a Vulkan driver for Dawn (the `webgpu` npm package). Without a GPU that
#     is Mesa's lavapipe, and Dawn needs lavapipe from Mesa >= 25: on Debian 12 (bookworm)
#     it comes from the bookworm-backports suite, which this script adds to the existing
#     apt sources entry (no host name is written anywhere).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: mixtape needs Node.js 20 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
apt_update() { if [ "$apt_updated" -eq 0 ]; then apt-get update -qq; apt_updated=1; fi; }

# Installs the packages of "$@" that are missing (extra apt-get flags come before a lone --).
install_missing() {
  local flags=()
  while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do flags+=("$1"); shift; done
  shift
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ "${#missing[@]}" -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  apt_update
  apt-get install -y -qq --no-install-recommends "${flags[@]}" "${missing[@]}" >/dev/null
}

# System packages.
#   chromium: the report test opens report.html in a headless browser.
#   build-essential python3 pkg-config libx11-dev libxi-dev libxext-dev libgl1-mesa-dev:
#     what node-gyp needs to build `gl` (ANGLE runs `pkg-config --libs x11 xi xext` and
#     includes <GL/glx.h>).
#   xvfb xauth libgl1-mesa-dri libglx-mesa0: a virtual X display with Mesa's llvmpipe.
#   libvulkan1 mesa-vulkan-drivers: the Vulkan loader and lavapipe, for webgpu mode.
install_missing -- chromium \
  build-essential python3 pkg-config libx11-dev libxi-dev libxext-dev libgl1-mesa-dev \
  xvfb xauth libgl1-mesa-dri libglx-mesa0

# lavapipe >= 25 for Dawn. Debian 12 ships Mesa 22: take Mesa from bookworm-backports.
. /etc/os-release
vulkan_flags=()
if [ "${VERSION_CODENAME:-}" = "bookworm" ]; then
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    # deb822: add the suite to the stanza that already lists bookworm-updates (not -security).
    if ! grep -Eq '^Suites:.*\bbookworm-backports\b' /etc/apt/sources.list.d/debian.sources; then
      [ "$(id -u)" -eq 0 ] || { echo "setup: run as root to enable bookworm-backports" >&2; exit 1; }
      sed -i -E '/^Suites:.*\bbookworm-updates\b/{/bookworm-backports/!s/$/ bookworm-backports/}' \
        /etc/apt/sources.list.d/debian.sources
      apt_updated=0
    fi
  elif [ -f /etc/apt/sources.list ] && ! grep -Eq '^deb .*\bbookworm-backports\b' /etc/apt/sources.list; then
    # One-line format: repeat the main entry's own URI with the backports suite.
    [ "$(id -u)" -eq 0 ] || { echo "setup: run as root to enable bookworm-backports" >&2; exit 1; }
    line="$(grep -E '^deb [^ ]+ bookworm main' /etc/apt/sources.list | head -n1 || true)"
    if [ -n "$line" ]; then
      echo "${line/ bookworm / bookworm-backports }" >>/etc/apt/sources.list
      apt_updated=0
    fi
  fi
  vulkan_flags=(-t bookworm-backports)
fi
mesa_vulkan="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
if [ -z "$mesa_vulkan" ] || dpkg --compare-versions "${mesa_vulkan#*:}" lt 25; then
  [ "$(id -u)" -eq 0 ] || { echo "setup: run as root to install mesa-vulkan-drivers (>= 25)" >&2; exit 1; }
  apt_update
  # Also upgrades libgl1-mesa-dri & co. to the same Mesa, so headless-gl runs on it too.
  apt-get install -y -qq --no-install-recommends "${vulkan_flags[@]}" mesa-vulkan-drivers libvulkan1 >/dev/null
  mesa_vulkan="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers)"
  if dpkg --compare-versions "${mesa_vulkan#*:}" lt 25; then
    echo "setup: warning: mesa-vulkan-drivers $mesa_vulkan is older than 25; webgpu mode may find no adapter without a real GPU" >&2
  fi
fi

# npm packages (npm ci runs the build through the prepare script). `gl` has no prebuilt
# binary reachable here, so node-gyp builds it from source (about 3.5 minutes on 2 cores);
# it compiles against the installed Node headers when they are there (offline).
if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node.h ] && [ -z "$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' || true)" ]; then
  export npm_config_nodedir=/usr
fi
npm ci --no-audit --no-fund

# gpu.js lists `gl` as an optional dependency: a failed build leaves the CPU backend
# working and only headlessgl mode unavailable. Say so loudly rather than silently.
if ! node -e "require('gl')" >/dev/null 2>&1; then
  echo "setup: warning: the 'gl' addon did not build or load; the gpu backend's headlessgl mode is unavailable" >&2
  echo "setup:          (see the npm ci output above; rebuild with: npm rebuild gl)" >&2
fi

# The `mixtape` command on PATH (root only; otherwise use `node bin/mixtape.js`).
if [ -w /usr/local/bin ]; then
  ln -sf "$(pwd)/bin/mixtape.js" /usr/local/bin/mixtape
fi
