#!/usr/bin/env bash
# Installs everything mixtape needs on a fresh Debian/Ubuntu machine (run as root), then
# the npm packages from package-lock.json, and links the `mixtape` command.
# Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: mixtape needs Node.js 20 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# System packages. chromium: the report test opens report.html in a headless browser.
packages=(chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# npm packages (npm ci runs the build through the prepare script).
npm ci --no-audit --no-fund

# The `mixtape` command on PATH (root only; otherwise use `node bin/mixtape.js`).
if [ -w /usr/local/bin ]; then
  ln -sf "$(pwd)/bin/mixtape.js" /usr/local/bin/mixtape
fi
