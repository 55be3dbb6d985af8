import os
import tempfile

import pytest

# Tests run on the CPU build of JAX.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Many tests compile the same tiny programs, often in subprocesses (the CLI): a persistent XLA
# compilation cache shared by the whole session turns the repeats into cache hits. The cache only
# stores compiled executables, so results are unchanged.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), "hrm-jax-test-xla-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


@pytest.fixture
def metric_rows():
    """rows(seed, successes) -> metrics.jsonl rows of one seed, one per evaluation point every 100
    gradient steps (synthetic learning curves for the sweep comparison)."""
    def rows(seed, values, step=100):
        return [dict(seed=seed, grad_steps=step * (i + 1), env_steps=1000 * (i + 1), wall_time_s=1.5 * (i + 1),
                     eval_success=v, eval_length=10.0, eval_optimal=8.0) for i, v in enumerate(values)]
    return rows
