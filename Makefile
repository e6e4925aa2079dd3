# Trellis build, test and release targets. `make help` lists them.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/trellis

# Packages the cross-test runs as ARM binaries under qemu: runtime, agent, store, mesh, capabilities.
CROSS_PKGS := ./agent/... ./store/... ./mesh/... ./capabilities/...

# Go actors are built as reactors; these flags make the output reproducible.
GOWASM   := GOOS=wasip1 GOARCH=wasm $(GO) build -buildmode=c-shared -trimpath -ldflags="-s -w -buildid="

.PHONY: help build run test torture cross cross-test bench fixtures check clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/trellis for this machine
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/trellis

run: ## run `trellis dev`: a hub, an agent and the example actors on 127.0.0.1 (Ctrl-C stops)
	$(GO) run ./cmd/trellis dev

test: ## run every test with the race detector
	$(GO) test -race -shuffle=on ./...

torture: ## kill a store writer with SIGKILL at random points, many times, and check every acknowledged write survived
	TRELLIS_TORTURE_ROUNDS=$${TRELLIS_TORTURE_ROUNDS:-200} $(GO) test -count=1 -run 'TestTorture' ./store/

cross: ## build static linux binaries for amd64, arm64, armv7 and armv6 into dist/, and check the size budget
	VERSION=$(VERSION) bash cross/build.sh

cross-test: ## run the runtime and store tests as armv6 and arm64 binaries under qemu-user
	bash cross/test.sh $(CROSS_PKGS)

bench: ## run the benchmarks (5 runs each) into bench.txt
	$(GO) test -run='^$$' -bench=. -benchmem -count=5 ./agent/... ./store/... | tee bench.txt

fixtures: ## rebuild every committed .wasm from its source (needs wat2wasm and npm)
	bash agent/actor/testdata/build.sh
	$(GOWASM) -o agent/actor/testdata/kitchen.wasm ./agent/actor/testdata/kitchen
	$(GOWASM) -o examples/actors/echo/echo.wasm ./examples/actors/echo
	$(GOWASM) -o examples/actors/kvcounter/kvcounter.wasm ./examples/actors/kvcounter
	$(GOWASM) -o examples/actors/thermostat/thermostat.wasm ./examples/actors/thermostat
	$(GOWASM) -o examples/actors/wasmcloud-kvcounter/wasmcloud-kvcounter.wasm ./examples/actors/wasmcloud-kvcounter
	cd examples/actors/hello-as && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run --silent build

check: ## vet, gofmt, go mod tidy and fixtures up to date
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) vet ./sdk/... ./examples/actors/... ./agent/actor/testdata/kitchen/
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@cp go.mod /tmp/trellis-go.mod.check; cp go.sum /tmp/trellis-go.sum.check; \
	  $(GO) mod tidy; \
	  if ! cmp -s go.mod /tmp/trellis-go.mod.check || ! cmp -s go.sum /tmp/trellis-go.sum.check; then \
	    echo "go.mod/go.sum not tidy: run 'go mod tidy' and commit"; git --no-pager diff go.mod go.sum; exit 1; fi
	$(MAKE) --no-print-directory fixtures
	@if ! git diff --quiet -- '*.wasm'; then echo "committed fixtures differ from their rebuild:"; git --no-pager diff --stat -- '*.wasm'; exit 1; fi
	@if [ -n "$$(git ls-files --others --exclude-standard -- '*.wasm')" ]; then echo "uncommitted fixtures:"; git ls-files --others --exclude-standard -- '*.wasm'; exit 1; fi

clean: ## remove build outputs
	rm -rf bin dist bench.txt
