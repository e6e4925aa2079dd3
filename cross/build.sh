#!/usr/bin/env bash
# Builds the release matrix: static, stripped linux binaries for every
# architecture Trellis ships to, then checks the size budget of linux/arm64.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${VERSION:-dev}
budget_mib=${SIZE_BUDGET_MIB:-22}  # docs/benchmarks.md: stripped linux/arm64 ≤ 22 MB
mkdir -p dist

build() { # name goarch [goarm]
	local name=$1 arch=$2 arm=${3:-}
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch GOARM=$arm \
		go build -trimpath -ldflags "-s -w -X main.version=$version" -o "dist/trellis-linux-$name" ./cmd/trellis
	printf '%-24s %10d bytes\n' "dist/trellis-linux-$name" "$(stat -c %s "dist/trellis-linux-$name")"
}

build amd64 amd64
build arm64 arm64
build armv7 arm 7
build armv6 arm 6

size=$(stat -c %s dist/trellis-linux-arm64)
limit=$((budget_mib * 1000 * 1000))
if ((size > limit)); then
	echo "size budget: dist/trellis-linux-arm64 is $size bytes, over $budget_mib MB" >&2
	exit 1
fi
echo "size budget: linux/arm64 $size bytes ≤ $budget_mib MB"
