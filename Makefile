# `make run` and `make test` install into .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install run test clean

$(STAMP): setup.cfg requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,minihack]"
	touch $(STAMP)

install: $(STAMP)

# The main job: the paper's task (four-rooms, a new random goal every episode) with the preset that
# learns it on a CPU (`random_goal`: 30k gradient steps, ~30 min here; README "Set-up"). The plain
# `cpu` preset does not learn it (`make run ARGS="--preset cpu"`; a later --preset wins).
run: $(STAMP)
	$(PY) -m experiments.run --preset random_goal $(ARGS)

# Two workers, one per core of the CI machine; a module's tests stay on one worker (loadscope) so
# its expensive module fixtures are built once. Most of the suite is XLA compilation, which is
# single-threaded, so one process left a core idle. xdist's module order (most tests first) leaves
# the one-test learning module for last, where it gets both cores: faster than starting it first
# (docs/testing.md). `make test ARGS="-n 0"` runs serially.
test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadscope $(ARGS)

clean:
	rm -rf $(VENV) runs
