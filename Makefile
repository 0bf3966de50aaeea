# wisp — one entry point for humans and CI.
SHELL   := /bin/bash
GO      ?= go
MODULES := $(shell $(GO) list -m -f '{{.Dir}}')

.PHONY: test run build vet fmt bench

## test: every test of every module, with the race detector.
test:
	@set -eo pipefail; log=$$(mktemp); \
	for m in $(MODULES); do \
		if [ -z "$$(cd $$m && $(GO) list ./... 2>/dev/null)" ]; then continue; fi; \
		echo "== $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 15m ./...) 2>&1 | tee -a $$log; \
	done; \
	echo "packages: $$(grep -c '^ok' $$log) passed, $$(grep -c '^FAIL' $$log) failed"; rm -f $$log

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

fmt:
	gofmt -l -w .

SERVICES := gateway rooms messages expiry

## build: the service binaries, into bin/.
build:
	$(GO) build -o bin/ $(foreach s,$(SERVICES),./services/$(s)/cmd/$(s))

## run: the whole system on this machine (Redis child, in-process NATS, all services).
run: build
	$(GO) build -o bin/wisp ./stack/cmd/wisp
	@exec ./bin/wisp -bin bin

## bench: build and start the whole system (RATE_LIMITS=off), run the fixed load
## scenarios and write BENCHMARKS.md (about 10 minutes; see bench/).
bench:
	$(GO) run ./bench/cmd/wisp-bench -out BENCHMARKS.md
