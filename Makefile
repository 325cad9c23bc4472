# Two commands for a new machine with only Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
REQS := $(wildcard requirements/*.txt)
STAMP := $(VENV)/.installed

.PHONY: run test check lint bench verify down clean

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements/dev.txt
	@touch $(STAMP)

## make run: start PostgreSQL, Redis and NATS (embedded unless *_URL is set), migrate, seed, start every process.
run: $(STAMP)
	@SCALE=$(or $(SCALE),1) $(PY) -m devstack run

## make test: the same servers (test profile: own data dir and ports), then checks and every test suite.
test: $(STAMP)
	@bash scripts/ensure-browser.sh
	@$(PY) -m devstack exec --profile test -- $(MAKE) --no-print-directory check suites

## Static checks: ruff, mypy, import contracts.
check: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy common devstack gateway auth_service main_api authmesh_client bench scale_tests browser_tests verify
	$(VENV)/bin/lint-imports

## Test suites, one pytest process per project (each has its own settings); needs the *_URL environment.
## Every suite runs even when an earlier one fails; the exit status says whether all passed.
SUITES := \
	"-p no:django devstack/tests" \
	"--ds=devstack.testing.settings --create-db common" \
	"--ds=auth_service.settings.test --create-db auth_service" \
	"--ds=main_api.settings.test --create-db main_api" \
	"--ds=gateway.settings.test gateway" \
	"--ds=gateway.settings.test scale_tests" \
	"--ds=gateway.settings.test browser_tests"
suites:
	@failed=""; for suite in $(SUITES); do \
	  echo "== pytest $$suite"; \
	  $(PY) -m pytest $$suite || failed="$$failed\n  $$suite"; \
	done; \
	if [ -n "$$failed" ]; then printf "failed suites:$$failed\n"; exit 1; fi; echo "all suites passed"

## Benchmarks (production-like settings) on fresh servers and the seeded data only; writes var/bench/latest.json.
bench: $(STAMP)
	@$(PY) -m devstack down --profile bench >/dev/null
	@rm -rf var/bench/pg var/bench/redis var/bench/nats var/bench/sock
	@$(PY) -m devstack exec --profile bench --db auth --db main -- $(PY) -m bench

## Reliability and security proof: faults, fuzzing, soak, abuse, on servers of its own; writes var/verify/latest.json.
verify: $(STAMP)
	@$(PY) -m devstack exec --profile verify -- $(PY) -m verify

## Stop the development servers left by an interrupted run.
down: $(STAMP)
	@$(PY) -m devstack down --profile dev

clean:
	rm -rf var/test var/bench .pytest_cache .mypy_cache .ruff_cache
