# keyward — build, test, benchmark.
#
#   make build   static binary in bin/keyward
#   make test    everything CI runs: gofmt, go vet, staticcheck, go test -race
#   make bench   exec-path latency (hyperfine) and Go micro-benchmarks
#
# Tools (staticcheck, gotestsum) are pinned in go.mod and run with `go tool`.

GO       ?= go
VERSION  ?= dev
BIN      ?= bin/keyward
PKG      := github.com/keyward/keyward
LDFLAGS  := -s -w -X $(PKG)/internal/version.Version=$(VERSION)
GOFILES   = $(shell git ls-files --cached --others --exclude-standard '*.go')

export CGO_ENABLED ?= 1

.PHONY: all build test lint unit bench fuzz clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keyward

test: lint unit

lint:
	@out="$$(gofmt -l $(GOFILES))"; if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	@$(GO) vet ./...
	@$(GO) tool staticcheck ./...
	@echo "lint: gofmt, go vet, staticcheck clean"

unit:
	@$(GO) tool gotestsum --format pkgname-and-test-fails --format-hide-empty-pkg --hide-summary=skipped -- -race -count=1 ./...

bench: build
	@bash test/bench/exec.sh $(BIN)
	@$(GO) test -run='^$$' -bench=. -benchmem -count=1 ./providers/... ./render/...

fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzParse -fuzztime=60s ./providers/

clean:
	rm -rf bin
