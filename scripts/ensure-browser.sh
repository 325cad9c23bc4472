#!/usr/bin/env bash
# Makes sure the browser tests (browser_tests/) have their Chromium: Debian's package, at CHROMIUM_PATH
# (default /usr/bin/chromium). Idempotent: nothing to do when it is there; installs it when missing and run as
# root with apt-get; otherwise says how to install it and fails. Playwright never downloads a browser of its own.
set -euo pipefail

CHROMIUM_PATH="${CHROMIUM_PATH:-/usr/bin/chromium}"

if [ -x "$CHROMIUM_PATH" ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-browser: $CHROMIUM_PATH is missing; installing Debian's chromium" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium
  if [ -x "$CHROMIUM_PATH" ]; then
    exit 0
  fi
  echo "ensure-browser: chromium is installed but $CHROMIUM_PATH is still missing; set CHROMIUM_PATH" >&2
  exit 1
fi

cat >&2 <<MESSAGE
ensure-browser: $CHROMIUM_PATH is missing; the browser tests need a Chromium.
  On Debian or Ubuntu, as root:   apt-get update && apt-get install -y chromium
  Elsewhere: install Chromium and point CHROMIUM_PATH at its executable.
MESSAGE
exit 1
