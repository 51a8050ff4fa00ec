# sandlock (Go). `make` builds bin/sandlock, a static pure-Go binary.
GO      ?= go
BIN     := bin/sandlock
GOFLAGS_BUILD := -trimpath -ldflags=-s
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

.PHONY: all build test test-short race lint bench bench-quick demo generate clean soak

all: build

# bin/sandlock-prof is the same program with profiling linked in
# (--cpuprofile, --memprofile, --trace, --pprof); sandlock execs it when
# given one of those flags.
build:
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -o $(BIN) ./cmd/sandlock
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -tags pprof -o $(BIN)-prof ./cmd/sandlock

# One command for a new user: build, then confine a real command.
demo: build
	$(BIN) check
	$(BIN) run -r /usr -r /lib -r /lib64 -r /bin -r /etc -- sh -c 'echo "hello from $$(hostname)"; cat /etc/hostname; id; ls /root 2>&1 | head -1'

# The test command the README gives and CI runs: vet, every package's tests
# (fuzz targets run over their seed corpora), and the lock-free packages and
# the sandbox (its short tests) again under the race detector.
test: build
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./...
	$(GO) test -count=1 -race ./accounting ./ring ./pidwatch ./supervisor
	$(GO) test -count=1 -race -short ./sandbox ./internal/spawn

test-short:
	CGO_ENABLED=0 $(GO) test -short ./...

lint:
	$(GO) vet ./...
	$(GO) vet -tags pprof ./cmd/sandlock
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags pprof ./cmd/sandlock
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }

# Regenerate the syscall tables and the prebuilt filters.
generate:
	$(GO) generate ./bpfprog

# Where the harness writes results.json, chart.svg and report.md.
BENCH_OUT ?= bench-results

bench: build
	$(GO) run ./bench -sandlock $(BIN) -out $(BENCH_OUT)

bench-quick: build
	$(GO) run ./bench -sandlock $(BIN) -quick -out $(BENCH_OUT)

soak: build
	$(GO) run ./bench/soak -sandlock $(BIN) -duration 10m

clean:
	rm -rf bin
