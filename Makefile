# wisp — one entry point for humans and CI.
SHELL   := /bin/bash
GO      ?= go
GOFMT   := $(shell $(GO) env GOROOT)/bin/gofmt
MODULES := $(shell $(GO) list -m -f '{{.Dir}}')
BIN     := $(CURDIR)/bin
# The linters are pinned in tools/go.mod, a module of its own outside
# go.work, so their dependencies never join the services' version selection.
LINT    := $(BIN)/golangci-lint
VULN    := $(BIN)/govulncheck

.PHONY: test run build vet fmt fmt-check lint vuln bench chaos test-js lint-js

## test: every test of every module, with the race detector. Installs what
## the tests need first (scripts/deps.sh test), and runs the UI's node tests.
test: test-js
	@bash scripts/deps.sh test
	@set -o pipefail; log=$$(mktemp); status=0; \
	for m in $(MODULES); do \
		if [ -z "$$(cd $$m && $(GO) list ./... 2>/dev/null)" ]; then continue; fi; \
		echo "== $$m"; (cd $$m && $(GO) test -race -count=1 -timeout 15m ./...) 2>&1 | tee -a $$log || status=1; \
	done; \
	echo "packages: $$(grep -c '^ok' $$log) passed, $$(grep -cP '^FAIL\t' $$log) failed"; \
	if [ $$status -ne 0 ]; then echo "what failed:"; grep -P '^(\s*--- FAIL|FAIL\t|panic:)' $$log; fi; \
	rm -f $$log; exit $$status

vet:
	@set -e; for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done

fmt:
	$(GOFMT) -l -w $(MODULES)

## fmt-check: fails, naming the files, when gofmt would change any.
fmt-check:
	@out=$$($(GOFMT) -l $(MODULES)); \
	if [ -n "$$out" ]; then echo "gofmt would change these files (make fmt):"; echo "$$out"; exit 1; fi

## lint: fmt-check, then golangci-lint (.golangci.yml) in every module; a
## finding is fixed or justified with //nolint:<linter> // <why>.
lint: fmt-check lint-js $(LINT)
	@status=0; for m in $(MODULES); do \
		echo "== lint $$m"; (cd $$m && $(LINT) run --config $(CURDIR)/.golangci.yml ./...) || status=1; \
	done; exit $$status

## vuln: govulncheck in every module. It needs its vulnerability database
## online, which CI machines cannot reach, so CI=true only says so.
vuln:
ifeq ($(CI),true)
	@echo "vuln: skipped under CI=true (govulncheck needs its online vulnerability database, which CI cannot reach); run make vuln where it can"
else
	@$(MAKE) --no-print-directory $(VULN)
	@status=0; for m in $(MODULES); do \
		echo "== vuln $$m"; (cd $$m && $(VULN) ./...) || status=1; \
	done; exit $$status
endif

$(LINT): tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o $(LINT) github.com/golangci/golangci-lint/v2/cmd/golangci-lint

$(VULN): tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o $(VULN) golang.org/x/vuln/cmd/govulncheck

## test-js, lint-js: the web UI's DOM-free modules under node --test, and
## ESLint over the UI; ui/ holds their dev tools (and axe-core, which the
## browser tests inject), installed from its lockfile.
UI_DEPS := ui/node_modules/.package-lock.json
$(UI_DEPS): ui/package.json ui/package-lock.json
	cd ui && npm ci --no-audit --no-fund --loglevel=error
test-js: $(UI_DEPS)
	cd ui && node --test test/
lint-js: $(UI_DEPS)
	ui/node_modules/.bin/eslint --config ui/eslint.config.js services/gateway/internal/web/static ui

SERVICES := gateway rooms messages expiry

## build: the service binaries and the launcher, into bin/.
build:
	@$(GO) build -o bin/ $(foreach s,$(SERVICES),./services/$(s)/cmd/$(s)) ./stack/cmd/wisp

## run: the whole system on this machine (Redis child, in-process NATS, all
## services). Installs redis-server first when it is missing.
run:
	@bash scripts/deps.sh run
	@echo "building wisp…"
	@$(MAKE) --no-print-directory build
	@exec ./bin/wisp -bin bin

## chaos: the fault suite's long version (stack/e2e TestFaultSuite: 50 rooms,
## each fault twice, about 5 minutes); make test runs its short version.
chaos:
	cd stack && CHAOS=full $(GO) test -count=1 -timeout 30m -run TestFaultSuite -v ./e2e/

## bench: build and start the whole system (RATE_LIMITS=off), run the fixed load
## scenarios and write BENCHMARKS.md (about 10 minutes; see bench/),
## then the scale-out figures (bench-scale).
bench:
	$(GO) run ./bench/cmd/wisp-bench -out BENCHMARKS.md
	@$(MAKE) --no-print-directory bench-scale

## bench-scale: expiry lag with 100,000 rooms on a Redis Cluster of 3 masters,
## and sends/s through 1 gateway + 1 messages replica against 2 + 2 (about 3
## minutes; Go benchmarks, figures printed; bench/NOTES.md has a run).
bench-scale:
	cd services/expiry && $(GO) test -run '^$$' -bench ExpiryLagCluster -benchtime 1x -timeout 15m ./cmd/expiry
	cd stack && $(GO) test -run '^$$' -bench ScaleOut -benchtime 1x -timeout 15m ./e2e
