# cordon's build, test and check targets. `make test` is what CI runs (see .ci/run).
GO        ?= go
STATICCHECK_VERSION ?= v0.8.2
FUZZTIME  ?= 30s
BENCHCOUNT ?= 5

.PHONY: build test lint check bench bench-peers fuzz clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/cordon ./cmd/cordon

# Vet and builds (darwin too), the unit and integration tests, the proxy and plugin host again
# under the race detector, then the escape suite as root, as an unprivileged user and in
# fallback mode (scripts/escape-suite.sh). macOS cannot run here: its code is built and
# vetted for darwin, and its profile generator is tested on Linux (docs/macos.md).
test:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	GOOS=darwin GOARCH=amd64 $(GO) build ./...
	$(GO) test -count=1 ./...
	$(GO) test -race -count=1 ./netproxy ./plugins ./policy ./hostmatch
	GO=$(GO) scripts/escape-suite.sh

lint:
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Other platforms build and vet, and go.mod/go.sum are tidy.
check:
	GOOS=darwin GOARCH=arm64 $(GO) build ./...
	GOOS=darwin GOARCH=arm64 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) build ./...
	cp go.mod /tmp/cordon-go.mod.bak; cp go.sum /tmp/cordon-go.sum.bak
	$(GO) mod tidy
	@if ! cmp -s go.mod /tmp/cordon-go.mod.bak || ! cmp -s go.sum /tmp/cordon-go.sum.bak; then \
		echo "go mod tidy changed go.mod or go.sum"; cp /tmp/cordon-go.mod.bak go.mod; cp /tmp/cordon-go.sum.bak go.sum; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count $(BENCHCOUNT) ./...

# Every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin

# Side-by-side benchmarks against sandbox-runtime and bubblewrap (not part of test or CI);
# see BENCHMARKS.md. UPDATE=1 rewrites its results section.
bench-peers:
	bash scripts/bench-peers.sh
