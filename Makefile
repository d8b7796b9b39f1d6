# tillagent: `make run` starts the agent on the embedded demo, `make test` runs every test.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
BIN       := bin
CONFIG    ?= config.example.yaml
# The demo replica is loaded into ./var on first start.
DEMO_ENV  := TILLAGENT_STORE_DEMO_REPLICA=testdata/demo/replica.yaml TILLAGENT_STORE_PATH=var/till.db \
             TILLAGENT_DEMO_VIRTUAL_SCANNER=true TILLAGENT_DEMO_EMULATOR_JOURNAL=var/fiscal-journal.json

.PHONY: help build run test test-race fuzz bench vet clean pg

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## build bin/tillagent and bin/tillctl
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/...

run: build ## run the agent on the embedded demo (SQLite replica in ./var, printer emulator, virtual scanner)
	@mkdir -p var
	$(DEMO_ENV) ./$(BIN)/tillagent -config $(CONFIG)

test: ## the whole test suite (what CI runs)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 12m ./...

pg: ## install/start PostgreSQL 15 with the test role and database (root or sudo); prints the export line
	@echo "export TILLAGENT_TEST_PG_DSN='$$(./.ci/pg)'"

test-race: ## the suite under the race detector
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz: ## run every fuzz target for FUZZTIME each (default 30s)
	./.ci/fuzz $(or $(FUZZTIME),30s)

bench: ## the documented benchmarks
	$(GO) test -run '^$$' -bench . -benchtime 2000x ./checkout/ ./internal/store/ ./driver/scanner/scanconf/
	$(GO) test -run '^$$' -bench Receipt20 -benchtime 50x ./driver/fiscal/shtrih/
	$(GO) test -run '^$$' -bench DurableCommit -benchtime 2000x ./internal/sale/
	$(GO) test -run '^$$' -bench SaleAPI -benchtime 500x ./cmd/tillagent/
	$(GO) test -run '^$$' -bench ColdStart1M -benchtime 5x ./cmd/tillagent/

clean: ## remove build output and the demo store
	rm -rf $(BIN) var
