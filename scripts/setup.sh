#!/usr/bin/env bash
# Installs everything mixtape needs on a fresh Debian/Ubuntu machine (run as root), then
# the npm packages from package-lock.json. Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "setup: mixtape needs Node.js 20 or newer on PATH (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# The CPU engine needs no system packages beyond Node and a C toolchain-free npm install.
npm ci --no-audit --no-fund
