#!/usr/bin/env bash
# What tests/test_widgets_browser.py needs: Debian's Chromium and the pinned playwright-core.
# Idempotent and quiet on success; run from anywhere (`make browser-deps` calls it before pytest).
# Playwright never downloads a browser here: the test points it at /usr/bin/chromium.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

fail() {
    echo "tests/browser/install.sh: $1" >&2
    tail -n 20 "$log" >&2
    exit 1
}

if ! command -v chromium >/dev/null 2>&1; then
    if [[ "$(id -u)" -ne 0 ]]; then
        fail "chromium is missing and installing it needs root: sudo apt-get install chromium"
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >"$log" 2>&1 || fail "apt-get update failed"
    apt-get install -y --no-install-recommends chromium >>"$log" 2>&1 || fail "apt-get install chromium failed"
fi

if ! command -v npm >/dev/null 2>&1; then
    fail "npm is missing: install Node.js (Debian: apt-get install nodejs npm)"
fi

# npm install is a no-op when node_modules already holds the pinned version, but still costs a second or two.
wanted="$(node -p "require('$here/package.json').dependencies['playwright-core']")"
have="$(node -p "try { require('$here/node_modules/playwright-core/package.json').version } catch { '' }")"
if [[ "$have" != "$wanted" ]]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --no-save --prefix "$here" >"$log" 2>&1 \
        || fail "npm install of playwright-core $wanted failed"
fi
