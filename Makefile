# Data Mesh Factory — the project's commands. Two are all a newcomer needs:
#   make demo   install from the lock file, generate data, build the whole mesh, print status
#   make test   install from the lock file, lint, run every test (what CI runs)

UV_VERSION := 0.13.9
TOOLS      := .tools
UV         := $(TOOLS)/bin/uv
RUN        := $(UV) run --frozen
export DAGSTER_HOME ?= $(CURDIR)/.dagster

.PHONY: install browser postgres demo build status test lint format ui validate clean

# uv itself is bootstrapped into .tools/ with the machine's python3: nothing to install by hand
$(UV):
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

install: $(UV)
	$(UV) sync --frozen --compile-bytecode

# the browser the UI test drives: Debian's chromium, installed only when it is missing
# (playwright's own browser download is not used)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@test -x /usr/bin/chromium || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# the PostgreSQL server binaries the scale-out tests start (a throwaway server in a temporary
# folder each time): Debian's postgresql package, installed only when none is found
postgres:
	@ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || { \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

demo: install
	$(RUN) mesh demo

build: install
	$(RUN) mesh build

status: install
	$(RUN) mesh status

# test modules run on two workers, a module's tests on one (they share its module-scoped mesh),
# the longest modules first (tests/conftest.py)
test: install lint browser postgres
	$(RUN) pytest -n 2 --dist loadfile --no-loadscope-reorder

lint: install
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

validate: install
	$(RUN) mesh instance
	$(RUN) dagster definitions validate -w workspace.yaml

# the Dagster UI (and daemon: automation sensors) on the same instance as `mesh build`
ui: install
	$(RUN) mesh instance
	$(RUN) dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

clean:
	rm -rf data .dagster dbt_projects/*/target dbt_projects/*/logs
