#!/usr/bin/env bash
# build.sh rebuilds every *.wat fixture in this folder to the .wasm beside it
# with wat2wasm (wabt), then checks each result with wasm-validate.
# wat2wasm writes no names or timestamps unless asked, so the output is the
# same on every run: rebuild, then `git diff --stat` should show nothing.
set -euo pipefail
cd "$(dirname "$0")"
export LC_ALL=C

for wat in *.wat; do
	wasm="${wat%.wat}.wasm"
	wat2wasm "$wat" -o "$wasm"
	wasm-validate "$wasm"
done
