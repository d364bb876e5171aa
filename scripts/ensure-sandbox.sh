#!/usr/bin/env bash
# Analysis jobs run in a bubblewrap sandbox (Debian's bubblewrap package). Without it,
# jobs on dummy data still run (with resource limits) but real-data runs are refused, so
# install it when it is missing and we may use apt-get; otherwise say so.
set -euo pipefail
if command -v bwrap >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing Debian's bubblewrap for the analysis sandbox..."
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq bubblewrap >/dev/null
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo "bubblewrap is missing and cannot be installed here; the sandbox tests cannot run" >&2
  exit 1
fi
echo "note: bubblewrap (bwrap) is not installed: analyses on real data will be refused" \
  "until it is (apt-get install bubblewrap)" >&2
