# keyward — build, test, benchmark.
#
#   make build   static binary in bin/keyward
#   make release binaries, SBOMs, OCI image and SHA256SUMS in dist/
#   make test    everything CI runs: gofmt, go vet, staticcheck, then every
#                test under the race detector, including the integration
#                suites against real servers (built once into .cache/)
#   make unit    only the tests that need no server (go test ./...)
#   make e2e     only the end-to-end tests: keyward in real pods on a real
#                kubelet (test/e2e; needs root, as CI; part of make test)
#   make bench   exec-path latency (hyperfine) and Go micro-benchmarks, the
#                token soaks (client credentials; a rotating refresh token
#                with kill -9), the AWS provider's render benchmark against
#                moto, and the fault suite's long variants
#                (KEYWARD_FAULTS_LONG=1)
#   make fuzz    every fuzz target for FUZZTIME (default 2m) each
#
# Tools (staticcheck, gotestsum) are pinned in go.mod and run with `go tool`.

GO       ?= go
BIN      ?= bin/keyward
PKG      := github.com/keyward/keyward
# Version stamps (keyward version): the tag, or `git describe` past it; the
# commit; and the commit's date, not the build's, so that two builds of one
# commit are byte-identical (SOURCE_DATE_EPOCH overrides it).
VERSION  ?= $(shell git describe --tags --match 'v[0-9]*' --always --dirty 2>/dev/null | sed '/^v/!s/^/v0.0.0-g/')
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null)
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
DATE     ?= $(shell [ -n "$(SOURCE_DATE_EPOCH)" ] && { date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || date -u -r $(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ; })
LDFLAGS  := -s -w -X $(PKG)/internal/version.Version=$(VERSION) -X $(PKG)/internal/version.Commit=$(COMMIT) -X $(PKG)/internal/version.Date=$(DATE)
# TAGS leaves providers out of the binary, e.g. TAGS="no_vault no_gcpsm no_k8s".
TAGS     ?=
GOFILES   = $(shell git ls-files --cached --others --exclude-standard '*.go')

export CGO_ENABLED ?= 1

SERVERS   = $(sort $(wildcard test/servers/*.sh))

# Fuzzing: make test splits FUZZ_BUDGET between every fuzz target; make
# fuzz gives each FUZZTIME.
FUZZ_BUDGET ?= 60s
FUZZTIME    ?= 2m
FUZZ        ?=

.PHONY: all build release test lint unit e2e servers integration bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keyward

# release builds into dist/: static binaries for linux and darwin on amd64
# and arm64, a CycloneDX SBOM of each, the multi-arch OCI image of the linux
# binaries (layout and archive, built without Docker) and SHA256SUMS;
# byte-identical on every run for one commit. RELEASE_TARGETS picks
# platforms ("linux/amd64" to build one; the image needs both linux ones).
RELEASE_TARGETS ?= darwin/amd64,darwin/arm64,linux/amd64,linux/arm64
release:
	$(GO) run ./internal/tools/release -dist dist -targets '$(RELEASE_TARGETS)' -tags '$(TAGS)' \
		-version '$(VERSION)' -commit '$(COMMIT)' -date '$(DATE)'

# The fault suite (test/faults) writes one line of figures per test to
# $KEYWARD_FAULTS_SUMMARY, printed after the run (gotestsum hides the log of
# passing tests). After the tests, the release checks (a reproducible build
# of the release binary from an empty build cache, the whole release
# pipeline; about 3 minutes of CPU, so alone), then every fuzz target within
# FUZZ_BUDGET.
test: lint servers
	@summary=$$(mktemp); \
	KEYWARD_FAULTS_SUMMARY=$$summary $(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --hide-summary=skipped -- -race -count=1 -tags integration -timeout 10m ./...; \
	rc=$$?; cat $$summary; rm -f $$summary; exit $$rc
	@$(GO) tool gotestsum --format pkgname-and-test-fails --hide-summary=skipped -- -count=1 -tags release -timeout 20m ./internal/tools/release/
	@FUZZ_BUDGET=$(FUZZ_BUDGET) bash test/fuzz.sh

# servers builds or installs every real server the integration tests use
# (cached in .cache/ by version; a cached server costs nothing).
servers:
	@for s in $(SERVERS); do bash "$$s" >/dev/null || { echo "test server script $$s failed"; exit 1; }; done

lint:
	@out="$$(gofmt -l $(GOFILES))"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) vet ./...
	@$(GO) tool staticcheck ./...
	@# darwin is a release target: keep it compiling (vet type-checks the
	@# tests too; the build links the binary).
	@GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./...
	@GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -o /dev/null ./cmd/keyward
	@echo "lint: gofmt, go vet, staticcheck clean (and go vet, build for darwin/arm64)"

e2e: servers
	@$(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --hide-summary=skipped -- -race -count=1 -tags integration -timeout 10m ./test/e2e/

unit:
	@$(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --hide-summary=skipped -- -race -count=1 ./...

bench: build servers
	@bash test/bench/exec.sh $(BIN)
	@bash test/bench/agent.sh $(BIN)
	@bash test/bench/mask.sh $(BIN)
	@bash test/bench/audit.sh $(BIN)
	@$(GO) run test/bench/buffering.go
	@bash test/bench/tokens.sh
	@bash test/bench/refresh.sh $(BIN)
	@$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./providers/ ./providers/file/ ./providers/gcp/... ./render/... ./internal/mask/... ./internal/scan/... ./internal/audit/
	@$(GO) test -tags integration -run='^$$' -bench=. -benchmem -count=1 ./providers/aws/
	@$(GO) test -tags integration -run='^$$' -bench=Resolve1000 -count=1 ./providers/vault/
	@$(GO) test -tags integration -run='^$$' -bench=Propagation -benchtime=100x -count=1 ./providers/kubernetes/
	@$(GO) test -tags integration -run='^$$' -bench=QuietWatch -benchtime=1x -count=1 ./providers/kubernetes/
	@$(GO) test -tags integration -run='^$$' -bench=Admission -benchtime=1000x -count=1 ./internal/webhook/
	@$(GO) test -tags integration -run='^$$' -bench=NodeMounts -benchtime=5x -count=1 ./internal/csiprovider/
	@summary=$$(mktemp); \
	KEYWARD_FAULTS_LONG=1 KEYWARD_FAULTS_SUMMARY=$$summary $(GO) test -tags integration -count=1 -timeout 30m ./test/faults/; \
	rc=$$?; cat $$summary; rm -f $$summary; exit $$rc

# fuzz runs every fuzz target for FUZZTIME each; FUZZ=REGEXP picks
# targets ("mask", "config FuzzParse").
fuzz:
	@FUZZTIME=$(FUZZTIME) bash test/fuzz.sh $(FUZZ)

clean:
	rm -rf bin dist
