#!/usr/bin/env bash
# Runs Go tests as 32-bit and 64-bit ARM binaries under qemu-user, with no
# binfmt setup: armv6 as a Pi Zero's CPU (wazero's interpreter path) and
# arm64 (its compiler path). Timings under qemu mean nothing; correctness does.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=("$@")
((${#pkgs[@]})) || pkgs=(./...)

for q in qemu-arm-static qemu-aarch64-static; do
	command -v "$q" >/dev/null || { echo "$q not found: apt-get install qemu-user-static" >&2; exit 1; }
done

echo "== linux/arm (GOARM=6, arm1176, interpreter)"
GOOS=linux GOARCH=arm GOARM=6 CGO_ENABLED=0 \
	go test -count=1 -exec "qemu-arm-static -cpu arm1176" "${pkgs[@]}"

echo "== linux/arm64 (compiler)"
GOOS=linux GOARCH=arm64 CGO_ENABLED=0 \
	go test -count=1 -exec qemu-aarch64-static "${pkgs[@]}"
