#!/usr/bin/env bash
# Builds Volcano's scheduler (vc-scheduler) from its Go module, for the gang-scheduling test of tests/e2e
# (test_gang.py), into ${SGLANG_ENGINE_CACHE:-~/.cache/sglang-engine}/volcano-<version>/bin; a build that is
# there costs nothing. The Go module proxy serves volcano.sh/volcano at v1.8.2 and v1.10.0 but refuses v1.9.0,
# the chart the stacks pin (403 "This module version is not available"): v1.10.0 is the nearest release. Its
# scheduler reads the same scheduling.volcano.sh/v1beta1 PodGroup and Queue the 1.9.0 chart's CRDs define.
# Usage: .ci/volcano-scheduler.sh [--print-bin]   (prints the binary's path)
set -euo pipefail
VERSION=v1.10.0
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
CACHE=${SGLANG_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sglang-engine}
BIN=$CACHE/volcano-$VERSION/bin
if [ "${1:-}" = --print-bin ]; then echo "$BIN/vc-scheduler"; exit 0; fi
if [ -x "$BIN/vc-scheduler" ] && "$BIN/vc-scheduler" --version >/dev/null 2>&1; then
  echo "vc-scheduler $VERSION: up to date ($BIN)"; exit 0
fi
mkdir -p "$BIN"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/volcano-build.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DIR=$(go mod download -json "volcano.sh/volcano@$VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
cp -r "$DIR" "$WORK/src" && chmod -R u+w "$WORK/src"
cd "$WORK/src"
start=$(date +%s)
go build -trimpath -ldflags "-s -w -X volcano.sh/volcano/pkg/version.Version=$VERSION" -o "$BIN/vc-scheduler.tmp" ./cmd/scheduler
mv "$BIN/vc-scheduler.tmp" "$BIN/vc-scheduler"
echo "vc-scheduler $VERSION built in $(( $(date +%s) - start ))s: $BIN/vc-scheduler"
