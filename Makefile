# Vitals — two commands: `make run` and `make test`. See README.md.
SHELL := /bin/bash
GO ?= go
BIN := bin/vitals
DATA_DIR ?= ./data
GOTEST_FLAGS ?= -count=1 -timeout 45m

.PHONY: all build run test fuzz test-unit bench fmt vet deps clean services-up services-down

all: build

build:
	$(GO) build -o $(BIN) ./cmd/vitals

## run: the whole pipeline on its embedded defaults (kfake broker, local
## ClickHouse when installed, else disk spool), a demo simulator and receiver.
run: build
	./deploy/run-local.sh $(BIN) $(DATA_DIR)

## deps: install what the tests need (ClickHouse, Redis and promtool from apt, Kafka jars from Maven Central).
deps:
	$(GO) mod download
	./deploy/clickhouse/clickhouse.sh install
	./deploy/redis/redis.sh install
	./deploy/prometheus/promtool.sh install
	./deploy/kafka/kafka.sh fetch
	command -v chromium >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } # e2e TestDashboard
	python3 -m pip install -q --disable-pip-version-check standardwebhooks==1.1.0
	@# chDB: current ClickHouse in process, for analytics' schema and query test
	@# (chdb-core holds the engine, ~180 MB; pinned so the engine version is known).
	python3 -m pip install -q --disable-pip-version-check chdb==4.4.0 chdb-core==26.9.0

## test: unit, integration and end-to-end tests against real ClickHouse,
## Apache Kafka (KRaft) and kfake; services are stopped even on failure.
test: deps vet
	./deploy/with-services.sh $(GO) test $(GOTEST_FLAGS) ./...
	FUZZTIME=$(TEST_FUZZTIME) GO=$(GO) ./deploy/fuzz.sh

## fuzz: every Go fuzz target (deploy/fuzz.sh finds each func FuzzX in a
## *_test.go), one after another, FUZZTIME each; FUZZ=regexp picks targets
## by "package/FuzzName". A crasher lands in the package's testdata/fuzz/ and
## is a regression test from then on. `make test` runs each for TEST_FUZZTIME.
FUZZTIME ?= 30s
TEST_FUZZTIME ?= 10s
fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./deploy/fuzz.sh

## test-unit: the tests that need no external service installed (they still
## start kfake and, on demand, private ClickHouse/Kafka instances).
test-unit:
	$(GO) test -count=1 -short ./...

## bench: Go micro-benchmarks (Avro, signing, health model, analytics writer)
## in benchstat-ready text (bench.txt), then each as a ratio to the baseline
## measured in the same run; then the end-to-end harness (`vitals bench`,
## see docs/PERFORMANCE.md): each stage and the whole pipeline beside
## same-run baselines, a BENCH_DURATION window per stage, results in
## bench/results/<timestamp>.json.
BENCH_DURATION ?= 5s
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./schemas ./webhook ./processor/... ./analytics ./ratelimit ./admission | tee bench.txt
	@# Dispatch vs bare POST: five samples each, compared by median.
	$(GO) test -run '^$$' -bench 'BareHTTPPost|Dispatch$$' -benchmem -count 5 ./dispatcher | tee -a bench.txt
	@awk -f deploy/bench/ratios.awk bench.txt
	./$(BIN) bench --duration $(BENCH_DURATION)

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin .cache bench.txt
